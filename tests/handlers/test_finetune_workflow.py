"""The fine-tune workflow end to end: the real statemachine/finetune.asl.json executed by moto's
Step Functions interpreter, its Lambda tasks dispatched in-process to the real FineTuneFunction
handler, Bedrock's customization jobs served by moto (provisioned throughput, on-demand custom
model deployments and the model catalogue ValidateInput asks by the local emulator), notifications published to SNS. The
input's Wait states (1 s) last 50 ms here: the local jobs finish after a number of checks, not of seconds, so what a
test sees does not depend on how long a wait lasts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from handlers.conftest import ROOT, LambdaContext
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.ingest import IngestService, IngestSettings, ObjectEvent
from sluice_local import emulators, moto_patches
from support.awsfixtures import create_documents_table, finished_execution
from support.fakes import FakeBus
from support.handlers import load_handler

RAW, PROCESSED = "sluice-raw-test", "sluice-processed-test"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:finetune"
ROLE = "arn:aws:iam::123456789012:role/bedrock-customization"
HANDBOOK = "# Harbour handbook\n\n" + "\n\n".join(
    f"## Section {i}\n\n"
    + " ".join(f"Pilots board ships at buoy {i} when the tide allows, rule {j}." for j in range(40))
    for i in range(6)
)
HARBOUR_FAQ = "\n".join(
    json.dumps({"system": "You answer for the harbour office.", "question": f"Where does pilot {i} board?",
                "answer": f"At buoy {i % 7}, on the rising tide."})
    for i in range(12)
)  # fmt: skip


@dataclass
class World:
    s3: Any
    sfn: Any
    sqs: Any
    machine: str
    notifications: str
    emulator_dir: Path

    def run(self, payload: dict[str, Any], name: str = "run-1", timeout: float = 60) -> dict[str, Any]:
        arn = self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps(payload))[
            "executionArn"
        ]
        return finished_execution(self.sfn, arn, timeout)

    def states(self, execution: dict[str, Any]) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]

    def notified(self) -> list[str]:
        messages = self.sqs.receive_message(QueueUrl=self.notifications, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"])["Subject"] for m in messages]

    def jobs(self) -> list[dict[str, Any]]:
        return list(boto3.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"])


def _bedrock_backend() -> Any:
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends["123456789012"]["us-east-1"]


def _short_wait(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    if wait_seconds > 0:
        env.program_state_event.wait(0.05)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        moto_patches.apply()
        monkeypatch.setattr(WaitFunction, "_wait_interval", _short_wait)
        s3, ddb, sqs, sns = (boto3.client(s) for s in ("s3", "dynamodb", "sqs", "sns"))
        for bucket in (RAW, PROCESSED):
            s3.create_bucket(Bucket=bucket)
        create_documents_table(ddb, "documents")
        for name, value in {"DOCUMENTS_TABLE": "documents", "PROCESSED_BUCKET": PROCESSED, "RAW_BUCKET": RAW}.items():
            monkeypatch.setenv(name, value)
        topic = sns.create_topic(Name="finetune")["TopicArn"]
        queue = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:notifications")
        handler = load_handler("finetune")
        emulators.install(tmp_path / "emulators", s3=s3)  # provisioned throughput, custom model deployments
        emulators.route_lambda(
            lambda name: (lambda e: handler.lambda_handler(e, LambdaContext())) if name == FUNCTION else None
        )
        definition = (ROOT / "statemachine" / "finetune.asl.json").read_text()
        for key, value in {
            "FineTuneFunctionArn": FUNCTION,
            "CustomizationRoleArn": ROLE,
            "NotificationTopicArn": topic,
        }.items():
            definition = definition.replace("${" + key + "}", value)
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(name="finetune", definition=definition, roleArn=ROLE)["stateMachineArn"]
        corpus = {
            "handbook.md": HANDBOOK,
            "notes/tides.txt": "Tide tables\n\n" + "High water is late today. " * 80,
            "faq/harbour.jsonl": HARBOUR_FAQ,  # the pairs fine-tuning takes from the corpus
        }
        _ingest(s3, ddb, corpus)
        try:
            yield World(s3, sfn, sqs, machine, queue, tmp_path / "emulators")
        finally:
            emulators.uninstall()


def _ingest(s3: Any, ddb: Any, files: dict[str, str]) -> None:
    service = IngestService(
        raw=S3ObjectReader(s3),
        processed=S3BucketWriter(s3, PROCESSED),
        registry=DynamoDBRegistry(ddb, "documents"),
        bus=FakeBus(),
        settings=IngestSettings(),
    )
    for n, (key, text) in enumerate(files.items()):
        s3.put_object(Bucket=RAW, Key=key, Body=text.encode())
        service.handle(ObjectEvent(RAW, key, removed=False, sequencer=f"{n + 1:08X}"))


def _corpus_input(**changes: Any) -> dict[str, Any]:
    base = json.loads((ROOT / "events" / "finetune_corpus.json").read_text())
    return {**base, "poll_seconds": 1, **changes}


def _refuse(monkeypatch: pytest.MonkeyPatch, operation: str, code: str, message: str) -> None:
    """The local Bedrock answers ``operation`` with an error, as AWS would."""
    from sluice_local.emulators.common import ServiceError

    def refused(params: dict[str, Any]) -> dict[str, Any]:
        raise ServiceError(code, message, 403)

    _answer(monkeypatch, operation, refused)


def _amend(monkeypatch: pytest.MonkeyPatch, operation: str, changes: dict[str, Any]) -> None:
    """The local Bedrock's answer to ``operation``, with ``changes`` (a status Bedrock may report, say)."""
    emulator = emulators.installed()
    assert emulator is not None
    original = emulator._operations[("bedrock", operation)]
    _answer(monkeypatch, operation, lambda params: {**original(params), **changes})


def _answer(monkeypatch: pytest.MonkeyPatch, operation: str, answer: Any) -> None:
    emulator = emulators.installed()
    assert emulator is not None
    monkeypatch.setitem(emulator._operations, ("bedrock", operation), answer)


def _cause(execution: dict[str, Any]) -> str:
    return str(execution.get("cause", ""))


def test_fine_tuning_nova_on_the_corpus_ends_with_a_custom_model(world: World) -> None:
    execution = world.run(_corpus_input())
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    assert result["custom_model_arn"].startswith("arn:aws:bedrock:us-east-1:123456789012:custom-model/")
    assert result["training_records"] >= 2 and result["estimated_training_tokens"] > 0
    assert result["warnings"] == []  # Nova Micro is ACTIVE and fine-tunable here
    states = world.states(execution)
    assert states[:3] == ["ValidateInput", "RetrainRequested?", "PrepareDataset"]
    assert "StartCustomizationJobWithValidation" in states and "CreateThroughput" not in states
    assert states.count("CheckJob") == 2  # InProgress, then Completed
    (job,) = world.jobs()
    assert job["status"] == "Completed"
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=PROCESSED, Prefix="finetune/")["Contents"]]
    assert any(k.endswith("train.jsonl") for k in keys) and "finetune/models/sluice-corpus-nova/latest.json" in keys
    train = world.s3.get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith("train.jsonl")))
    first = json.loads(train["Body"].read().splitlines()[0])
    assert first["schemaVersion"] == "bedrock-conversation-2024"  # Nova's conversation records
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    report = json.loads(
        world.s3.get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith("report.json")))["Body"].read()
    )
    assert report["format"] == "converse" and report["corpus"]["skipped_total"] == 2  # the two texts hold no pairs
    operations = [c["operation"] for c in emulators.read_calls(world.emulator_dir)]
    assert operations.count("GetFoundationModel") == 1  # ValidateInput asked Bedrock, once
    assert world.notified() == ["Sluice fine-tune succeeded"]


def test_a_model_bedrock_cannot_fine_tune_fails_at_validate_input_naming_what_to_use(world: World) -> None:
    execution = world.run(_corpus_input(base_model="amazon.nova-lite-v1:0"))  # the on-demand id
    assert execution["status"] == "FAILED" and execution["error"] == "FineTuneInputError"
    assert "Bedrock cannot fine-tune amazon.nova-lite-v1:0 in us-east-1" in _cause(execution)
    assert "name amazon.nova-lite-v1:0:300k" in _cause(execution)
    assert "PrepareDataset" not in world.states(execution) and world.jobs() == []
    assert not world.s3.list_objects_v2(Bucket=PROCESSED, Prefix="finetune/").get("Contents")  # no dataset work
    assert world.notified() == ["Sluice fine-tune failed"]


def test_a_model_bedrock_does_not_know_here_is_refused(world: World) -> None:
    execution = world.run(_corpus_input(base_model="amazon.nova-pro-v1:0:300k"))  # not in the local catalogue
    assert execution["status"] == "FAILED" and execution["error"] == "FineTuneInputError"
    assert "is not a foundation model Bedrock knows in us-east-1" in _cause(execution)
    assert "amazon.nova-micro-v1:0:128k" in _cause(execution)


def test_a_legacy_model_still_trains_with_a_warning_in_the_output_and_the_report(world: World) -> None:
    titan = "amazon.titan-text-express-v1:0:8k"  # LEGACY, as only AWS's older page lists it
    execution = world.run(_corpus_input(base_model=titan, customization_type="CONTINUED_PRE_TRAINING"))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    (warning,) = json.loads(execution["output"])["warnings"]
    assert warning.startswith(f"{titan} is LEGACY in Bedrock (its end of life: ")
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=PROCESSED, Prefix="finetune/datasets/")["Contents"]]
    report = json.loads(
        world.s3.get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith("report.json")))["Body"].read()
    )
    assert report["warnings"][0] == warning and report["format"] == "continued_pretraining"
    train = world.s3.get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith("train.jsonl")))
    assert set(json.loads(train["Body"].read().splitlines()[0])) == {"input"}  # Titan continued pre-training


def test_a_check_bedrock_refuses_to_answer_is_skipped_with_a_warning(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse(
        monkeypatch,
        "GetFoundationModel",
        "AccessDeniedException",
        "not authorized to perform bedrock:GetFoundationModel",
    )
    execution = world.run(_corpus_input())
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    (warning,) = json.loads(execution["output"])["warnings"]
    assert "was not checked with Bedrock (bedrock:GetFoundationModel was denied)" in warning


def test_an_invalid_dataset_fails_before_any_job_naming_the_lines(world: World) -> None:
    lines = [
        {"prompt": "Where do pilots board?", "completion": "At the buoy."},
        "not json at all",
        {"prompt": "", "completion": "An empty prompt."},
        {"prompt": "When is high water?", "completion": "Late today."},
    ]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    world.s3.put_object(Bucket=PROCESSED, Key="finetune/uploads/bad.jsonl", Body=body.encode())
    payload = _corpus_input(
        customization_type="FINE_TUNING",
        custom_model_name="bad-data",
        dataset={"source": "s3", "uri": f"s3://{PROCESSED}/finetune/uploads/bad.jsonl"},
    )
    execution = world.run(payload)
    assert execution["status"] == "FAILED" and execution["error"] == "DatasetInvalidError"
    assert "line 2" in _cause(execution) and "line 3" in _cause(execution)
    assert world.jobs() == []  # nothing was spent
    assert world.notified() == ["Sluice fine-tune failed"]


def test_invalid_settings_fail_at_once_with_every_problem(world: World) -> None:
    execution = world.run(_corpus_input(hyperparameters={"epochCount": 99, "dropout": 0.5}))
    assert execution["status"] == "FAILED" and execution["error"] == "FineTuneInputError"
    assert "epochCount" in _cause(execution) and "dropout" in _cause(execution)
    assert world.states(execution)[0] == "ValidateInput" and "PrepareDataset" not in world.states(execution)


@pytest.mark.parametrize(("status", "error", "says"), [("Failed", "CustomizationJobFailed", "out of memory"),
                                                       ("Stopped", "CustomizationJobEnded", "ended Stopped")])  # fmt: skip
def test_a_job_that_fails_or_is_stopped_fails_the_execution_with_its_reason(
    world: World, monkeypatch: pytest.MonkeyPatch, status: str, error: str, says: str
) -> None:
    from moto.bedrock import models

    original = models.BedrockBackend.create_model_customization_job

    def create_then_end(self: Any, *args: Any, **kwargs: Any) -> Any:
        arn = original(self, *args, **kwargs)
        job = self.model_customization_jobs[arn.rsplit("/", 1)[-1]]
        job.status, job.failure_message = status, "The job ran out of memory" if status == "Failed" else None
        return arn

    monkeypatch.setattr(models.BedrockBackend, "create_model_customization_job", create_then_end)
    execution = world.run(_corpus_input())
    assert execution["status"] == "FAILED" and execution["error"] == error
    assert says in _cause(execution).lower() or says in _cause(execution)
    assert world.notified() == ["Sluice fine-tune failed"]


def test_an_unreadable_job_record_fails_its_trial_with_step_functions_own_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.bedrock import models

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the job record is unreadable")

    monkeypatch.setattr(models.BedrockBackend, "get_model_customization_job", broken)
    execution = world.run(_corpus_input())
    assert execution["status"] == "FAILED" and execution["error"] == "CustomizationJobFailed"
    assert "States.Runtime" in _cause(execution) and "unreadable" in _cause(execution)
    assert world.notified() == ["Sluice fine-tune failed"]


def test_an_error_step_functions_names_itself_still_reaches_the_fail_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the deployment record is unreadable")

    _answer(monkeypatch, "GetCustomModelDeployment", broken)
    execution = world.run(_corpus_input(deployment="on_demand"))
    assert execution["status"] == "FAILED" and execution["error"] == "StepFailed"
    assert _cause(execution).startswith("States.") and "unreadable" in _cause(execution)
    assert world.notified() == ["Sluice fine-tune failed"]


def test_a_job_followed_for_too_long_is_left_running_and_the_user_told(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.finetune import settings

    monkeypatch.setattr(settings, "MAX_CHECKS", 3)
    monkeypatch.setattr(moto_patches, "JOB_CHECKS_TO_COMPLETE", 100)
    execution = world.run(_corpus_input())
    assert execution["status"] == "FAILED" and execution["error"] == "JobStillRunning"
    assert "still running after 3 checks" in _cause(execution)
    assert world.states(execution).count("CheckJob") == 3 and world.jobs()[0]["status"] == "InProgress"
    assert world.notified() == ["Sluice fine-tune failed"]


def test_a_throttled_start_is_retried(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.bedrock import models
    from moto.core.exceptions import JsonRESTError

    original, calls = models.BedrockBackend.create_model_customization_job, []

    def throttled_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(models.BedrockBackend, "create_model_customization_job", throttled_once)
    execution = world.run(_corpus_input())
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    assert len(calls) == 2 and len(world.jobs()) == 1


def test_provisioned_throughput_is_bought_when_asked_and_waited_for(world: World) -> None:
    execution = world.run(_corpus_input(provisioned_throughput={"model_units": 1}))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    assert result["throughput"]["ProvisionedModelArn"].startswith("arn:aws:bedrock:")
    states = world.states(execution)
    assert states.count("CheckThroughput") == 2  # Creating, then InService
    operations = [c["operation"] for c in emulators.read_calls(world.emulator_dir)]
    assert operations.count("CreateProvisionedModelThroughput") == 1


def test_an_on_demand_deployment_is_created_waited_for_and_named_in_the_output(world: World) -> None:
    execution = world.run(_corpus_input(deployment="on_demand"))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    deployment = result["deployment"]
    arn = deployment["CustomModelDeploymentArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/")
    assert deployment["Status"] == "Active" and deployment["Usage"].endswith(
        f"call Converse (bedrock-runtime) with modelId {arn}"
    )
    assert "throughput" not in result
    states = world.states(execution)
    assert states.count("CheckDeployment") == 2 and "CreateThroughput" not in states  # Creating, then Active
    assert states[-5:] == ["EvaluationAsked?", "BatchAsked?", "Summarise", "NotifySuccess", "Done"]
    assert result["message"].endswith(f"Deployed on demand: call Converse with modelId {arn}")
    operations = [c["operation"] for c in emulators.read_calls(world.emulator_dir)]
    assert operations.count("CreateCustomModelDeployment") == 1
    emulator = emulators.installed()
    assert emulator is not None
    deployed = emulator.client("bedrock").get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert (
        deployed["modelArn"] == result["custom_model_arn"]
        and deployed["modelDeploymentName"] == "sluice-corpus-nova-od"
    )
    messages = world.sqs.receive_message(QueueUrl=world.notifications, MaxNumberOfMessages=10)["Messages"]
    (message,) = [json.loads(m["Body"]) for m in messages]
    assert (
        message["Subject"] == "Sluice fine-tune succeeded" and f"call Converse with modelId {arn}" in message["Message"]
    )


@pytest.mark.parametrize("reason", [{"failureMessage": "No capacity."}, {}])
def test_a_failed_deployment_fails_the_execution_saying_the_model_is_ready(
    world: World, monkeypatch: pytest.MonkeyPatch, reason: dict[str, str]
) -> None:
    _amend(monkeypatch, "GetCustomModelDeployment", {"status": "Failed", **reason})
    execution = world.run(_corpus_input(deployment="on_demand"))
    assert execution["status"] == "FAILED" and execution["error"] == "CustomModelDeploymentFailed"
    assert reason.get("failureMessage", "gave no reason") in _cause(execution) and "is ready" in _cause(execution)
    assert world.notified() == ["Sluice fine-tune failed"]


def test_on_demand_for_a_family_aws_does_not_serve_on_demand_is_refused_before_any_job(world: World) -> None:
    execution = world.run(_corpus_input(base_model="meta.llama3-1-8b-instruct-v1:0:128k", deployment="on_demand"))
    assert execution["status"] == "FAILED" and execution["error"] == "FineTuneInputError"
    assert "Meta Llama 3.1 cannot be deployed on demand" in _cause(execution) and world.jobs() == []


def test_the_local_bedrock_deploys_a_custom_model_once_per_client_token(tmp_path: Path) -> None:
    bedrock = emulators.Emulator(tmp_path).client("bedrock")
    model = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdef123456"
    request = {"modelDeploymentName": "bot-od", "modelArn": model, "clientRequestToken": "token-1"}
    arn = bedrock.create_custom_model_deployment(**request)["customModelDeploymentArn"]
    assert bedrock.create_custom_model_deployment(**request)["customModelDeploymentArn"] == arn  # the same again
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.create_custom_model_deployment(**{**request, "clientRequestToken": "token-2"})  # the name is taken
    first, second = (bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn) for _ in range(2))
    assert (first["status"], second["status"]) == ("Creating", "Active")
    assert second["modelArn"] == model and second["modelDeploymentName"] == "bot-od"
    assert (
        bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="bot-od")["customModelDeploymentArn"] == arn
    )
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="nobody")


def test_a_scheduled_run_retrains_only_when_the_corpus_changed(world: World) -> None:
    scheduled = _corpus_input(retrain_when_changed=0.2)
    first = world.run(scheduled, name="weekly-1")
    assert first["status"] == "SUCCEEDED" and "PrepareDataset" in world.states(first)
    again = world.run(scheduled, name="weekly-2")
    assert again["status"] == "SUCCEEDED" and world.states(again)[-1] == "NothingToRetrain"
    assert len(world.jobs()) == 1


_SHAPES = {  # the keys of a training record, per event: each family's own format
    "finetune_corpus.json": {"schemaVersion", "system", "messages"},
    "finetune_retrain_schedule.json": {"schemaVersion", "system", "messages"},
    "finetune_nova_s3.json": {"schemaVersion", "system", "messages"},
    "finetune_llama_s3.json": {"prompt", "completion"},
    "finetune_claude_haiku_s3.json": {"system", "messages"},
    "finetune_corpus_faq_nova.json": {"schemaVersion", "system", "messages"},
    "finetune_search.json": {"schemaVersion", "system", "messages"},
}


def test_every_fine_tune_input_in_events_is_run_below() -> None:
    assert {p.name for p in (ROOT / "events").glob("finetune_*.json")} == set(_SHAPES)


@pytest.mark.parametrize("event", sorted(_SHAPES))
def test_every_console_input_in_events_runs_to_a_custom_model(world: World, event: str) -> None:
    payload = {**json.loads((ROOT / "events" / event).read_text()), "poll_seconds": 1}
    pairs = [
        {"system": "You answer for the harbour office.", "prompt": f"When does pilot {i} board?",
         "completion": f"Pilot {i} boards at buoy {i % 7} on the rising tide."}
        for i in range(120)
    ]  # fmt: skip
    body = "\n".join(json.dumps(pair) for pair in pairs).encode()
    if payload["dataset"]["source"] == "s3":
        uri = payload["dataset"]["uri"].replace("REPLACE-WITH-ProcessedBucketName", PROCESSED)
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        world.s3.put_object(Bucket=bucket, Key=key, Body=body)
        payload["dataset"]["uri"] = uri
    elif payload["customization_type"] == "FINE_TUNING":
        _ingest(world.s3, boto3.client("dynamodb"), {"faq/pilots.jsonl": body.decode()})
    execution = world.run(payload)
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=PROCESSED, Prefix="finetune/datasets/")["Contents"]]
    train = world.s3.get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith("train.jsonl")))
    assert set(json.loads(train["Body"].read().splitlines()[0])) == _SHAPES[event]


def test_each_scheduled_run_names_its_model_and_throughput_apart() -> None:
    from sluice.finetune.workflow import FineTuneSteps

    steps = FineTuneSteps(documents=None, reader=None, writer=None, processed_bucket="b", readable_buckets=frozenset())  # type: ignore[arg-type]
    scheduled = _corpus_input(custom_model_name="a" * 60 + "_", retrain_when_changed=0.2, provisioned_throughput=True)
    first, second = (steps.validate(scheduled, name)["settings"] for name in ("weekly-1", "weekly-2"))
    assert first["lineage"] == second["lineage"] == "a" * 60 + "_"  # both compare with the same last model
    for name in ("custom_model_name", "throughput_name"):
        assert first[name] != second[name] and len(first[name]) <= 63 and "_-" not in first[name]
    assert first["throughput_client_token"] != first["client_token"]
    on_demand = {**scheduled, "deployment": "on_demand"}
    del on_demand["provisioned_throughput"]
    third, fourth = (steps.validate(on_demand, name)["settings"] for name in ("weekly-3", "weekly-4"))
    assert third["deployment_name"] != fourth["deployment_name"] and len(third["deployment_name"]) <= 63
    assert third["deployment_client_token"] not in (third["client_token"], fourth["deployment_client_token"])


# A hyperparameter search ------------------------------------------------------------------------------

GRID = {"grid": {"learningRate": [0.00001, 0.00005], "epochCount": [1, 2]}, "max_parallel": 2}


def _custom_models() -> list[str]:
    return [m["modelName"] for m in boto3.client("bedrock").list_custom_models()["modelSummaries"]]


def test_a_search_runs_every_trial_keeps_the_best_by_validation_loss_and_deletes_the_rest(world: World) -> None:
    execution = world.run(_corpus_input(search=GRID))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    search = result["search"]
    assert [t["hyperparameters"] for t in search["trials"]] == [
        {"learningRate": "0.00001", "epochCount": "1"},
        {"learningRate": "0.00001", "epochCount": "2"},
        {"learningRate": "0.00005", "epochCount": "1"},
        {"learningRate": "0.00005", "epochCount": "2"},
    ]
    losses = {t["trial"]: (t["training_loss"], t["validation_loss"]) for t in search["trials"]}
    expected = {f"t{n}": moto_patches.local_losses({"learningRate": lr, "epochCount": e})
                for n, (lr, e) in enumerate([("0.00001", "1"), ("0.00001", "2"), ("0.00005", "1"), ("0.00005", "2")], 1)}  # fmt: skip
    assert losses == expected
    # the lowest training loss (t4) overfits: validation loss decides
    assert search["best"] == "t2" and search["chosen_by"] == "validation_loss"
    assert min(losses, key=lambda t: losses[t][0]) == "t4"
    assert result["custom_model_name"] == "sluice-corpus-nova-t2"
    assert _custom_models() == ["sluice-corpus-nova-t2"]  # the losers' storage is not billed on
    assert [t.get("deleted", False) for t in search["trials"]] == [True, False, True, True]
    assert {j["jobName"] for j in world.jobs()} == {f"run-1-t{n}" for n in range(1, 5)}
    assert world.states(execution).count("StartCustomizationJobWithValidation") == 4
    assert "t2 (learningRate=0.00001, epochCount=2): validation loss" in result["message"]
    assert sum(t["estimated_training_tokens"] for t in search["trials"]) == result["estimated_training_tokens"]


def test_a_search_that_keeps_all_deletes_no_model(world: World) -> None:
    execution = world.run(_corpus_input(search={**GRID, "keep": "all"}))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    assert len(_custom_models()) == 4


def _failing_jobs(monkeypatch: pytest.MonkeyPatch, fails: Any) -> None:
    from moto.bedrock import models

    original = models.BedrockBackend.create_model_customization_job

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        arn = original(self, *args, **kwargs)
        job = self.model_customization_jobs[arn.rsplit("/", 1)[-1]]
        if fails(job.hyper_parameters):
            job.status, job.failure_message = "Failed", "Training diverged"
        return arn

    monkeypatch.setattr(models.BedrockBackend, "create_model_customization_job", create)


def test_a_failed_trial_does_not_fail_the_search(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_jobs(monkeypatch, lambda hp: hp["epochCount"] == "2" and hp["learningRate"] == "0.00001")
    execution = world.run(_corpus_input(search=GRID))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    search = json.loads(execution["output"])["search"]
    failed = next(t for t in search["trials"] if t["trial"] == "t2")
    assert failed["status"] == "Failed" and failed["reason"] == "Training diverged" and "validation_loss" not in failed
    assert search["best"] == "t3"  # the next lowest validation loss


def test_a_search_whose_every_trial_failed_fails_naming_each(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_jobs(monkeypatch, lambda hp: True)
    execution = world.run(_corpus_input(search=GRID))
    assert execution["status"] == "FAILED" and execution["error"] == "CustomizationJobFailed"
    assert "Every trial of the search failed" in _cause(execution)
    assert all(f"trial t{n} (Failed): Training diverged" in _cause(execution) for n in range(1, 5))
    assert world.notified() == ["Sluice fine-tune failed"]


def test_a_search_over_the_token_budget_is_refused_before_any_job(world: World) -> None:
    execution = world.run(_corpus_input(search=GRID, max_training_tokens=1000))
    assert execution["status"] == "FAILED" and execution["error"] == "DatasetInvalidError"
    assert "x 1 + 2 + 1 + 2 epochs), over max_training_tokens 1,000" in _cause(execution)
    assert world.jobs() == [] and "RunTrials" not in world.states(execution)


def test_a_search_never_runs_more_jobs_at_once_than_the_account_may(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice_local.emulators import bedrock

    monkeypatch.setattr(bedrock, "JOB_QUOTA", 1)
    execution = world.run(_corpus_input(search=GRID))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    warnings = json.loads(execution["output"])["warnings"]
    assert any("max_parallel lowered from 2 to 1" in w for w in warnings)
    history = world.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    running = peak = 0
    for event in history:  # trials run one after another: each ends before the next starts
        running += {"MapIterationStarted": 1, "MapIterationSucceeded": -1}.get(event["type"], 0)
        peak = max(peak, running)
    assert peak == 1 and [e["type"] for e in history].count("MapIterationStarted") == 4


# Evaluation against the base model ---------------------------------------------------------------------


def test_an_evaluation_scores_both_models_and_keeps_a_custom_model_that_wins(world: World) -> None:
    execution = world.run(
        _corpus_input(deployment="on_demand", validation_split=0.5, evaluation={}, promote_only_if_better=True)
    )
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    evaluation = result["evaluation"]
    assert evaluation["prompts"] >= 2 and evaluation["failed_prompts"] == 0
    assert set(evaluation["metrics"]) == {"exact_match", "token_f1", "rouge_l"}
    f1 = evaluation["metrics"]["token_f1"]
    assert f1["custom"] > f1["base"] and evaluation["custom_wins"] and evaluation["promoted"]
    assert evaluation["base_model"] == "amazon.nova-micro-v1:0"  # the on-demand id of the customized one
    assert evaluation["custom_model"] == result["deployment"]["CustomModelDeploymentArn"]
    states = world.states(execution)
    assert states[states.index("DescribeDeployment") :][:5] == [
        "DescribeDeployment", "EvaluationAsked?", "Evaluate", "JudgeAsked?", "PromoteOrWithdraw?"
    ]  # fmt: skip
    answers = world.s3.get_object(Bucket=PROCESSED, Key="finetune/evaluations/run-1/answers.jsonl")["Body"].read()
    first = json.loads(answers.splitlines()[0])
    assert set(first) == {"source", "prompt", "reference", "base", "custom", "scores"}
    assert "token_f1" in result["message"] and "Deployed on demand" in result["message"]
    calls = [c for c in emulators.read_calls(world.emulator_dir) if c["operation"] == "Converse"]
    assert len(calls) == 2 * evaluation["prompts"]


def test_a_custom_model_that_does_not_win_is_withdrawn_when_asked(world: World) -> None:
    # On exact match neither model answers a held-out prompt word for word: a tie, which is no win.
    execution = world.run(
        _corpus_input(
            deployment="on_demand",
            validation_split=0.5,
            evaluation={"metrics": ["exact_match"]},
            promote_only_if_better=True,
        )
    )
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    assert result["evaluation"]["custom_wins"] is False and result["promoted"] is False
    assert "DeleteDeployment" in world.states(execution)
    assert "Not promoted" in result["message"] and "deployment was deleted" in result["message"]
    emulator = emulators.installed()
    assert emulator is not None
    bedrock = emulator.client("bedrock")
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_custom_model_deployment(
            customModelDeploymentIdentifier=result["deployment"]["CustomModelDeploymentArn"]
        )


def test_without_promote_only_if_better_a_losing_model_stays_deployed(world: World) -> None:
    execution = world.run(
        _corpus_input(deployment="provisioned", validation_split=0.5, evaluation={"metrics": ["exact_match"]})
    )
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    assert result["evaluation"]["custom_wins"] is False and result["evaluation"]["promoted"] is True
    assert "DeleteThroughput" not in world.states(execution) and "Provisioned throughput" in result["message"]


def test_a_judge_model_scores_both_sides_in_evaluation_jobs_and_joins_the_decision(world: World) -> None:
    evaluation = {
        "judge_model": "us.amazon.nova-pro-v1:0",
        "judge_metrics": ["Builtin.Correctness", "Builtin.Helpfulness"],
    }
    execution = world.run(
        _corpus_input(deployment="on_demand", validation_split=0.5, evaluation=evaluation, promote_only_if_better=True)
    )
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])["evaluation"]
    assert list(result["metrics"]) == ["exact_match", "token_f1", "rouge_l", "judge:Correctness", "judge:Helpfulness"]
    correctness = result["metrics"]["judge:Correctness"]
    assert correctness["custom"] > correctness["base"] and result["custom_wins"] and result["promoted"]
    assert "judge:Correctness" in result["table"] and "warnings" not in result
    assert [j["status"] for j in result["judge"]["jobs"]] == ["Completed", "Completed"]
    states = world.states(execution)
    assert states[states.index("Evaluate") :][:4] == ["Evaluate", "JudgeAsked?", "Judge", "StartJudge"]
    assert "ReadJudgement" in states
    calls = [c for c in emulators.read_calls(world.emulator_dir) if c["operation"] == "CreateEvaluationJob"]
    assert len(calls) == 2  # one judge job per side
    prefix = "finetune/evaluations/run-1/judge/output/"
    scored = [o["Key"] for o in world.s3.list_objects_v2(Bucket=PROCESSED, Prefix=prefix)["Contents"]]
    assert sorted(k.split("/models/")[1].split("/")[0] for k in scored) == ["base", "custom"]
    line = world.s3.get_object(Bucket=PROCESSED, Key="finetune/evaluations/run-1/judge/custom.jsonl")["Body"].read()
    record = json.loads(line.splitlines()[0])
    assert set(record) == {"prompt", "referenceResponse", "modelResponses"}
    assert record["modelResponses"][0]["modelIdentifier"] == "custom"


def test_a_judge_that_fails_leaves_the_decision_to_the_reference_metrics(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse(monkeypatch, "CreateEvaluationJob", "AccessDeniedException", "the evaluation role may not invoke the judge")
    execution = world.run(
        _corpus_input(deployment="on_demand", validation_split=0.5, evaluation={"judge_model": "amazon.nova-pro-v1:0"})
    )
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    evaluation = result["evaluation"]
    assert list(evaluation["metrics"]) == ["exact_match", "token_f1", "rouge_l"]
    (warning,) = evaluation["warnings"]
    assert "may not invoke the judge" in warning and "leaves out judge:Correctness, judge:Completeness" in warning
    assert "Evaluation warning: the judge's scores are incomplete" in result["message"]


# Batch inference ------------------------------------------------------------------------------------------


def _prompts(world: World, lines: list[str]) -> str:
    world.s3.put_object(Bucket=PROCESSED, Key="finetune/uploads/prompts.jsonl", Body="\n".join(lines).encode())
    return f"s3://{PROCESSED}/finetune/uploads/prompts.jsonl"


def _llama_input(world: World, **changes: Any) -> dict[str, Any]:
    pairs = [
        json.dumps({"prompt": f"When does pilot {i} board?", "completion": f"At buoy {i % 7}."}) for i in range(120)
    ]
    world.s3.put_object(Bucket=PROCESSED, Key="finetune/uploads/support.jsonl", Body="\n".join(pairs).encode())
    payload = json.loads((ROOT / "events" / "finetune_llama_s3.json").read_text())
    payload["dataset"]["uri"] = f"s3://{PROCESSED}/finetune/uploads/support.jsonl"
    return {**payload, "poll_seconds": 1, **changes}


def test_a_batch_of_prompts_is_answered_by_the_new_model_and_its_output_linked(world: World) -> None:
    prompts = _prompts(world, [json.dumps({"prompt": f"When does pilot {i} board?"}) for i in range(3)])
    execution = world.run(_llama_input(world, batch={"prompts": prompts}))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    batch = result["batch"]
    assert batch["status"] == "Completed" and batch["records"] == 3
    assert batch["output_uri"] == f"s3://{PROCESSED}/finetune/output/run-1/batch/"
    keys = [
        o["Key"] for o in world.s3.list_objects_v2(Bucket=PROCESSED, Prefix="finetune/output/run-1/batch/")["Contents"]
    ]
    out = next(k for k in keys if k.endswith("batch-input.jsonl.out"))
    first = json.loads(world.s3.get_object(Bucket=PROCESSED, Key=out)["Body"].read().splitlines()[0])
    assert first["recordId"] == "r000000001" and first["modelOutput"]["output"]["message"]["content"][0]["text"]
    assert first["modelInput"]["messages"][0]["content"][0]["text"] == "When does pilot 0 board?"
    assert "Batch inference over 3 prompts: Completed" in result["message"]
    states = world.states(execution)
    assert states[states.index("BatchAsked?") :][:3] == ["BatchAsked?", "StartBatch", "WaitForBatch"]


def test_a_model_bedrock_will_not_batch_is_reported_and_the_run_still_succeeds(world: World) -> None:
    prompts = _prompts(world, [json.dumps({"prompt": "Where do pilots board?"})])
    execution = world.run(_corpus_input(batch={"prompts": prompts}))  # a custom Nova model
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    assert result["batch"]["status"] == "NotRun" and "not supported" in result["batch"]["reason"]
    assert "Batch inference did not run: Bedrock.ValidationException" in result["message"]


def test_a_batch_job_that_cannot_be_followed_is_reported_started_not_missing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse(
        monkeypatch,
        "GetModelInvocationJob",
        "AccessDeniedException",
        "not authorized to perform bedrock:GetModelInvocationJob",
    )
    prompts = _prompts(world, [json.dumps({"prompt": "When does pilot 1 board?"})])
    execution = world.run(_llama_input(world, batch={"prompts": prompts}))
    assert execution["status"] == "SUCCEEDED", _cause(execution)
    result = json.loads(execution["output"])
    batch = result["batch"]
    assert batch["status"] == "NotFollowed" and batch["job_arn"].startswith("arn:aws:bedrock:")
    assert "AccessDeniedException" in batch["reason"]
    assert f"Batch inference job {batch['job_arn']} started; it could not be followed" in result["message"]


def test_bad_batch_prompts_fail_before_any_job(world: World) -> None:
    prompts = _prompts(world, [json.dumps({"prompt": "Fine"}), "not json", json.dumps({"question": "?"})])
    execution = world.run(_corpus_input(batch={"prompts": prompts}))
    assert execution["status"] == "FAILED" and execution["error"] == "DatasetInvalidError"
    assert "prompts.jsonl line 2: not valid JSON" in _cause(execution) and "line 3: not a prompt" in _cause(execution)
    assert world.jobs() == []


def test_a_throughput_that_fails_fails_the_execution_saying_the_model_is_ready(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _amend(
        monkeypatch, "GetProvisionedModelThroughput", {"status": "Failed", "failureMessage": "Insufficient capacity"}
    )
    execution = world.run(_corpus_input(deployment="provisioned"))
    assert execution["status"] == "FAILED" and execution["error"] == "ProvisionedThroughputFailed"
    assert "Insufficient capacity" in _cause(execution) and "custom-model/sluice-corpus-nova is ready" in _cause(
        execution
    )
    assert world.notified() == ["Sluice fine-tune failed"]

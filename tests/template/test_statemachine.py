"""statemachine/*.asl.json: valid Amazon States Language (asl-validator), every Task (in a Map's
iterations too) retrying transient errors, every Choice with a Default, ARNs arriving only through
DefinitionSubstitutions; and the fine-tune workflow's own rules a console user relies on: every Task
catches what it does not retry into a failure notification. The backfill workflow's own rules:
test_backfill.py."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from sluice.adapters.aws import TRANSIENT_CODES
from template.conftest import ROOT

pytestmark = pytest.mark.template
ASL = ROOT / "statemachine" / "finetune.asl.json"
MACHINES = {"FineTuneStateMachine": ASL, "BackfillStateMachine": ROOT / "statemachine" / "backfill.asl.json"}
VALIDATOR = ROOT / ".venv" / "tools" / "node" / "node_modules" / ".bin" / "asl-validator"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


@pytest.mark.parametrize("machine", MACHINES)
def test_asl_validator_accepts_the_definition(machine: str) -> None:
    assert VALIDATOR.exists(), "asl-validator is not installed; run make install"
    path = str(MACHINES[machine])
    result = subprocess.run([str(VALIDATOR), "--json-path", path], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("machine", MACHINES)
def test_every_task_retries_with_jitter_and_every_choice_has_a_default(machine: str) -> None:
    definition = json.loads(MACHINES[machine].read_text())
    for name, state in _tasks(definition["States"]).items():
        assert state.get("Retry"), f"{name} has no Retry"
        assert all(rule.get("JitterStrategy") == "FULL" for rule in state["Retry"]), name
    for name, state in _states(definition["States"]).items():
        if state["Type"] == "Choice":
            assert "Default" in state, f"{name} has no Default"


def test_every_task_catches(definition: dict[str, Any]) -> None:
    for name, state in definition["States"].items():
        if state["Type"] != "Task":
            continue
        catches = state.get("Catch") or []
        assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} does not catch everything"
        targets = {c["Next"] for c in catches}
        reported = name.startswith("Delete") or "Batch" in name  # a failed withdrawal or batch: reported
        allowed = {"Summarise"} if reported else {"NotifyFailure", "ReadProblems", "ErrorNamed?", "Done"}
        assert targets <= allowed, (name, targets)
    trial = definition["States"]["RunTrials"]["ItemProcessor"]["States"]
    for name, state in trial.items():  # a trial's error is its outcome, so one trial cannot fail the search
        if state["Type"] == "Task":
            assert state.get("Retry") and [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name
            assert trial[state["Catch"][0]["Next"]].get("End") is True, name


def test_every_failure_path_ends_in_the_fail_state(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert states["NotifyFailure"]["Next"] == "ErrorNamed?"
    assert {states["ErrorNamed?"]["Default"], states["NameStepFailure"]["Next"]} == {"FineTuneFailed"}
    assert states["FineTuneFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


@pytest.mark.parametrize("name", MACHINES)
def test_arns_arrive_only_through_definition_substitutions(name: str, source: dict[str, Any]) -> None:
    text = MACHINES[name].read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    machine = source["Resources"][name]["Properties"]
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert not re.search(r"arn:aws:(?!states:::)", text), "a literal ARN other than a service integration"
    assert machine["DefinitionUri"] == f"statemachine/{MACHINES[name].name}"


def test_the_workflow_reads_as_the_issue_describes(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] == "ValidateInput"
    assert states["ValidateInput"]["Next"] == "RetrainRequested?"
    assert states["PrepareDataset"]["Next"] == "RunTrials"
    trials = states["RunTrials"]
    assert trials["Type"] == "Map" and trials["ItemsPath"] == "$.jobs" and trials["Next"] == "PickBest"
    assert trials["MaxConcurrencyPath"] == "$.settings.max_parallel"  # at most max_parallel jobs at once
    job = trials["ItemProcessor"]["States"]
    assert job["WaitForJob"]["SecondsPath"] == "$.job.poll_seconds"  # waits come from the input
    assert job["JobStatus?"]["Default"] == "WaitForJob"
    assert [states["PickBest"]["Next"], states["RecordModel"]["Next"]] == ["RecordModel", "HowToServe?"]
    assert states["Summarise"]["Next"] == "NotifySuccess" and states["NotifySuccess"]["Next"] == "Done"
    assert states["NotifySuccess"]["Parameters"]["Message.$"] == "$.result.message"


def _states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, those of parallel branches and of Map iterations included."""
    found = {}
    for name, state in states.items():
        found[name] = state
        for branch in state.get("Branches", []):
            found |= _states(branch["States"])
        if "ItemProcessor" in state:
            found |= _states(state["ItemProcessor"]["States"])
    return found


def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in _states(states).items() if state["Type"] == "Task"}


def _retried(state: dict[str, Any]) -> set[str]:
    return {error for rule in state.get("Retry", []) for error in rule["ErrorEquals"]}


class _FailingSteps:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def run(self, step: str, state: dict[str, Any], execution: str) -> dict[str, Any]:
        raise self.exc


def _error_name(exc: Exception) -> str:
    """The error name Step Functions sees when the fine-tune function raises ``exc``."""
    from sluice.bootstrap.finetune import FineTuneFunction

    try:
        FineTuneFunction(_FailingSteps(exc)).run("prepare-dataset", {}, "x")  # type: ignore[arg-type]
    except Exception as raised:  # noqa: BLE001 - whatever it is, its name is what the ASL matches
        return type(raised).__name__
    raise AssertionError("the step did not fail")


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_every_transient_aws_error_in_a_step_is_retried_by_every_lambda_task(
    definition: dict[str, Any], code: str
) -> None:
    from botocore.exceptions import ClientError

    name = _error_name(ClientError({"Error": {"Code": code, "Message": "try again"}}, "PutObject"))
    lambda_tasks = {n: s for n, s in _tasks(definition["States"]).items() if s["Resource"].endswith(":lambda:invoke")}
    assert lambda_tasks
    for task, state in lambda_tasks.items():
        assert name in _retried(state), f"{task} does not retry {code} (raised as {name})"


def test_a_step_error_a_retry_cannot_fix_is_not_retried(definition: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError, ParamValidationError

    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
    for exc in (refused, ParamValidationError(report="bad")):
        name = _error_name(exc)
        for task, state in _tasks(definition["States"]).items():
            assert name not in _retried(state), f"{task} retries {name}"
    from botocore.exceptions import ReadTimeoutError

    timeout = _error_name(ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"))
    assert all(timeout in _retried(s) for s in _tasks(definition["States"]).values() if "lambda" in s["Resource"])


def test_aws_sdk_tasks_retry_every_error_the_one_rule_calls_transient(definition: dict[str, Any]) -> None:
    """A Bedrock or SNS task retries each error its operation can return that the adapters' rule
    (``sluice.adapters.aws.is_transient``: a transient code, or HTTP 5xx) would retry."""
    import botocore.session

    session = botocore.session.get_session()
    checked = 0
    for task, state in _tasks(definition["States"]).items():
        match = re.fullmatch(r"arn:aws:states:::(?:aws-sdk:)?(\w+):(\w+)(?:\.\w+)?", state["Resource"])
        if not match or match[1] == "lambda":
            continue
        service, action = match[1], match[2][0].upper() + match[2][1:]
        operation = session.get_service_model(service).operation_model(action)
        transient = {
            e.name
            for e in operation.error_shapes
            if e.name in TRANSIENT_CODES or int(e.metadata.get("error", {}).get("httpStatusCode", 0)) >= 500
        }
        prefixes = {n.split(".")[0] for n in _retried(state)}
        assert len(prefixes) == 1, f"{task}: {prefixes}"
        prefix = prefixes.pop()
        missing = {f"{prefix}.{e}" for e in transient} - _retried(state)
        assert not missing, f"{task} ({service} {action}) does not retry {missing}"
        checked += 1
    assert checked >= 5


def test_the_on_demand_path_is_built_and_retried_like_the_throughput_one(definition: dict[str, Any]) -> None:
    states = definition["States"]
    serve = states["HowToServe?"]
    assert states["RecordModel"]["Next"] == "HowToServe?" and serve["Default"] == "BatchAsked?"
    assert {c["Variable"]: c["Next"] for c in serve["Choices"]} == {
        "$.settings.throughput_name": "CreateThroughput",
        "$.settings.deployment_name": "CreateDeployment",
    }
    create, check = states["CreateDeployment"], states["CheckDeployment"]
    assert create["Resource"] == "arn:aws:states:::aws-sdk:bedrock:createCustomModelDeployment"
    assert check["Resource"] == "arn:aws:states:::aws-sdk:bedrock:getCustomModelDeployment"
    assert (
        create["Retry"] == states["CreateThroughput"]["Retry"] and check["Retry"] == states["CheckThroughput"]["Retry"]
    )
    assert (
        create["Catch"] == states["CreateThroughput"]["Catch"] and check["Catch"] == states["CheckThroughput"]["Catch"]
    )
    assert create["Parameters"]["ClientRequestToken.$"] == "$.settings.deployment_client_token"  # idempotent
    assert [create["Next"], states["WaitForDeployment"]["Next"], check["Next"]] == [
        "WaitForDeployment",
        "CheckDeployment",
        "DeploymentStatus?",
    ]
    assert states["WaitForDeployment"]["SecondsPath"] == "$.settings.poll_seconds"
    status = states["DeploymentStatus?"]
    assert status["Default"] == "WaitForDeployment"
    assert {states[c["Next"]].get("Next") for c in status["Choices"]} == {"EvaluationAsked?", "NotifyFailure"}
    assert states["ThroughputStatus?"]["Choices"][0]["Next"] == "EvaluationAsked?"


def test_an_evaluation_runs_once_the_model_is_served_and_a_loser_is_withdrawn(definition: dict[str, Any]) -> None:
    states = definition["States"]
    asked = states["EvaluationAsked?"]
    assert asked["Choices"] == [{"Variable": "$.settings.evaluation", "IsPresent": True, "Next": "Evaluate"}]
    assert asked["Default"] == "BatchAsked?" and states["Evaluate"]["Next"] == "JudgeAsked?"
    assert states["PromoteOrWithdraw?"]["Default"] == "BatchAsked?"
    which = states["WithdrawWhich?"]
    assert [which["Choices"][0]["Next"], which["Default"]] == ["DeleteDeployment", "DeleteThroughput"]
    assert states["DeleteDeployment"]["Resource"].endswith(":bedrock:deleteCustomModelDeployment")
    assert states["DeleteThroughput"]["Resource"].endswith(":bedrock:deleteProvisionedModelThroughput")


def test_the_state_machine_may_deploy_custom_models_on_demand_and_no_more(source: dict[str, Any]) -> None:
    policies = source["Resources"]["FineTuneStateMachine"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])}
    deploy = statements["DeployOnDemand"]
    assert deploy["Action"] == [
        "bedrock:CreateCustomModelDeployment",
        "bedrock:GetCustomModelDeployment",
        "bedrock:TagResource",
    ]
    account = "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}"
    assert deploy["Resource"] == [
        {"Fn::Sub": f"{account}:custom-model/*"},
        {"Fn::Sub": f"{account}:custom-model-deployment/*"},
    ]
    assert statements["ProvisionThroughput"]["Resource"][0] == deploy["Resource"][0]  # as tightly as throughput


def test_the_fine_tune_function_may_ask_bedrock_what_its_steps_need_and_no_more(source: dict[str, Any]) -> None:
    """ValidateInput asks Bedrock (GetFoundationModel) about the base model; an AccessDenied only
    skips the check, so a missing grant would go unnoticed but for this test. PickBest deletes only
    the custom models this stack tagged; Evaluate calls the base and the served custom model."""
    policies = source["Resources"]["FineTuneFunction"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])}
    region = "arn:${AWS::Partition}:bedrock:${AWS::Region}"
    assert statements["ReadFoundationModels"]["Action"] == "bedrock:GetFoundationModel"
    assert statements["ReadFoundationModels"]["Resource"] == {"Fn::Sub": f"{region}::foundation-model/*"}
    delete = statements["DeleteLosingTrials"]
    assert delete["Action"] == "bedrock:DeleteCustomModel"
    assert delete["Condition"] == {"StringEquals": {"aws:ResourceTag/sluice:stack": {"Ref": "AWS::StackName"}}}
    assert statements["AskBaseAndCustomModels"]["Action"] == "bedrock:InvokeModel"
    assert statements["ReadTheJobQuota"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:servicequotas:${AWS::Region}:${AWS::AccountId}:bedrock/L-0406044C"
    }
    bedrock = {a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {a for a in bedrock if a.startswith("bedrock:")} == {
        "bedrock:GetFoundationModel",
        "bedrock:DeleteCustomModel",
        "bedrock:GetInferenceProfile",
        "bedrock:ListInferenceProfiles",
        "bedrock:GetFoundationModelAvailability",
        "bedrock:InvokeModel",
    }
    assert "Bedrock whether the base model" in json.loads(ASL.read_text())["States"]["ValidateInput"]["Comment"]


def test_the_state_machine_withdraws_only_what_its_stack_deployed(source: dict[str, Any]) -> None:
    policies = source["Resources"]["FineTuneStateMachine"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])}
    withdraw = statements["WithdrawALosingModel"]
    assert withdraw["Action"] == ["bedrock:DeleteCustomModelDeployment", "bedrock:DeleteProvisionedModelThroughput"]
    assert withdraw["Condition"] == {"StringEquals": {"aws:ResourceTag/sluice:stack": {"Ref": "AWS::StackName"}}}


def test_a_judge_runs_as_bedrock_evaluation_jobs_under_its_own_role(
    definition: dict[str, Any], source: dict[str, Any]
) -> None:
    states = definition["States"]
    assert states["Evaluate"]["Next"] == "JudgeAsked?" and states["JudgeAsked?"]["Default"] == "PromoteOrWithdraw?"
    judge = states["Judge"]
    assert judge["Type"] == "Map" and judge["ItemsPath"] == "$.evaluation.judge_jobs"
    assert states["ReadJudgement"]["Next"] == "PromoteOrWithdraw?"
    start = judge["ItemProcessor"]["States"]["StartJudge"]
    assert start["Parameters"]["RoleArn"] == "${EvaluationRoleArn}"
    assert start["Parameters"]["InferenceConfig"] == {
        "Models": [{"PrecomputedInferenceSource": {"InferenceSourceIdentifier.$": "$.judge.side"}}]
    }  # the answers are brought: the judge calls neither judged model
    role = source["Resources"]["FineTuneEvaluationRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].endswith(":evaluation-job/*")
    (policy,) = role["Policies"]
    resources = {s["Sid"]: s["Resource"] for s in policy["PolicyDocument"]["Statement"]}
    assert resources["ReadAnswersWriteScores"] == {"Fn::Sub": "${ProcessedBucket.Arn}/finetune/evaluations/*"}
    machine = source["Resources"]["FineTuneStateMachine"]["Properties"]
    statements = {s["Sid"]: s for p in machine["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])}
    passed = [s["Resource"] for s in statements.values() if s["Action"] == "iam:PassRole"]
    assert passed == [
        {"Fn::GetAtt": ["FineTuneEvaluationRole", "Arn"]},
        {"Fn::GetAtt": ["FineTuneCustomizationRole", "Arn"]},
    ]
    assert all(
        s["Condition"] == {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}
        for s in statements.values()
        if s["Action"] == "iam:PassRole"
    )


def test_a_batch_runs_the_new_model_under_the_customization_role(
    definition: dict[str, Any], source: dict[str, Any]
) -> None:
    states = definition["States"]
    assert {states[n]["Default"] for n in ("HowToServe?", "EvaluationAsked?", "PromoteOrWithdraw?")} == {"BatchAsked?"}
    start = states["StartBatch"]
    assert start["Parameters"]["ModelId.$"] == "$.check.OutputModelArn"
    assert (
        start["Parameters"]["RoleArn"] == "${CustomizationRoleArn}"
        and start["Parameters"]["ModelInvocationType"] == "Converse"
    )
    assert [c["Next"] for c in start["Catch"]] == ["Summarise"]  # a model Bedrock will not batch: reported
    trust = source["Resources"]["FineTuneCustomizationRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    arns = [a["Fn::Sub"].rsplit(":", 1)[-1] for a in trust["Condition"]["ArnLike"]["aws:SourceArn"]]
    assert arns == ["model-customization-job/*", "model-invocation-job/*"]

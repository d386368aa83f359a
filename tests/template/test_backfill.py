"""The backfill: statemachine/backfill.asl.json keeps the contract `sluice backfill` and the console rely
on (Plan → FromInventory? → a Distributed Map of Express children that queue a batch and pace it →
Summarise; a failed run redrivable), reads only what Plan returns and passes each batch what the
function reads; and its two roles grant exactly what each needs: the state machine lists RawBucket (and
reads RawBucket's inventories, when the stack names their bucket), runs its own children, writes their
results under ProcessedBucket's backfill-results/, invokes the function, and sends nothing; the function
reads the registry, heads RawBucket's objects, sends to the ingest queue only and keeps its own progress
partitions. Rules every state machine keeps: test_statemachine.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sluice.adapters.aws import TRANSIENT_CODES
from sluice.adapters.aws.sink_states import state_key
from sluice.backfill import BatchInput, Plan, batch_input_of
from sluice.sinks.knowledge_base import HOLD_KEY, MODE_HOLD
from template.conftest import ROOT
from template.test_security import _branches, _grants, render
from template.test_statemachine import _retried, _states, _tasks

pytestmark = pytest.mark.template
ASL = ROOT / "statemachine" / "backfill.asl.json"
MAPS = {"BackfillFromListing": "listing", "BackfillFromInventory": "inventory"}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


def test_the_workflow_plans_chooses_its_source_maps_and_sums_up(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] == "Plan" and states["Plan"]["Next"] == "FromInventory?"
    assert states["Plan"]["Parameters"]["Payload"] == {
        "action": "plan",
        "input.$": "$",
        "execution.$": "$$.Execution.Name",
    }
    choice = states["FromInventory?"]
    assert choice["Choices"] == [{"Variable": "$.manifest", "IsNull": False, "Next": "BackfillFromInventory"}]
    assert choice["Default"] == "BackfillFromListing"
    assert {states[m]["Next"] for m in MAPS} == {"Summarise"} and states["Summarise"]["End"] is True
    assert states["Summarise"]["Parameters"]["Payload"] == {"action": "summary", "run.$": "$.run"}
    assert definition.get("TimeoutSeconds") is None  # a large bucket at a low rate runs for days


def test_each_map_runs_express_children_that_queue_a_batch_and_pace_it(definition: dict[str, Any]) -> None:
    states = definition["States"]
    readers = {
        "BackfillFromListing": {
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": {"Bucket": "${RawBucketName}", "Prefix.$": "$.prefix"},
        },
        "BackfillFromInventory": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "MANIFEST"},
            "Parameters": {"Bucket.$": "$.manifest.bucket", "Key.$": "$.manifest.key"},
        },
    }
    for name, reader in readers.items():
        state = states[name]
        assert state["Type"] == "Map" and state["Label"] == name and state["ItemReader"] == reader
        assert state["ItemBatcher"] == {
            "MaxItemsPerBatchPath": "$.batch_size",
            "BatchInput": {
                "run.$": "$.run",
                "rate.$": "$.rate",
                "dry_run.$": "$.dry_run",
                "concurrency.$": "$.max_concurrency",
                "kb_sync_mode.$": "$.kb_sync_mode",
            },
        }
        assert state["MaxConcurrencyPath"] == "$.max_concurrency" and state["ToleratedFailurePercentage"] == 0
        assert state["ResultPath"] is None  # progress lives in DynamoDB, never in the execution's history
        # The children's outputs go to S3: gathered into the state's output, a large run's would pass
        # its 256 KiB (25,000 batches of a million objects, ~20 bytes each) and fail the Map.
        assert state["ResultWriter"] == {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "${ProcessedBucketName}", "Prefix": "backfill-results/"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
        }
        processor = state["ItemProcessor"]
        assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
        queue = processor["States"][processor["StartAt"]]
        assert queue["Parameters"] == {
            "FunctionName": "${BackfillFunctionArn}",
            "Payload": {"action": "batch", "batch.$": "$"},
        }
        assert queue["ResultSelector"] == {"wait_seconds.$": "$.Payload.wait_seconds"}  # a child's output stays small
        pace = processor["States"][queue["Next"]]
        assert pace == {**pace, "Type": "Wait", "SecondsPath": "$.wait_seconds", "End": True}


def test_the_workflow_reads_only_what_plan_returns_and_gives_each_batch_what_it_reads(
    definition: dict[str, Any],
) -> None:
    """Every path the states after Plan read names a field of Plan's output; the BatchInput a child gets
    from a plan is what the batch reads."""
    planned = Plan("run-1", 2.5, 12, 40, dry_run=True, kb_sync_mode="ingestion-job").to_json()
    for name in MAPS:
        paths = definition["States"][name]["ItemBatcher"]["BatchInput"]
        given = {key.removesuffix(".$"): planned[path.removeprefix("$.")] for key, path in paths.items()}
        assert batch_input_of(given) == BatchInput("run-1", 2.5, 40, True, "ingestion-job")
    plan = set(planned)
    after_plan = {n: s for n, s in definition["States"].items() if n not in ("Plan", "ReadProblems", "InputRefused")}
    for name, state in after_plan.items():
        # A child reads its batch, and OutputPath the task's result, not the plan.
        own = {k: v for k, v in state.items() if k not in ("ItemProcessor", "OutputPath")}
        fields = set(re.findall(r'"\$\.(\w+)', json.dumps(own)))
        assert fields <= plan, (name, fields - plan)


def test_a_refused_input_fails_the_execution_with_its_problems_and_nothing_else_is_caught(
    definition: dict[str, Any],
) -> None:
    """Only Plan's refusal is caught, into a Fail state naming BackfillInputError with its problems as
    the cause. Anything else fails the state it happens in, which is what RedriveExecution reruns (a
    caught error would make the Fail state the one a redrive reruns)."""
    states = _states(definition["States"])
    assert states["Plan"]["Catch"] == [
        {"ErrorEquals": ["BackfillInputError"], "ResultPath": "$.error", "Next": "ReadProblems"}
    ]
    assert states["ReadProblems"]["Parameters"] == {
        "Error.$": "$.error.Error",
        "Details.$": "States.StringToJson($.error.Cause)",
    }
    assert states["ReadProblems"]["Next"] == "InputRefused"
    assert states["InputRefused"] == {
        "Type": "Fail",
        "ErrorPath": "$.error.Error",
        "CausePath": "$.error.Details.errorMessage",
    }
    assert [n for n, s in states.items() if "Catch" in s] == ["Plan"]


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def plan(self, *args: Any) -> Any:
        raise self.exc

    batch = summary = plan


def _error_name(exc: Exception) -> str:
    """The error name Step Functions sees when the backfill function meets ``exc``."""
    from sluice.bootstrap.backfill import BackfillFunction

    try:
        BackfillFunction(_Failing(exc)).handle({"action": "batch", "batch": {"Items": [{"Key": "k"}]}})  # type: ignore[arg-type]
    except Exception as raised:  # noqa: BLE001 - whatever it is, its name is what the ASL matches
        return type(raised).__name__
    raise AssertionError("the batch did not fail")


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_every_transient_aws_error_is_retried_by_every_task(definition: dict[str, Any], code: str) -> None:
    from botocore.exceptions import ClientError

    name = _error_name(ClientError({"Error": {"Code": code, "Message": "try again"}}, "SendMessageBatch"))
    for task, state in _tasks(definition["States"]).items():
        assert name in _retried(state), f"{task} does not retry {code} (raised as {name})"


def test_an_error_a_retry_cannot_fix_is_not_retried(definition: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError, ReadTimeoutError

    refused = _error_name(ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "HeadObject"))
    timeout = _error_name(ReadTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com"))
    for task, state in _tasks(definition["States"]).items():
        assert refused not in _retried(state) and "BackfillInputError" not in _retried(state), task
        assert timeout in _retried(state), task


# -- the roles -----------------------------------------------------------------------------------------------


def _granted(template: dict[str, Any], role: str) -> dict[str, tuple[list[str], list[str], Any]]:
    """Sid → (actions, resources as rendered, condition) of every Allow statement the role has: its
    inline policies and the IAM policies attached to it (SAM's policy templates have no Sid: their
    actions name them)."""
    attached = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy"
        and f"<{role}>" in map(render, _branches(resource["Properties"]["Roles"]))
    }
    return {
        grant.statement.get("Sid") or ",".join(grant.actions): (
            grant.actions,
            grant.resources,
            grant.statement.get("Condition"),
        )
        for grant in _grants(template)
        if grant.owner == role or grant.owner in attached
    }


def test_the_state_machine_lists_rawbucket_runs_its_children_writes_their_results_and_sends_nothing(
    transformed: dict[str, Any],
) -> None:
    region, account = "us-east-1", "123456789012"
    executions = f"arn:aws:states:{region}:{account}:execution:<BackfillStateMachine.Name>"
    assert _granted(transformed, "BackfillStateMachineRole") == {
        "lambda:InvokeFunction": (
            ["lambda:InvokeFunction"], [f"arn:aws:lambda:{region}:{account}:function:<BackfillFunction>*"], None
        ),
        "ListRawBucket": (["s3:ListBucket"], ["arn:<RawBucket>"], None),
        "ReadRawBucketsInventories": (["s3:GetObject"], ["arn:aws:s3:::<BackfillInventoryBucket>/*<RawBucket>/*"], None),
        "WriteItsMapRunsResults": (
            ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            ["arn:<ProcessedBucket>/backfill-results/*"],
            None,
        ),
        "UseTheDataKey": (["kms:Decrypt", "kms:GenerateDataKey"], ["arn:<DataKey>"], None),
        "StartItsChildren": (["states:StartExecution"], ["<BackfillStateMachine>"], None),
        "FollowAndStopItsChildren": (
            ["states:DescribeExecution", "states:StopExecution"], [f"{executions}:*", f"{executions}/*"], None
        ),
        "RedriveItsMapRuns": (["states:RedriveExecution"], [f"{executions}/*"], None),
        "VendedLogs": (
            [
                "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ],
            ["*"],
            None,
        ),
        "Tracing": (
            ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"],
            ["*"],
            None,
        ),
    }  # fmt: skip


def test_the_map_runs_results_expire_and_nothing_takes_them_for_sluices_files(source: dict[str, Any]) -> None:
    """backfill-results/ is a prefix of its own in ProcessedBucket: kept a month, outside what
    reconciliation lists (its phases list their own prefixes) and the knowledge base reads."""
    from sluice.pipeline.files import CHUNK_PREFIX

    bucket = source["Resources"]["ProcessedBucket"]["Properties"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireBackfillResults"] == {
        "Id": "ExpireBackfillResults",
        "Status": "Enabled",
        "Prefix": "backfill-results/",
        "ExpirationInDays": 30,
    }
    data_source = source["Resources"]["KnowledgeBaseDataSource"]["Properties"]
    assert data_source["DataSourceConfiguration"]["S3Configuration"]["InclusionPrefixes"] == [CHUNK_PREFIX]


def test_the_state_machine_reads_inventories_only_when_the_stack_names_their_bucket(source: dict[str, Any]) -> None:
    policies = source["Resources"]["BackfillStateMachine"]["Properties"]["Policies"]
    (conditional,) = [s for p in policies if isinstance(p, dict) for s in p.get("Statement", []) if "Fn::If" in s]
    condition, grant, otherwise = conditional["Fn::If"]
    assert condition == "HasBackfillInventory" and grant["Sid"] == "ReadRawBucketsInventories"
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert source["Conditions"]["HasBackfillInventory"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "BackfillInventoryBucket"}, ""]}]
    }
    assert source["Parameters"]["BackfillInventoryBucket"]["Default"] == ""


def test_the_function_sends_only_to_the_ingest_queue_and_keeps_only_its_own_progress(
    transformed: dict[str, Any],
) -> None:
    assert _granted(transformed, "BackfillFunctionRole") == {
        "kms:Decrypt": (["kms:Decrypt"], ["arn:aws:kms:us-east-1:123456789012:key/<DataKey>"], None),
        "LookUpTheRegistry": (["dynamodb:BatchGetItem"], ["arn:<DocumentsTable>"], None),
        "HeadRawObjects": (["s3:GetObject"], ["arn:<RawBucket>/*"], None),
        "QueueRechecks": (["sqs:SendMessage"], ["arn:<IngestQueue>"], None),
        "EncryptWithDataKey": (["kms:GenerateDataKey"], ["arn:<DataKey>"], None),
        "KeepItsRunsProgress": (
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
            ["arn:<ConnectorStateTable>"],
            {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["backfill#*"]}},
        ),
        "HoldTheKnowledgeBaseSyncMode": (
            ["dynamodb:GetItem", "dynamodb:PutItem"],
            ["arn:<DocumentsTable>"],
            {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["kb-mode#hold"]}},
        ),
    }


def test_the_function_reads_what_the_template_gives_it(source: dict[str, Any]) -> None:
    from sluice.adapters.aws.backfill import PARTITION_PREFIX
    from sluice.bootstrap.backfill import BackfillFunctionSettings

    function = source["Resources"]["BackfillFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    for branch in (1, 2):  # a stack with a knowledge base, and one without
        env = {
            k: render(v["Fn::If"][branch] if isinstance(v, dict) and "Fn::If" in v else v) for k, v in variables.items()
        }
        settings = BackfillFunctionSettings.from_env(env)  # raises ConfigurationError naming what is missing
        assert settings.knowledge_base is (branch == 1)
    assert (settings.backfill.raw_bucket, settings.progress_table) == ("<RawBucket>", "<ConnectorStateTable>")
    assert (settings.backfill.ingest_queue_url, settings.documents_table) == ("<IngestQueue>", "<DocumentsTable>")
    assert function["CodeUri"] == "functions/queue_backfill/"
    statements = {s["Sid"]: s for p in function["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])}
    leading = statements["KeepItsRunsProgress"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert leading == [f"{PARTITION_PREFIX}*"]  # the partitions the adapter writes
    hold = statements["HoldTheKnowledgeBaseSyncMode"]["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert hold == [state_key(MODE_HOLD, HOLD_KEY)["doc_id"]["S"]]  # the one item the hold is kept in
    assert function["Environment"]["Variables"]["KNOWLEDGE_BASE"] == {"Fn::If": ["HasKnowledgeBase", "yes", "no"]}


def test_operators_find_the_state_machine_and_the_function(source: dict[str, Any]) -> None:
    outputs = source["Outputs"]
    assert outputs["BackfillStateMachineArn"]["Value"] == {"Ref": "BackfillStateMachine"}
    assert outputs["BackfillFunctionName"]["Value"] == {"Ref": "BackfillFunction"}
    machine = source["Resources"]["BackfillStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD" and machine["DefinitionSubstitutions"] == {
        "BackfillFunctionArn": {"Fn::GetAtt": ["BackfillFunction", "Arn"]},
        "RawBucketName": {"Ref": "RawBucket"},
        "ProcessedBucketName": {"Ref": "ProcessedBucket"},
    }

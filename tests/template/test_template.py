"""template.yaml: the contract checks the scanners miss (docs/security.md), and checkov's skips, each
with its reason. cfn-lint and checkov themselves, in each KnowledgeBaseMode: test_cfn_lint.py and
test_checkov.py."""

from __future__ import annotations

import ast
import itertools
import json
import re
from typing import Any

import pytest

from sluice_local.template import substitute
from template.conftest import KNOWLEDGE_BASE_ARN, ROOT

pytestmark = pytest.mark.template


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_every_checkov_skip_says_why(source: dict[str, Any]) -> None:
    for name, resource in source["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name} skips {skip['id']} without a reason"
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]
    assert skipped
    for i in skipped:  # each global skip follows a comment that names it and says why
        check = lines[i].strip()[2:]
        reason = " ".join(line.strip("# ") for line in lines[:i] if line.strip().startswith("#"))
        assert f"{check} (" in reason and len(reason) > 80, f"{check} is skipped without a reason"
    assert not [
        (n, s["id"])
        for n, r in source["Resources"].items()
        for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
        if f"- {s['id']}" in "\n".join(lines)
    ], "a check skipped for every resource is skipped again in a resource"


def test_runtime_architecture_and_layer(source: dict[str, Any]) -> None:
    function_globals = source["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13" and function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    layer = source["Resources"]["SluiceLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert function_globals["Layers"] == [{"Ref": "SluiceLayer"}]


def test_sqs_event_sources_report_partial_failures(transformed: dict[str, Any]) -> None:
    mappings = _of_type(transformed, "AWS::Lambda::EventSourceMapping")
    assert mappings
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_visibility_timeout_is_six_times_the_function_timeout(transformed: dict[str, Any]) -> None:
    functions = _of_type(transformed, "AWS::Lambda::Function")
    queues = transformed["Resources"]
    for mapping in _of_type(transformed, "AWS::Lambda::EventSourceMapping").values():
        function = functions[mapping["Properties"]["FunctionName"]["Ref"]]
        queue = queues[mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        window = mapping["Properties"].get("MaximumBatchingWindowInSeconds", 0)
        assert queue["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"] + window


def test_every_queue_has_a_dead_letter_queue_that_outlives_it(transformed: dict[str, Any]) -> None:
    queues = _of_type(transformed, "AWS::SQS::Queue")
    sources = {k: v for k, v in queues.items() if "RedrivePolicy" in v["Properties"]}
    dead_letter_ids = {
        v["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for v in sources.values()
    }
    # every queue is a source or a dead-letter queue (of a queue, a rule or a schedule)
    assert set(queues) == set(sources) | dead_letter_ids | _dead_letter_queues(transformed)
    for source in sources.values():
        dlq = queues[source["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]
        assert dlq["Properties"]["MessageRetentionPeriod"] > source["Properties"]["MessageRetentionPeriod"]
        assert source["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 5
    for queue in queues.values():
        assert "KmsMasterKeyId" in queue["Properties"]


def test_buckets_are_tls_only(transformed: dict[str, Any]) -> None:
    buckets = set(_of_type(transformed, "AWS::S3::Bucket"))
    protected = set()
    for policy in _of_type(transformed, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if (
                statement.get("Effect") == "Deny"  # (a conditional statement is an Fn::If)
                and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            ):
                protected.add(policy["Properties"]["Bucket"]["Ref"])
    assert protected == buckets


def _statements(statements: list[Any]) -> list[dict[str, Any]]:
    """Policy statements, with both branches of a conditional (Fn::If) one."""
    flat = []
    for statement in statements:
        if "Fn::If" in statement:
            flat += [branch for branch in statement["Fn::If"][1:] if isinstance(branch, dict) and "Action" in branch]
        else:
            flat.append(statement)
    return flat


def test_no_inline_policy_grants_wildcard_actions(transformed: dict[str, Any]) -> None:
    for name, role in _of_type(transformed, "AWS::IAM::Role").items():
        policies = role["Properties"].get("Policies", [])
        policies = [p for policy in policies for p in (policy["Fn::If"][1:] if "Fn::If" in policy else [policy])]
        for policy in (p for p in policies if isinstance(p, dict) and "PolicyDocument" in p):
            for statement in _statements(policy["PolicyDocument"]["Statement"]):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not [a for a in actions if a == "*" or a.endswith(":*")], f"{name}: {actions}"


def test_idempotency_records_outlive_the_queue_retention(source: dict[str, Any]) -> None:
    from sluice.bootstrap.ingest import IDEMPOTENCY_TTL_SECONDS

    queue = source["Resources"]["IngestQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] <= IDEMPOTENCY_TTL_SECONDS


def test_outputs_name_what_operators_and_tests_need(source: dict[str, Any]) -> None:
    assert {
        "RawBucketName",
        "ProcessedBucketName",
        "DocumentsTableName",
        "EventBusName",
        "IngestQueueUrl",
    } <= set(source["Outputs"])


def test_the_raw_bucket_notifies_the_ingest_queue_of_creations_and_removals(source: dict[str, Any]) -> None:
    configs = source["Resources"]["RawBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert {c["Event"] for c in configs} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    assert source["Resources"]["RawBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


# -- the sinks ------------------------------------------------------------------------------------------

SINKS = {
    "HasKnowledgeBase": ("SyncKnowledgeBaseFunction", "KnowledgeBaseQueue", "KnowledgeBaseRule"),
    "HasKendra": ("SyncKendraFunction", "KendraQueue", "KendraRule"),
}


def _placeholder(source: dict[str, Any], value: Any) -> str:
    """An environment value as the function would see it: a parameter's default for its Ref, a
    stand-in for other intrinsic functions."""
    if isinstance(value, dict) and value.get("Ref") in source["Parameters"]:
        return str(source["Parameters"][value["Ref"]].get("Default") or "given-at-deploy")
    return value if isinstance(value, str) else "resolved-at-deploy"


@pytest.mark.parametrize("condition", sorted(SINKS))
def test_a_sink_exists_only_with_its_index(source: dict[str, Any], condition: str) -> None:
    """Kendra's with KendraIndexId; the knowledge base's unless KnowledgeBaseMode is off (which
    parameters make each condition true: test_knowledge_base.py)."""
    function, queue, rule = SINKS[condition]
    resources = source["Resources"]
    for name in (function, queue, f"{queue.removesuffix('Queue')}DeadLetterQueue", f"{queue}Policy", rule):
        assert resources[name]["Condition"] == condition, name
    assert resources["KnowledgeBaseDataSource"]["Condition"] == "CreatesDataSource"


@pytest.mark.parametrize("condition", sorted(SINKS))
def test_every_document_event_reaches_the_sink_queue_or_its_dead_letter_queue(
    source: dict[str, Any], condition: str
) -> None:
    _, queue, rule = SINKS[condition]
    properties = source["Resources"][rule]["Properties"]
    assert properties["EventPattern"] == {
        "source": ["sluice.ingest"],
        "detail-type": ["Document Changed", "Document Deleted", "Document Quarantined"],
    }
    (target,) = properties["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    dead_letter = f"{queue.removesuffix('Queue')}DeadLetterQueue"
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dead_letter, "Arn"]}


@pytest.mark.parametrize("condition", sorted(SINKS))
def test_sink_functions_are_configured_as_their_settings_expect(source: dict[str, Any], condition: str) -> None:
    from sluice.bootstrap.sinks import SinkFunctionSettings

    function = source["Resources"][SINKS[condition][0]]["Properties"]
    env = {k: _placeholder(source, v) for k, v in function["Environment"]["Variables"].items()}
    settings = SinkFunctionSettings.from_env(env)  # raises ConfigurationError naming what is missing
    assert settings.sink == ("kb" if condition == "HasKnowledgeBase" else "kendra")
    assert function["CodeUri"] == "functions/sync_sink/"
    assert function["Events"]["SinkQueue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"] == 2


def test_sink_permissions_name_the_index_not_a_wildcard(source: dict[str, Any]) -> None:
    for function, prefix in (("SyncKnowledgeBaseFunction", "bedrock:"), ("SyncKendraFunction", "kendra:")):
        statements = [
            s
            for policy in source["Resources"][function]["Properties"]["Policies"]
            if "Statement" in policy
            for s in _statements(policy["Statement"])
        ]
        services = [s for s in statements if all(a.startswith(prefix) for a in s["Action"])]
        assert services
        for service in services:
            resource = service["Resource"]["Fn::Sub"]
            assert resource == KNOWLEDGE_BASE_ARN or "${KendraIndexId}" in resource, resource


def test_the_data_source_takes_our_chunks_as_they_are(source: dict[str, Any]) -> None:
    from sluice.pipeline.files import CHUNK_PREFIX

    properties = source["Resources"]["KnowledgeBaseDataSource"]["Properties"]
    assert properties["DataSourceConfiguration"]["S3Configuration"]["InclusionPrefixes"] == [CHUNK_PREFIX]
    assert properties["VectorIngestionConfiguration"]["ChunkingConfiguration"] == {"ChunkingStrategy": "NONE"}


# -- alarms and the dashboard ---------------------------------------------------------------------------

SINK_CONDITIONS = ("HasKnowledgeBase", "HasKendra")
AWS_METRICS = {
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
    "AWS/Lambda": {"Errors", "Duration", "Invocations", "Throttles"},
}


def _service_name(source: dict[str, Any]) -> str:
    return str(source["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"])


def _emitted_metrics() -> set[str]:
    """The metric names the handlers emit: the ``name=`` of their add_metric and single_metric calls,
    and the names in their ``*_METRICS`` tables."""
    names: set[str] = set()
    for path in (ROOT / "functions").glob("*/app.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "add_metric",
                "single_metric",
            ):
                names |= {
                    str(k.value.value) for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)
                }
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("_METRICS") for t in node.targets
            ):
                names |= {str(c.value) for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    return {n for n in names if re.fullmatch(r"[A-Z][A-Za-z]+", n)}


def _holds(resource: dict[str, Any], conditions: dict[str, bool]) -> bool:
    return "Condition" not in resource or conditions[resource["Condition"]]


def _render(value: Any, conditions: dict[str, bool]) -> Any:
    """A value with Fn::If decided by ``conditions``, Fn::Join joined and Fn::Sub substituted; a
    reference to a resource stands for itself (``${Queue.QueueName}`` becomes ``Queue.QueueName``)."""
    if not (isinstance(value, dict) and len(value) == 1):
        return value
    ((function, argument),) = value.items()
    if function == "Fn::If":
        name, then, otherwise = argument
        return _render(then if conditions[name] else otherwise, conditions)
    if function == "Fn::Join":
        delimiter, items = argument
        return delimiter.join(_render(item, conditions) for item in items)
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        rendered = {k: _render(v, conditions) for k, v in variables.items()}
        return substitute(text, lambda name: str(rendered.get(name, name)))
    raise AssertionError(f"unexpected {function} in the dashboard body")


def _dead_letter_queues(source: dict[str, Any]) -> set[str]:
    """Queues that are the dead-letter target of a queue's redrive policy, a rule's target or a schedule."""
    targets = set()
    for queue in _of_type(source, "AWS::SQS::Queue").values():
        if "RedrivePolicy" in queue["Properties"]:
            targets.add(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
    for rule in _of_type(source, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if "DeadLetterConfig" in target:
                targets.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    for schedule in _of_type(source, "AWS::Scheduler::Schedule").values():
        targets.add(schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    return targets


def test_every_schedule_leaves_what_it_could_not_start_in_a_dead_letter_queue_its_role_may_use(
    source: dict[str, Any],
) -> None:
    schedules = _of_type(source, "AWS::Scheduler::Schedule")
    assert len(schedules) == 8
    policy = source["Resources"]["ScheduleDeadLetterPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {"Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}.items() <= (
        policy[0].items()
    )
    assert policy[1]["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}  # the queue is encrypted with it
    for name, schedule in schedules.items():
        target = schedule["Properties"]["Target"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}, name
        role = source["Resources"][target["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
        assert {"Ref": "ScheduleDeadLetterPolicy"} in role["ManagedPolicyArns"], name


def test_every_dead_letter_queue_has_an_alarm_on_its_depth_that_tells_someone(source: dict[str, Any]) -> None:
    dead_letter_queues = _dead_letter_queues(source)
    assert {"IngestDeadLetterQueue", "KnowledgeBaseDeadLetterQueue", "KendraDeadLetterQueue"} <= dead_letter_queues
    alarms = _of_type(source, "AWS::CloudWatch::Alarm").values()
    for queue in dead_letter_queues:
        watching = [
            alarm
            for alarm in alarms
            if alarm["Properties"].get("Namespace") == "AWS/SQS"
            and alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and alarm["Properties"]["Dimensions"]
            == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        ]
        assert watching, f"no alarm on the depth of {queue}"
        for alarm in watching:
            properties = alarm["Properties"]
            assert (properties["ComparisonOperator"], properties["Threshold"]) == ("GreaterThanThreshold", 0)
            assert properties["AlarmActions"], f"the alarm on {queue} tells nobody"
            assert alarm.get("Condition") == source["Resources"][queue].get("Condition"), queue


def test_every_alarm_tells_the_encrypted_alarm_topic_and_watches_a_metric_that_exists(
    source: dict[str, Any],
) -> None:
    from sluice.bootstrap import METRICS_NAMESPACE
    from sluice.sinks.kendra import KendraSink
    from sluice.sinks.knowledge_base import KnowledgeBaseSink

    sinks = {KnowledgeBaseSink.name: "HasKnowledgeBase", KendraSink.name: "HasKendra"}
    emitted = _emitted_metrics()
    alarms = _of_type(source, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 7
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties["TreatMissingData"] == "notBreaching", name
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        namespace, metric = properties["Namespace"], properties["MetricName"]
        if namespace == METRICS_NAMESPACE:
            dimensions = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
            assert metric in emitted, f"{name} watches {metric}, which no handler emits"
            assert dimensions.pop("service") == _service_name(source), name
            if "Sink" in dimensions:  # a sink's alarm exists with the sink
                assert alarm["Condition"] == sinks[dimensions.pop("Sink")], name
            assert not dimensions, f"{name}: dimensions no handler sets"
        else:
            assert metric in AWS_METRICS[namespace], f"{name}: {namespace} is neither AWS's nor the handlers'"
    resources = source["Resources"]
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    assert {"QuarantineAlarmThreshold", "SyncLagAlarmSeconds", "AlarmEmail"} <= set(source["Parameters"])
    grants = [s for s in resources["DataKey"]["Properties"]["KeyPolicy"]["Statement"] if "Principal" in s]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in grants)  # or alarms go nowhere
    assert {"AlarmTopicArn", "DashboardName"} <= set(source["Outputs"])


@pytest.mark.parametrize(
    "conditions", [dict(zip(SINK_CONDITIONS, v, strict=True)) for v in itertools.product([True, False], repeat=2)]
)
def test_the_dashboard_is_json_and_shows_what_exists_with_metrics_that_exist(
    source: dict[str, Any], conditions: dict[str, bool]
) -> None:
    resources = source["Resources"]
    body = json.loads(_render(resources["OperationsDashboard"]["Properties"]["DashboardBody"], conditions))
    emitted, service = _emitted_metrics(), _service_name(source)
    shown: dict[str, set[str]] = {"alarms": set(), "FunctionName": set(), "QueueName": set(), "Sink": set()}
    for widget in body["widgets"]:
        properties = widget["properties"]
        shown["alarms"] |= {a.removesuffix(".Arn") for a in properties.get("alarms", [])}
        for entry in properties.get("metrics", []):
            if isinstance(entry[0], dict):  # a SEARCH expression
                expression = entry[0]["expression"]
                assert set(re.findall(r'MetricName="(\w+)"', expression)) <= emitted, expression
                assert expression.startswith("SEARCH('{Sluice,"), expression
                continue
            namespace, metric, *rest = entry
            pairs = rest[:-1] if rest and isinstance(rest[-1], dict) else rest
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            if namespace == "Sluice":
                assert metric in emitted, f"the dashboard shows {metric}, which no handler emits"
                assert dimensions.pop("service") == service
                shown["Sink"] |= {dimensions.pop("Sink")} if "Sink" in dimensions else set()
            else:
                assert metric in AWS_METRICS[namespace], metric
                for name in ("FunctionName", "QueueName"):
                    shown[name] |= {dimensions.pop(name).removesuffix(".QueueName")} if name in dimensions else set()
            assert not dimensions, entry
    existing = {kind: {k for k, v in _of_type(source, kind).items() if _holds(v, conditions)}
                for kind in ("AWS::CloudWatch::Alarm", "AWS::Serverless::Function", "AWS::SQS::Queue")}  # fmt: skip
    assert shown["alarms"] == existing["AWS::CloudWatch::Alarm"]
    assert shown["FunctionName"] == existing["AWS::Serverless::Function"]  # errors and durations of each
    assert shown["QueueName"] == existing["AWS::SQS::Queue"]
    assert shown["Sink"] == {s for s, c in (("kb", "HasKnowledgeBase"), ("kendra", "HasKendra")) if conditions[c]}


def test_the_reconciler_reads_the_pipeline_settings_the_ingest_function_applies(source: dict[str, Any]) -> None:
    """Otherwise every record would look made by another pipeline (or none would)."""
    resources = source["Resources"]
    ingest = resources["IngestDocumentFunction"]["Properties"]["Environment"]["Variables"]
    reconcile = resources["ReconcileFunction"]["Properties"]["Environment"]["Variables"]
    pipeline = {
        "MAX_TOKENS",
        "OVERLAP_TOKENS",
        "MIN_TOKENS",
        "BREADCRUMB",
        "MAX_DOCUMENT_BYTES",
        "MAX_PAGES",
        "MAX_CHUNKS",
    }
    assert {k: v for k, v in ingest.items() if k in pipeline} == {k: v for k, v in reconcile.items() if k in pipeline}
    assert resources["ReconcileFunction"]["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"] == 0

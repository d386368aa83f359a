"""The security review of template.yaml and the code it deploys, as checks (docs/security.md): what
checkov and cfn-lint do not see.

Every check is a function that returns its problems, each naming the resource (or file and line)
at fault. It runs on the real template, which must have none, and on copies broken on purpose, in
which it must find the break: a check that cannot fail is a defect. The checks read every resource
of a kind, so resources added later are covered without being named here.

Already in test_template.py and not repeated: ReportBatchItemFailures on every event source
mapping, visibility timeouts, every queue's dead-letter queue (its retention and maxReceiveCount),
wildcard actions in roles' inline policies, and a TLS-only statement in every bucket policy (extended
here to the objects of each bucket, to queues and to topics). cfn-lint and checkov, in each
KnowledgeBaseMode: test_cfn_lint.py, test_checkov.py; the knowledge base's own contract:
test_knowledge_base.py.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import pytest
from samtranslator.model.sam_resources import SamStateMachine

from sluice_local.template import substitute
from template.conftest import ROOT

pytestmark = pytest.mark.template
Template = dict[str, Any]
Mutation = Callable[[Template], None]

# -- reading a template ---------------------------------------------------------------------------------

_PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
           "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "sluice", "AWS::StackId": "stack/sluice/id"}  # fmt: skip


def _of_type(template: Template, *kinds: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] in kinds}


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _branches(value: Any) -> list[Any]:
    """The items of a list property (or the one value), with both branches of a conditional item and
    without AWS::NoValue."""
    items: list[Any] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and "Fn::If" in item:
            items += _branches(item["Fn::If"][1:])
        elif item is not None and item != {"Ref": "AWS::NoValue"}:
            items.append(item)
    return items


def _reference(logical_id: str, attribute: str = "") -> str:
    if logical_id in _PSEUDO:
        return _PSEUDO[logical_id]
    if attribute == "Arn":
        return f"arn:<{logical_id}>"
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"


def render(value: Any) -> str:
    """A value as the text it stands for: a resource or parameter as ``<Name>``, its ARN as
    ``arn:<Name>``, pseudo parameters as sample values, both branches of an Fn::If."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(render(item) for item in value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return _reference(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return _reference(logical_id, attribute)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            rendered = {name: render(v) for name, v in variables.items()}

            def value_of(name: str) -> str:
                if name in rendered:
                    return rendered[name]
                logical_id, _, attribute = name.partition(".")
                return _reference(logical_id, attribute)

            return substitute(text, value_of)
        if function == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(render(item) for item in (items if isinstance(items, list) else [items]))
        if function in ("Fn::Split", "Fn::Select"):  # what the pieces come from is what they name
            return render(argument[1])
        if function == "Fn::If":
            return " | ".join(render(branch) for branch in argument[1:])
    return json.dumps(value, sort_keys=True)


def references(value: Any) -> set[str]:
    """The resources and parameters a value names."""
    return set(re.findall(r"<(\w+)[.>]", render(value)))


def _names_a_stack_key(template: Template, value: Any) -> bool:
    return bool(references(value) & set(_of_type(template, "AWS::KMS::Key")))


def _function_roles(template: Template) -> dict[str, str]:
    """Function -> the role it runs as."""
    return {
        name: role
        for name, function in _of_type(template, "AWS::Lambda::Function").items()
        for role in references(function["Properties"].get("Role"))
    }


# -- 1. least privilege ---------------------------------------------------------------------------------

# Actions for which AWS defines no resource type, so that a policy can only name "*" (Service
# Authorization Reference, "Resource types" column empty), each where this stack needs it.
RESOURCE_STAR_ONLY = frozenset({
    # X-Ray (the state machine's tracing).
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    # Step Functions' delivery of its logs to CloudWatch Logs: the policy its developer guide gives
    # ("IAM policies for logging to CloudWatch Logs") names "*" for all of these.
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    # SAM's SSMParameterReadPolicy (RunConnectorFunction): parameters are listed account-wide.
    "ssm:DescribeParameters",
    # Redshift Data API: a statement id is not a resource (the redshift connector's polling).
    "redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement",
})  # fmt: skip

# Wildcards narrower than a service: SAM's SQSSendMessagePolicy, SendMessage and SendMessageBatch.
WILDCARD_ACTIONS_ALLOWED = frozenset({"sqs:SendMessage*"})

# The AWS managed policies SAM attaches: logs (every function), X-Ray (Tracing: Active), and the
# SQS poller's receive/delete. The last names "*" — any queue of the account — and cannot be
# narrowed without replacing SAM's role; it is listed as accepted, not as least privilege.
MANAGED_POLICIES_ALLOWED = frozenset({
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
})  # fmt: skip

# Changes to the configuration of a resource or of access to it. No function or service role here
# needs one; SAM's S3CrudPolicy and S3WritePolicy bring two of them (lifecycle rules can expire
# every object, versions included).
CONFIGURATION_CHANGES = (
    "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:PutObjectAcl", "s3:PutObjectVersionAcl",
    "s3:PutLifecycleConfiguration", "s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketVersioning", "s3:PutBucketNotification", "s3:PutReplicationConfiguration", "s3:DeleteBucket",
    "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
    "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant",
    "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive",
    "sqs:SetQueueAttributes", "sqs:AddPermission", "sqs:DeleteQueue", "sqs:PurgeQueue",
    "sns:SetTopicAttributes", "sns:AddPermission", "sns:DeleteTopic",
    "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy", "logs:DisassociateKmsKey",
    "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission",
    "states:UpdateStateMachine", "states:DeleteStateMachine",
)  # fmt: skip
_OBJECT_WRITES = ("s3:PutObject", "s3:DeleteObject")


class Grant(NamedTuple):
    owner: str  # the role, or the IAM policy resource
    policy: str  # the inline policy's name within the role
    statement: dict[str, Any]

    @property
    def where(self) -> str:
        return " ".join(filter(None, (self.owner, self.policy, self.statement.get("Sid"))))

    @property
    def actions(self) -> list[str]:
        return [str(action) for action in _branches(self.statement.get("Action", []))]

    @property
    def resources(self) -> list[str]:
        return [render(resource) for resource in _branches(self.statement.get("Resource", []))]


def _grants(template: Template) -> Iterator[Grant]:
    """Every Allow statement of every identity policy: roles' inline policies and IAM policy resources."""
    documents = [
        (name, policy["PolicyName"], policy["PolicyDocument"])
        for name, role in _of_type(template, "AWS::IAM::Role").items()
        for policy in _branches(role["Properties"].get("Policies", []))
    ]
    documents += [
        (name, "", policy["Properties"]["PolicyDocument"])
        for name, policy in _of_type(template, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy").items()
    ]
    for owner, name, document in documents:
        for statement in _branches(document["Statement"]):
            if statement.get("Effect") == "Allow":
                yield Grant(owner, name, statement)


def _covers(action: str, wanted: str) -> bool:
    """Whether a policy's action (maybe with wildcards) allows ``wanted``; IAM ignores case."""
    return fnmatchcase(wanted.lower(), action.lower())


def least_privilege_problems(template: Template) -> list[str]:
    problems = []
    for grant in _grants(template):
        actions, resources, where = grant.actions, grant.resources, grant.where
        if "NotAction" in grant.statement or "NotResource" in grant.statement:
            problems.append(f"{where}: NotAction/NotResource in an Allow grants everything not listed")
        for action in actions:
            if "*" in action and action not in WILDCARD_ACTIONS_ALLOWED:
                problems.append(f"{where}: wildcard action {action}; name the actions")
            for change in (c for c in CONFIGURATION_CHANGES if _covers(action, c)):
                problems.append(f"{where}: {change} on {resources} changes configuration no role here needs to")
            if action.lower().startswith("iam:") and action != "iam:PassRole":
                problems.append(f"{where}: {action} lets the role change IAM")
        if "*" in resources:
            unscoped = [a for a in actions if a not in RESOURCE_STAR_ONLY]
            if unscoped:
                problems.append(f"{where}: {unscoped} on Resource '*'; name the resources")
        for resource in resources:
            if resource.count("arn:") > 1:
                problems.append(
                    f"{where}: {resource} is an ARN built around another ARN (a policy template given an ARN "
                    "where it wants a name or id), so the grant matches nothing"
                )
        condition = grant.statement.get("Condition", {})
        if "iam:PassRole" in actions and not any("iam:PassedToService" in keys for keys in condition.values()):
            problems.append(f"{where}: iam:PassRole without an iam:PassedToService condition")
    for name, role in _of_type(template, "AWS::IAM::Role").items():
        for arn in map(render, _branches(role["Properties"].get("ManagedPolicyArns", []))):
            if arn not in MANAGED_POLICIES_ALLOWED and not arn.startswith("<"):  # "<...>": a policy of the stack
                problems.append(f"{name}: managed policy {arn} is not one SAM attaches; use a scoped inline statement")
    return problems


SQS_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
SQS_CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def _event_sources(template: Template) -> Iterator[tuple[str, Any]]:
    """(role, EventSourceArn) of every event source mapping: the role of the function it invokes and
    the queue it reads."""
    functions = _function_roles(template)
    for mapping in _of_type(template, "AWS::Lambda::EventSourceMapping").values():
        for function in references(mapping["Properties"]["FunctionName"]):
            if function in functions:
                yield functions[function], mapping["Properties"]["EventSourceArn"]


def sqs_consumer_problems(template: Template) -> list[str]:
    """SAM gives every SQS-triggered function AWSLambdaSQSQueueExecutionRole, which receives from and
    deletes in any queue of the account: its role must deny those actions on every queue but the ones
    its event sources read."""
    sources: dict[str, set[str]] = {}
    for role_name, queue_arn in _event_sources(template):
        sources.setdefault(role_name, set()).add(render(queue_arn))
    problems = []
    for name, role in _of_type(template, "AWS::IAM::Role").items():
        if SQS_EXECUTION_ROLE not in map(render, _branches(role["Properties"].get("ManagedPolicyArns", []))):
            continue
        confined = [
            {render(r) for r in _branches(statement["NotResource"])}
            for policy in _branches(role["Properties"].get("Policies", []))
            for statement in _branches(policy["PolicyDocument"]["Statement"])
            if statement.get("Effect") == "Deny"
            and "NotResource" in statement
            and set(SQS_CONSUMER_ACTIONS) <= {str(a) for a in _branches(statement.get("Action", []))}
        ]
        if not any(queues == sources.get(name, set()) for queues in confined):
            problems.append(
                f"{name}: AWSLambdaSQSQueueExecutionRole reads every queue; deny {', '.join(SQS_CONSUMER_ACTIONS)} "
                f"on all but {sorted(sources.get(name, set()))} (found {confined})"
            )
    return problems


def _buckets_feeding(template: Template) -> dict[str, set[str]]:
    """Bucket -> the roles of the functions its notifications invoke (through a queue or directly)."""
    functions = _function_roles(template)
    consumers: dict[str, set[str]] = {}
    for role_name, queue_arn in _event_sources(template):
        for queue in references(queue_arn):
            consumers.setdefault(queue, set()).add(role_name)
    feeding: dict[str, set[str]] = {}
    for bucket, resource in _of_type(template, "AWS::S3::Bucket").items():
        notifications = resource["Properties"].get("NotificationConfiguration", {})
        for config in _branches(notifications.get("QueueConfigurations", [])):
            for queue in references(config["Queue"]):
                feeding.setdefault(bucket, set()).update(consumers.get(queue, set()))
        for config in _branches(notifications.get("LambdaConfigurations", [])):
            targets = references(config["Function"])
            feeding.setdefault(bucket, set()).update(functions[f] for f in targets if f in functions)
    return feeding


def input_bucket_problems(template: Template) -> list[str]:
    """A bucket whose notifications start ingestion (RawBucket) holds what users dropped: no role
    writes across all of it, and none of the functions it starts writes to it at all (a loop)."""
    problems = []
    for bucket, consumers in _buckets_feeding(template).items():
        for grant in _grants(template):
            if not any(_covers(action, write) for action in grant.actions for write in _OBJECT_WRITES):
                continue
            for resource in (r for r in grant.resources if f"<{bucket}>" in r):
                if grant.owner in consumers:
                    problems.append(
                        f"{grant.where} writes to {bucket} ({resource}), whose notifications invoke it: a loop"
                    )
                if resource.endswith(f"<{bucket}>/*"):
                    problems.append(
                        f"{grant.where} may overwrite or delete anything in {bucket} ({resource}); scope it to its prefix"
                    )
    return problems


# -- 2. a customer-managed key wherever data rests ------------------------------------------------------

# Types that hold no data of users (configuration, permissions, wiring, code of our own).
HOLDS_NO_DATA = frozenset({
    "AWS::KMS::Key", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
    "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig", "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersion", "AWS::Lambda::Version", "AWS::Lambda::Alias", "AWS::Events::Rule",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard", "AWS::Logs::MetricFilter",
    # A vector knowledge base is its configuration: its vectors are in the S3 Vectors index.
    "AWS::Bedrock::KnowledgeBase",
})  # fmt: skip

# Types that hold data but are encrypted here with keys AWS owns, and why that is accepted.
NOT_UNDER_THE_STACK_KEY = {
    "AWS::Events::EventBus": "events carry ids, hashes and S3 URIs, never document text",
    "AWS::SSM::Parameter": "CloudFormation creates only String parameters; the connectors' configuration "
    "holds no credentials (those are in Secrets Manager)",
    "AWS::Scheduler::Schedule": "a schedule's input names a connector type or the retraining settings",
    "AWS::Bedrock::DataSource": "its transient ingestion data (chunks on their way to the index); a key of "
    "ours there needs kms:GenerateDataKey and kms:Decrypt for the knowledge base's role with no kms:ViaService "
    "to scope them (Bedrock's guide, 'Encryption of transient data storage during data ingestion'), wider than "
    "the role's reads through S3 and S3 Vectors; and in existing mode the role may be unknown (optional)",
}
# AWS::Serverless::StateMachine has no EncryptionConfiguration in this SAM version: execution
# history stays under an AWS owned key (and out of the logs: IncludeExecutionData false). When SAM
# gains it, the check asks for it.
SAM_STATE_MACHINES_TAKE_A_KEY = "EncryptionConfiguration" in SamStateMachine.property_types

_KEY_PROPERTY = {  # where a type names its key
    "AWS::SQS::Queue": ("KmsMasterKeyId",),
    "AWS::SNS::Topic": ("KmsMasterKeyId",),
    "AWS::Logs::LogGroup": ("KmsKeyId",),
    "AWS::Lambda::Function": ("KmsKeyArn",),  # its environment variables
    "AWS::DynamoDB::Table": ("SSESpecification", "KMSMasterKeyId"),
    "AWS::SecretsManager::Secret": ("KmsKeyId",),
    "AWS::StepFunctions::StateMachine": ("EncryptionConfiguration", "KmsKeyId"),
    "AWS::S3Vectors::VectorBucket": ("EncryptionConfiguration", "KmsKeyArn"),
    "AWS::S3Vectors::Index": ("EncryptionConfiguration", "KmsKeyArn"),  # else the bucket's, which may change
}


def encryption_problems(template: Template) -> list[str]:
    problems = []
    log_groups = set(_of_type(template, "AWS::Logs::LogGroup"))
    log_destinations = {
        bucket
        for resource in _of_type(template, "AWS::S3::Bucket").values()
        for bucket in references(_dig(resource, "Properties", "LoggingConfiguration", "DestinationBucketName"))
    }
    for name, resource in template["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        where = f"{name} ({kind})"
        if kind in HOLDS_NO_DATA or kind in NOT_UNDER_THE_STACK_KEY:
            continue
        if kind == "AWS::S3::Bucket":
            rules = _branches(_dig(properties, "BucketEncryption", "ServerSideEncryptionConfiguration") or [])
            defaults = [rule.get("ServerSideEncryptionByDefault", {}) for rule in rules]
            keyed = any(
                d.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse")
                and _names_a_stack_key(template, d.get("KMSMasterKeyID"))
                for d in defaults
            )
            # S3 server access logging delivers only to SSE-S3 buckets (or SSE-KMS with a key policy
            # admitting logging.s3.amazonaws.com): the log bucket may use SSE-S3.
            if not keyed and not (
                name in log_destinations and any(d.get("SSEAlgorithm") == "AES256" for d in defaults)
            ):
                problems.append(f"{where}: not SSE-KMS with the stack's key")
        elif kind in _KEY_PROPERTY:
            if kind == "AWS::StepFunctions::StateMachine" and not SAM_STATE_MACHINES_TAKE_A_KEY:
                continue
            if not _names_a_stack_key(template, _dig(properties, *_KEY_PROPERTY[kind])):
                problems.append(f"{where}: {'.'.join(_KEY_PROPERTY[kind])} does not name the stack's key")
            if (
                kind.startswith("AWS::S3Vectors::")
                and _dig(properties, "EncryptionConfiguration", "SseType") != "aws:kms"
            ):
                problems.append(f"{where}: EncryptionConfiguration.SseType is not aws:kms")
            if kind == "AWS::DynamoDB::Table" and (
                _dig(properties, "SSESpecification", "SSEEnabled") is not True
                or _dig(properties, "SSESpecification", "SSEType") != "KMS"
            ):
                problems.append(f"{where}: SSESpecification is not SSEEnabled with SSEType KMS")
            if (
                kind == "AWS::Lambda::Function"
                and not references(_dig(properties, "LoggingConfig", "LogGroup")) & log_groups
            ):
                problems.append(
                    f"{where}: logs to a group Lambda creates (no key, no retention); set LoggingConfig.LogGroup"
                )
        else:
            problems.append(
                f"{where}: not classified by this review; add the type to HOLDS_NO_DATA, NOT_UNDER_THE_STACK_KEY "
                "(with the reason) or _KEY_PROPERTY"
            )
    return problems


# -- 3. TLS only -----------------------------------------------------------------------------------------

# (policy type, its property naming what it protects, Deny actions that cover every use). Buckets
# are in test_template.py too; here both the bucket and its objects must be covered. S3's
# An s3:TlsVersion deny is not asked for: AWS API endpoints refuse TLS below 1.2
# (AWS Security Blog, "TLS 1.2 to become the minimum TLS protocol level for all AWS API endpoints", 2023).
_TLS_POLICIES = {
    "AWS::S3::Bucket": ("AWS::S3::BucketPolicy", "Bucket", {"s3:*", "*"}),
    "AWS::SQS::Queue": ("AWS::SQS::QueuePolicy", "Queues", {"sqs:*", "*"}),
    "AWS::SNS::Topic": ("AWS::SNS::TopicPolicy", "Topics", {"sns:Publish", "sns:*", "*"}),
}


def _tls_targets(kind: str, name: str) -> set[str]:
    """What the TLS-only statements must name between them (as rendered)."""
    if kind == "AWS::S3::Bucket":
        return {f"arn:<{name}>", f"arn:<{name}>/*"}
    return {f"arn:<{name}>"} if kind == "AWS::SQS::Queue" else {f"<{name}>"}


def tls_problems(template: Template) -> list[str]:
    problems = []
    for kind, (policy_kind, property_name, covering) in _TLS_POLICIES.items():
        policies = _of_type(template, policy_kind).values()
        for name in _of_type(template, kind):
            denied: set[str] = set()
            for policy in (p for p in policies if name in references(p["Properties"][property_name])):
                for statement in _branches(policy["Properties"]["PolicyDocument"]["Statement"]):
                    secure = _dig(statement, "Condition", "Bool", "aws:SecureTransport")
                    actions = set(map(str, _branches(statement.get("Action", []))))
                    if statement.get("Effect") == "Deny" and str(secure).lower() == "false" and actions & covering:
                        rendered = map(render, _branches(statement.get("Resource", [])))
                        denied |= {r.replace("arn:aws:s3:::<", "arn:<") for r in rendered}
            missing = _tls_targets(kind, name) - denied
            if missing and "*" not in denied:
                problems.append(f"{name}: no policy denies requests without TLS to {sorted(missing)}")
    return problems


# -- 4. tracing, 5. the state machines' logs -------------------------------------------------------------


def tracing_problems(template: Template) -> list[str]:
    problems = [
        f"{name}: TracingConfig.Mode is not Active"
        for name, function in _of_type(template, "AWS::Lambda::Function").items()
        if _dig(function, "Properties", "TracingConfig", "Mode") != "Active"
    ]
    problems += [
        f"{name}: TracingConfiguration.Enabled is not true"
        for name, machine in _of_type(template, "AWS::StepFunctions::StateMachine").items()
        if _dig(machine, "Properties", "TracingConfiguration", "Enabled") is not True
    ]
    return problems


def state_machine_logging_problems(template: Template) -> list[str]:
    """Every state machine logs its executions (ALL or ERROR) to a log group of the stack, without
    execution data: the inputs and outputs may carry document text and dataset locations."""
    problems = []
    log_groups = set(_of_type(template, "AWS::Logs::LogGroup"))
    for name, machine in _of_type(template, "AWS::StepFunctions::StateMachine").items():
        logging = _dig(machine, "Properties", "LoggingConfiguration") or {}
        if logging.get("Level") not in ("ALL", "ERROR"):
            problems.append(f"{name}: LoggingConfiguration.Level is {logging.get('Level')!r}, not ALL or ERROR")
        if logging.get("IncludeExecutionData", False) is not False:
            problems.append(f"{name}: IncludeExecutionData would put inputs and outputs in the logs")
        destinations = [_dig(d, "CloudWatchLogsLogGroup", "LogGroupArn") for d in logging.get("Destinations", [])]
        if not any(references(d) & log_groups for d in destinations):
            problems.append(f"{name}: logs to no log group of the stack")
    return problems


# -- 7. SQS handlers report partial batch failures --------------------------------------------------------


def _called_name(call: ast.Call) -> str:
    function = call.func
    return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")


def reports_batch_item_failures(module: ast.Module, handler: str) -> bool:
    """Whether the handler calls Powertools' process_partial_response or returns a literal dict
    with a ``batchItemFailures`` key."""
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == handler:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call) and _called_name(inner) in (
                    "process_partial_response",
                    "async_process_partial_response",
                ):
                    return True
                if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Dict):
                    keys = inner.value.keys
                    if any(isinstance(k, ast.Constant) and k.value == "batchItemFailures" for k in keys):
                        return True
    return False


def sqs_handler_problems(source: Template) -> list[str]:
    """On the SAM source: each function with an SQS event has a handler that reports the failed
    records (with ReportBatchItemFailures and no such report, one bad record fails the batch)."""
    problems = []
    defaults = _dig(source, "Globals", "Function") or {}
    for name, function in _of_type(source, "AWS::Serverless::Function").items():
        properties = function["Properties"]
        if not any(event.get("Type") == "SQS" for event in properties.get("Events", {}).values()):
            continue
        module, _, handler = str(properties.get("Handler", defaults.get("Handler"))).rpartition(".")
        path = ROOT / str(properties.get("CodeUri", defaults.get("CodeUri"))) / f"{module.replace('.', '/')}.py"
        if not path.is_file():
            problems.append(f"{name}: its handler module {path.relative_to(ROOT)} does not exist")
        elif not reports_batch_item_failures(ast.parse(path.read_text()), handler):
            problems.append(
                f"{name}: {path.relative_to(ROOT)}:{handler} neither calls process_partial_response nor "
                "returns batchItemFailures"
            )
    return problems


# -- 8. secrets only in Secrets Manager ---------------------------------------------------------------------

_SECRET_WORD = re.compile(r"password|passwd|passphrase|secret|token|api_?key|private_?key|access_?key|credential", re.I)
# Names that say where a secret is (its ARN, name, name prefix), not what it is.
_POINTER = re.compile(r"(arn|name|prefix|parameter)$", re.I)
NOT_SECRETS = {  # names with a secret's word that hold none
    "MaxTokens": "a chunk size in tokens",
    "OverlapTokens": "a chunk overlap in tokens",
    "MAX_TOKENS": "a chunk size in tokens",
    "OVERLAP_TOKENS": "a chunk overlap in tokens",
    "MIN_TOKENS": "a chunk size in tokens",
}
_CREDENTIAL_VALUE = re.compile(
    r"(AKIA|ASIA)[0-9A-Z]{16}|xox[abposr]-|-----BEGIN [A-Z ]*PRIVATE KEY|ghp_[0-9A-Za-z]{20}|sk-[0-9A-Za-z]{20}"
    r"|\{\{resolve:(secretsmanager|ssm-secure):"  # a dynamic reference writes the plaintext into the configuration
)
_ENV_READERS = frozenset({"get", "getenv", "pop", "setdefault", "required", "optional", "integer", "boolean", "choice"})


def _names_a_secret(name: str) -> bool:
    return bool(_SECRET_WORD.search(name)) and not _POINTER.search(name) and name not in NOT_SECRETS


def template_secret_problems(template: Template) -> list[str]:
    """No stack parameter carries a secret, and no function's environment holds one."""
    problems = [
        f"parameter {name}: looks like a secret; put it in Secrets Manager and pass its name"
        for name in template.get("Parameters", {})
        if _names_a_secret(name)
    ]
    for function, resource in _of_type(template, "AWS::Lambda::Function").items():
        for variable, value in (_dig(resource, "Properties", "Environment", "Variables") or {}).items():
            if _names_a_secret(variable):
                problems.append(f"{function}: environment variable {variable} looks like a secret")
            if _CREDENTIAL_VALUE.search(render(value)):
                problems.append(f"{function}: environment variable {variable} holds a credential")
    return problems


def _deployed_sources() -> dict[str, str]:
    """The Python that runs in Lambda: the layer and the functions."""
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for folder in ("layers", "functions")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def code_secret_problems(sources: Mapping[str, str]) -> list[str]:
    """No deployed code reads a secret from an environment variable (a literal UPPER_CASE name given
    to a mapping's get/[] or a settings reader)."""
    problems = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Subscript):
                names = [node.slice]
            elif isinstance(node, ast.Call) and _called_name(node) in _ENV_READERS:
                names = node.args[:1]
            else:
                continue
            variables = [n.value for n in names if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            for variable in variables:
                if re.fullmatch(r"[A-Z][A-Z0-9_]*", variable) and _names_a_secret(variable):
                    problems.append(
                        f"{path}:{node.lineno}: reads {variable} from the environment; secrets come from "
                        "Secrets Manager (Powertools parameters)"
                    )
    return problems


# -- 9. unsafe code ------------------------------------------------------------------------------------------

_UNSAFE_CALLS = {
    "eval": "evaluates text as code",
    "exec": "runs text as code",
    "os.system": "runs a shell",
    "os.popen": "runs a shell",
    "pickle.load": "unpickling runs code",
    "pickle.loads": "unpickling runs code",
    "pickle.Unpickler": "unpickling runs code",
    "marshal.load": "unmarshalling untrusted data",
    "marshal.loads": "unmarshalling untrusted data",
    "dill.load": "unpickling runs code",
    "dill.loads": "unpickling runs code",
    "shelve.open": "a shelf is a pickle",
    "yaml.unsafe_load": "constructs arbitrary objects",
    "yaml.full_load": "constructs Python objects",
    "yaml.load_all": "use yaml.safe_load_all",
    "tempfile.mktemp": "a race on the name; use mkstemp",
    "ssl._create_unverified_context": "TLS without certificate checks",
    "urllib.request.urlopen": "opens file:// and follows redirects past the SSRF guard (connectors/http.py)",
    "urllib.request.urlretrieve": "opens file:// and follows redirects past the SSRF guard (connectors/http.py)",
}
# Parsers that expand entities (billion laughs) or fetch DTDs; defusedxml's are the safe ones.
_UNSAFE_CALLS |= dict.fromkeys(
    [
        f"{module}.{function}"
        for module in ("xml.etree.ElementTree", "xml.etree.cElementTree", "lxml.etree")
        for function in ("parse", "fromstring", "fromstringlist", "XML", "XMLParser", "iterparse")
    ]
    + ["xml.dom.minidom.parse", "xml.dom.minidom.parseString", "xml.sax.parse", "xml.sax.make_parser"],
    "an XML parser without defusedxml's protections",
)
# Hosts of XML namespace names: identifiers compared as strings, never fetched.
_NAMESPACE_HOSTS = ("schemas.openxmlformats.org", "purl.org", "www.sitemaps.org", "www.w3.org")
_HTTP_URL = re.compile(r"^http://([^/\s:]+)")


def _imports(module: ast.Module) -> dict[str, str]:
    """Local name -> the dotted name it was imported as."""
    names = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:  # "import a.b" binds a; "import a.b as c" binds c to a.b
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, imports: Mapping[str, str]) -> str:
    if isinstance(node, ast.Name):
        return imports.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value, imports)}.{node.attr}"
    return ""


def unsafe_code_problems(sources: Mapping[str, str]) -> list[str]:
    problems = []
    for path, text in sources.items():
        module = ast.parse(text)
        imports = _imports(module)
        bare_strings = {id(n.value) for n in ast.walk(module) if isinstance(n, ast.Expr)}  # docstrings
        for node in ast.walk(module):
            where = f"{path}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                name = _dotted(node.func, imports)
                keywords = {k.arg: k.value for k in node.keywords}
                if name in _UNSAFE_CALLS:
                    problems.append(f"{where}: {name}: {_UNSAFE_CALLS[name]}")
                if name == "yaml.load":
                    loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
                    if loader is None or not _dotted(loader, imports).endswith("SafeLoader"):
                        problems.append(f"{where}: yaml.load without SafeLoader constructs arbitrary objects")
                for keyword, unsafe in (("verify", False), ("shell", True), ("check_hostname", False)):
                    value = keywords.get(keyword)
                    if isinstance(value, ast.Constant) and value.value is unsafe:
                        problems.append(f"{where}: {keyword}={unsafe}")
            elif isinstance(node, ast.Attribute) and node.attr == "CERT_NONE":
                problems.append(f"{where}: CERT_NONE turns certificate checks off")
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is False:
                if any(isinstance(t, ast.Attribute) and t.attr in ("check_hostname", "verify") for t in node.targets):
                    problems.append(f"{where}: turns TLS verification off")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare_strings:
                url = _HTTP_URL.match(node.value)
                if url and url.group(1) not in _NAMESPACE_HOSTS:
                    problems.append(f"{where}: plain-HTTP endpoint {node.value!r}; use https://")
    return problems


# -- 10. public access, resource policies ---------------------------------------------------------------------

_PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
# Conditions that tie a service principal to this account or to one of its resources (confused deputy).
_SCOPING_KEYS = ("aws:SourceAccount", "aws:SourceArn", "aws:SourceOwner", "aws:SourceOrgID", "kms:EncryptionContext:")
# Trust policies SAM writes itself, which take no condition short of replacing SAM's role.
SAM_TRUSTED_SERVICES = frozenset({"lambda.amazonaws.com", "states.amazonaws.com"})


def bucket_access_problems(template: Template) -> list[str]:
    problems = []
    feeding = _buckets_feeding(template)
    for name, bucket in _of_type(template, "AWS::S3::Bucket").items():
        properties = bucket["Properties"]
        block = properties.get("PublicAccessBlockConfiguration", {})
        problems += [f"{name}: {flag} is not true" for flag in _PUBLIC_ACCESS_BLOCKS if block.get(flag) is not True]
        owners = [rule.get("ObjectOwnership") for rule in _dig(properties, "OwnershipControls", "Rules") or []]
        if owners != ["BucketOwnerEnforced"]:
            problems.append(f"{name}: ACLs are not disabled (OwnershipControls BucketOwnerEnforced)")
        if name in feeding and _dig(properties, "VersioningConfiguration", "Status") != "Enabled":
            problems.append(f"{name}: starts ingestion but is not versioned (versioning gives one event per write)")
    return problems


def _resource_policies(template: Template) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(owner, statement, is a trust policy) for every Allow statement of every resource policy."""
    documents = [
        (name, _dig(resource, "Properties", "PolicyDocument"), False)
        for name, resource in _of_type(
            template, "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"
        ).items()
    ]
    documents += [
        (n, _dig(r, "Properties", "KeyPolicy"), False) for n, r in _of_type(template, "AWS::KMS::Key").items()
    ]
    roles = _of_type(template, "AWS::IAM::Role").items()
    documents += [(n, _dig(r, "Properties", "AssumeRolePolicyDocument"), True) for n, r in roles]
    for owner, document, trust in documents:
        for statement in _branches((document or {}).get("Statement", [])):
            if statement.get("Effect") == "Allow":
                yield owner, statement, trust


def resource_policy_problems(template: Template) -> list[str]:
    """No resource policy or trust policy allows anyone; a service principal is allowed only for
    this account's resources."""
    problems = []
    for owner, statement, trust in _resource_policies(template):
        where = f"{owner} ({statement.get('Sid') or 'statement'})"
        principal = statement.get("Principal", {})
        everyone = principal == "*" or (isinstance(principal, dict) and "*" in _branches(principal.get("AWS", [])))
        if everyone:
            problems.append(f"{where}: allows any principal")
        services = (
            {render(s) for s in _branches(principal.get("Service", []))} if isinstance(principal, dict) else set()
        )
        if trust:
            services -= SAM_TRUSTED_SERVICES
        keys = [key for operator in statement.get("Condition", {}).values() for key in operator]
        if services and not any(key.startswith(_SCOPING_KEYS) for key in keys):
            problems.append(
                f"{where}: allows {sorted(services)} without aws:SourceAccount or aws:SourceArn "
                "(any account's resources could use it)"
            )
    return problems


# -- the checks on this template and this code ------------------------------------------------------------------

TEMPLATE_CHECKS = [
    least_privilege_problems,
    sqs_consumer_problems,
    input_bucket_problems,
    encryption_problems,
    tls_problems,
    tracing_problems,
    state_machine_logging_problems,
    template_secret_problems,
    bucket_access_problems,
    resource_policy_problems,
]


@pytest.mark.parametrize("check", TEMPLATE_CHECKS, ids=lambda check: check.__name__)
def test_the_transformed_template_passes(transformed: Template, check: Callable[[Template], list[str]]) -> None:
    assert check(transformed) == []


def test_every_sqs_handler_reports_partial_batch_failures(source: Template) -> None:
    assert sqs_handler_problems(source) == []


def test_the_deployed_code_reads_no_secret_from_the_environment_and_does_nothing_unsafe() -> None:
    sources = _deployed_sources()
    assert len(sources) > 20  # the layer and the four functions, at least
    assert code_secret_problems(sources) == []
    assert unsafe_code_problems(sources) == []


def test_every_allowance_is_still_needed(transformed: Template) -> None:
    """An allow-list entry nothing uses any more widens the checks for nothing."""
    on_star = {action for grant in _grants(transformed) if "*" in grant.resources for action in grant.actions}
    assert on_star >= RESOURCE_STAR_ONLY, RESOURCE_STAR_ONLY - on_star
    assert {action for grant in _grants(transformed) for action in grant.actions} >= WILDCARD_ACTIONS_ALLOWED
    managed = {
        render(arn)
        for role in _of_type(transformed, "AWS::IAM::Role").values()
        for arn in _branches(role["Properties"].get("ManagedPolicyArns", []))
    }
    assert managed >= MANAGED_POLICIES_ALLOWED, MANAGED_POLICIES_ALLOWED - managed
    variables = {
        variable
        for function in _of_type(transformed, "AWS::Lambda::Function").values()
        for variable in _dig(function, "Properties", "Environment", "Variables") or {}
    }
    code = "\n".join(_deployed_sources().values())
    used = set(transformed["Parameters"]) | variables | set(re.findall(r"\b[A-Z][A-Z_]+\b", code))
    assert used >= set(NOT_SECRETS), set(NOT_SECRETS) - used
    kinds = {resource["Type"] for resource in transformed["Resources"].values()}
    assert kinds >= set(NOT_UNDER_THE_STACK_KEY), set(NOT_UNDER_THE_STACK_KEY) - kinds


# -- each check catches what it is for -----------------------------------------------------------------------------


def _node(template: Template, name: str, path: tuple[str | int, ...]) -> Any:
    node: Any = template["Resources"][name]["Properties"]
    for key in path:
        node = node[key]
    return node


def setting(name: str, *path: str | int, value: Any) -> Mutation:
    def mutate(template: Template) -> None:
        _node(template, name, path[:-1])[path[-1]] = value

    return mutate


def removing(name: str, *path: str | int) -> Mutation:
    def mutate(template: Template) -> None:
        del _node(template, name, path[:-1])[path[-1]]

    return mutate


def adding(name: str, resource: dict[str, Any]) -> Mutation:
    def mutate(template: Template) -> None:
        template["Resources"][name] = resource

    return mutate


def granting(role: str, statement: dict[str, Any]) -> Mutation:
    def mutate(template: Template) -> None:
        policy = {"PolicyName": "mutation", "PolicyDocument": {"Statement": [{"Effect": "Allow", **statement}]}}
        template["Resources"][role]["Properties"].setdefault("Policies", []).append(policy)

    return mutate


def changing(name: str, sid: str, **changes: Any) -> Mutation:
    """Changes the statement with this Sid in a resource policy, a key policy or a role's inline
    policies; None removes a key."""

    def mutate(template: Template) -> None:
        properties = template["Resources"][name]["Properties"]
        documents = [properties[k] for k in ("PolicyDocument", "KeyPolicy") if k in properties]
        documents += [policy["PolicyDocument"] for policy in _branches(properties.get("Policies", []))]
        statement = next(s for d in documents for s in _branches(d["Statement"]) if s.get("Sid") == sid)
        for key, value in changes.items():
            if value is None:
                statement.pop(key, None)
            else:
                statement[key] = value

    return mutate


def trusting_any_account(role: str) -> Mutation:
    def mutate(template: Template) -> None:
        for statement in template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            statement.pop("Condition", None)

    return mutate


RAW_OBJECTS = {"Fn::Sub": "${RawBucket.Arn}/*"}
CAUGHT = [
    # 1. least privilege
    pytest.param(least_privilege_problems, granting("FineTuneStateMachineRole", {"Action": "bedrock:*", "Resource": {"Fn::GetAtt": ["DataKey", "Arn"]}}),
                 ("FineTuneStateMachineRole", "wildcard action bedrock:*"), id="service-wide action"),
    pytest.param(least_privilege_problems, granting("IngestDocumentFunctionRole", {"Action": "dynamodb:GetItem", "Resource": "*"}),
                 ("IngestDocumentFunctionRole", "Resource '*'"), id="resource star"),
    pytest.param(least_privilege_problems, granting("FineTuneFunctionRole", {"Action": ["s3:GetObject", "s3:PutLifecycleConfiguration"], "Resource": {"Fn::GetAtt": ["ProcessedBucket", "Arn"]}}),
                 ("FineTuneFunctionRole", "s3:PutLifecycleConfiguration"), id="bucket lifecycle rules (S3CrudPolicy)"),
    pytest.param(least_privilege_problems, granting("SyncKendraFunctionRole", {"Action": "iam:CreateRole", "Resource": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/x"}}),
                 ("SyncKendraFunctionRole", "iam:CreateRole"), id="IAM changes"),
    pytest.param(least_privilege_problems, granting("RunConnectorFunctionRole", {"Action": "kms:Decrypt", "Resource": {"Fn::Sub": ["arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/${keyId}", {"keyId": {"Fn::GetAtt": ["DataKey", "Arn"]}}]}}),
                 ("RunConnectorFunctionRole", "ARN built around another ARN"), id="KMSDecryptPolicy given an ARN"),
    pytest.param(least_privilege_problems, changing("FineTuneStateMachineRole", "PassTheCustomizationRole", Condition=None),
                 ("FineTuneStateMachineRole", "iam:PassedToService"), id="PassRole to any service"),
    pytest.param(least_privilege_problems, setting("FineTuneFunctionRole", "ManagedPolicyArns", 0, value="arn:aws:iam::aws:policy/AmazonS3FullAccess"),
                 ("FineTuneFunctionRole", "AmazonS3FullAccess"), id="managed policy"),
    pytest.param(least_privilege_problems, granting("FineTuneFunctionRole", {"NotAction": "iam:*", "Resource": {"Fn::GetAtt": ["DataKey", "Arn"]}}),
                 ("FineTuneFunctionRole", "NotAction"), id="NotAction"),
    pytest.param(least_privilege_problems, changing("KnowledgeBaseServiceRole", "UseTheVectorIndex", Action="s3vectors:*"),
                 ("KnowledgeBaseServiceRole", "s3vectors:*"), id="every vector action"),
    pytest.param(sqs_consumer_problems, changing("SyncKendraFunctionRole", "OnlyItsOwnQueue", NotResource={"Fn::GetAtt": ["KnowledgeBaseQueue", "Arn"]}),
                 ("SyncKendraFunctionRole", "AWSLambdaSQSQueueExecutionRole", "KendraQueue"), id="a sink may read another sink's queue"),
    pytest.param(input_bucket_problems, granting("IngestDocumentFunctionRole", {"Action": "s3:PutObject", "Resource": {"Fn::Sub": "${RawBucket.Arn}/derived/*"}}),
                 ("IngestDocumentFunctionRole", "RawBucket", "a loop"), id="ingestion writes to its own input"),
    pytest.param(input_bucket_problems, changing("RunConnectorFunctionRole", "LandInRawBucket", Resource=RAW_OBJECTS),
                 ("RunConnectorFunctionRole", "anything in RawBucket"), id="a connector writes over users' uploads"),
    # 2. keys
    pytest.param(encryption_problems, setting("RawBucket", "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", value={"SSEAlgorithm": "AES256"}),
                 ("RawBucket", "SSE-KMS"), id="bucket SSE-S3"),
    pytest.param(encryption_problems, removing("DocumentsTable", "SSESpecification", "KMSMasterKeyId"),
                 ("DocumentsTable", "KMSMasterKeyId"), id="table with AWS's key"),
    pytest.param(encryption_problems, setting("DocumentsTable", "SSESpecification", "SSEEnabled", value=False),
                 ("DocumentsTable", "SSEEnabled"), id="table SSE off"),
    pytest.param(encryption_problems, setting("IngestQueue", "KmsMasterKeyId", value="alias/aws/sqs"),
                 ("IngestQueue", "KmsMasterKeyId"), id="queue with AWS's key"),
    pytest.param(encryption_problems, removing("FineTuneNotificationTopic", "KmsMasterKeyId"),
                 ("FineTuneNotificationTopic", "KmsMasterKeyId"), id="topic with AWS's key"),
    pytest.param(encryption_problems, removing("SinkFunctionLogGroup", "KmsKeyId"),
                 ("SinkFunctionLogGroup", "KmsKeyId"), id="log group"),
    pytest.param(encryption_problems, removing("FineTuneFunction", "KmsKeyArn"),
                 ("FineTuneFunction", "KmsKeyArn"), id="function environment"),
    pytest.param(encryption_problems, removing("RunConnectorFunction", "LoggingConfig"),
                 ("RunConnectorFunction", "LoggingConfig.LogGroup"), id="function logs to Lambda's own group"),
    pytest.param(encryption_problems, removing("VectorIndex", "EncryptionConfiguration"),
                 ("VectorIndex", "KmsKeyArn"), id="vector index with its bucket's key"),
    pytest.param(encryption_problems, setting("VectorBucket", "EncryptionConfiguration", value={"SseType": "AES256"}),
                 ("VectorBucket", "SseType"), id="vector bucket SSE-S3"),
    pytest.param(encryption_problems, adding("ApiKey", {"Type": "AWS::SecretsManager::Secret", "Properties": {}}),
                 ("ApiKey", "KmsKeyId"), id="secret"),
    pytest.param(encryption_problems, adding("Shared", {"Type": "AWS::EFS::FileSystem", "Properties": {}}),
                 ("Shared", "not classified"), id="unclassified type"),
    # 3. TLS
    pytest.param(tls_problems, changing("KendraQueuePolicy", "DenyInsecureTransport", Effect="Allow"),
                 ("KendraDeadLetterQueue", "TLS"), id="queue without TLS"),
    pytest.param(tls_problems, changing("AlarmTopicPolicy", "DenyInsecureTransport", Action="sns:Subscribe"),
                 ("AlarmTopic", "TLS"), id="topic without TLS"),
    pytest.param(tls_problems, changing("RawBucketPolicy", "DenyInsecureTransport", Resource={"Fn::GetAtt": ["RawBucket", "Arn"]}),
                 ("RawBucket", "arn:<RawBucket>/*"), id="bucket objects"),
    # 4. tracing, 5. logs of the state machines
    pytest.param(tracing_problems, removing("SyncKendraFunction", "TracingConfig"),
                 ("SyncKendraFunction", "Active"), id="function"),
    pytest.param(tracing_problems, setting("FineTuneStateMachine", "TracingConfiguration", "Enabled", value=False),
                 ("FineTuneStateMachine", "TracingConfiguration"), id="state machine"),
    pytest.param(state_machine_logging_problems, setting("FineTuneStateMachine", "LoggingConfiguration", "IncludeExecutionData", value=True),
                 ("FineTuneStateMachine", "IncludeExecutionData"), id="execution data"),
    pytest.param(state_machine_logging_problems, setting("FineTuneStateMachine", "LoggingConfiguration", "Level", value="OFF"),
                 ("FineTuneStateMachine", "'OFF'"), id="level"),
    pytest.param(state_machine_logging_problems, setting("FineTuneStateMachine", "LoggingConfiguration", "Destinations", value=[]),
                 ("FineTuneStateMachine", "no log group"), id="destination"),
    # 8. secrets
    pytest.param(template_secret_problems, lambda t: t["Parameters"].update(SlackBotToken={"Type": "String", "NoEcho": True}),
                 ("SlackBotToken", "secret"), id="parameter"),
    pytest.param(template_secret_problems, setting("RunConnectorFunction", "Environment", "Variables", "SLACK_TOKEN", value="xoxb-0"),
                 ("RunConnectorFunction", "SLACK_TOKEN"), id="environment name"),
    pytest.param(template_secret_problems, setting("RunConnectorFunction", "Environment", "Variables", "CONFIG", value="{{resolve:secretsmanager:sluice/slack}}"),
                 ("RunConnectorFunction", "CONFIG", "credential"), id="dynamic reference"),
    # 10. buckets and resource policies
    pytest.param(bucket_access_problems, setting("ProcessedBucket", "PublicAccessBlockConfiguration", "BlockPublicPolicy", value=False),
                 ("ProcessedBucket", "BlockPublicPolicy"), id="public access block"),
    pytest.param(bucket_access_problems, removing("AccessLogBucket", "OwnershipControls"),
                 ("AccessLogBucket", "ACLs"), id="ACLs"),
    pytest.param(bucket_access_problems, setting("RawBucket", "VersioningConfiguration", "Status", value="Suspended"),
                 ("RawBucket", "versioned"), id="input bucket versioning"),
    pytest.param(resource_policy_problems, changing("ProcessedBucketPolicy", "DenyInsecureTransport", Effect="Allow", Condition=None),
                 ("ProcessedBucketPolicy", "any principal"), id="public bucket policy"),
    pytest.param(resource_policy_problems, changing("IngestQueuePolicy", "RawBucketNotifies", Condition=None),
                 ("IngestQueuePolicy", "s3.amazonaws.com"), id="service principal of any account"),
    pytest.param(resource_policy_problems, trusting_any_account("ConnectorSchedulerRole"),
                 ("ConnectorSchedulerRole", "scheduler.amazonaws.com"), id="trust without conditions"),
    pytest.param(resource_policy_problems, trusting_any_account("KnowledgeBaseServiceRole"),
                 ("KnowledgeBaseServiceRole", "bedrock.amazonaws.com"), id="any account's knowledge base"),
    pytest.param(resource_policy_problems, changing("DataKey", "S3VectorsIndexesEncryptedVectors", Condition=None),
                 ("DataKey", "indexing.s3vectors.amazonaws.com"), id="key for any account's vector index"),
]  # fmt: skip


@pytest.mark.parametrize(("check", "mutate", "expected"), CAUGHT)
def test_each_check_catches_what_it_is_for(
    transformed: Template, check: Callable[[Template], list[str]], mutate: Mutation, expected: tuple[str, ...]
) -> None:
    assert check(transformed) == []
    broken = copy.deepcopy(transformed)
    mutate(broken)
    problems = check(broken)
    assert any(all(part in problem for part in expected) for problem in problems), problems


def test_state_machines_need_the_key_once_sam_can_set_one(
    transformed: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "SAM_STATE_MACHINES_TAKE_A_KEY", True)
    assert any("FineTuneStateMachine" in p and "EncryptionConfiguration" in p for p in encryption_problems(transformed))


def test_the_handler_check_catches_an_sqs_function_that_reports_no_failures(source: Template) -> None:
    broken = copy.deepcopy(source)
    broken["Resources"]["IngestDocumentFunction"]["Properties"]["CodeUri"] = "functions/finetune/"
    assert any("IngestDocumentFunction" in p and "batchItemFailures" in p for p in sqs_handler_problems(broken))
    broken["Resources"]["IngestDocumentFunction"]["Properties"]["Handler"] = "missing.lambda_handler"
    assert any("does not exist" in p for p in sqs_handler_problems(broken))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\ntoken = os.environ['SLACK_TOKEN']", "SLACK_TOKEN"),
        ("import os\npassword = os.getenv('DB_PASSWORD')", "DB_PASSWORD"),
        ("def f(e):\n    return e.required('SNOWFLAKE_PRIVATE_KEY')", "SNOWFLAKE_PRIVATE_KEY"),
    ],
)
def test_the_code_check_catches_secrets_read_from_the_environment(code: str, expected: str) -> None:
    (problem,) = code_secret_problems({"functions/x/app.py": code})
    assert problem.startswith("functions/x/app.py:") and expected in problem
    assert code_secret_problems({"functions/x/app.py": "import os\nos.environ['SECRET_ARN']"}) == []  # a pointer


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import requests\nrequests.get('https://example.com', verify=False)", "verify=False"),
        ("import subprocess\nsubprocess.run('ls', shell=True)", "shell=True"),
        ("import yaml\nyaml.load(text)", "SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "SafeLoader"),
        ("import pickle\npickle.loads(body)", "pickle.loads"),
        ("from pickle import loads\nloads(body)", "pickle.loads"),
        ("URL = 'http://api.example.com/v1'", "plain-HTTP"),
        ("from urllib.request import urlopen\nurlopen(url)", "urllib.request.urlopen"),
        ("import xml.etree.ElementTree as ET\nET.fromstring(body)", "defusedxml"),
        ("import ssl\nssl._create_unverified_context()", "certificate"),
        ("import ssl\ncontext.verify_mode = ssl.CERT_NONE", "CERT_NONE"),
        ("context.check_hostname = False", "TLS verification off"),
        ("eval(expression)", "evaluates text as code"),
    ],
)
def test_the_code_check_catches_unsafe_code(code: str, expected: str) -> None:
    problems = unsafe_code_problems({"layers/sluice/sluice/x.py": code})
    assert any(p.startswith("layers/sluice/sluice/x.py:") and expected in p for p in problems), problems


def test_the_code_check_leaves_safe_code_alone() -> None:
    safe = (
        '"""Fetches http://docs.example.com/ with the guard."""\n'
        "import yaml\nimport defusedxml.ElementTree as ET\n"
        "W = '{http://schemas.openxmlformats.org/wordprocessingml/2006/main}'\n"
        "ok = url.startswith(('https://', 'http://'))\n"
        "yaml.load(text, Loader=yaml.SafeLoader)\nET.fromstring(body)\n"
    )
    assert unsafe_code_problems({"x.py": safe}) == []

"""template.yaml's resources created on the local stack's moto server: physical names and
attributes first (so that every reference resolves), then the queues, tables, buses and rules,
buckets and their notifications; the emulated services' resources (the S3 Vectors bucket and index,
the knowledge base and its data source, created by their own API calls from the template's
properties, as CloudFormation would; the Kendra index); topics, parameters and state machines; the
functions as specs for the workers; and two local-only taps (a queue receiving every bus event, one
subscribed to every topic) for the demo and the tests.

Resource types the local stack does not emulate (KMS keys, IAM roles, log groups, bucket and queue
policies) are listed in ``skipped``, not silently dropped: their absence changes nothing about how
data flows.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice_local.runtime import FunctionSpec
from sluice_local.template import ACCOUNT, Resolver, Resource

TAP_RULE = "sluice-local-tap"
LOCAL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/sluice-local"  # IAM is not emulated; state machines need a role ARN
# Local-only speed-ups of deployed settings: sink status checks after 1 s, 2 s, 4 s … instead of 20 s …
LOCAL_SINK_ENVIRONMENT = {"SINK_FIRST_CHECK_SECONDS": "1"}
# The emulated resource types, in the order they are created (each may refer to the one before), and
# the API call that creates each: (service, operation, response member holding the new id, its key).
EMULATED = {
    "AWS::S3Vectors::VectorBucket": ("s3vectors", "create_vector_bucket", None, None),
    "AWS::S3Vectors::Index": ("s3vectors", "create_index", None, None),
    "AWS::Bedrock::KnowledgeBase": ("bedrock-agent", "create_knowledge_base", "knowledgeBase", "knowledgeBaseId"),
    "AWS::Bedrock::DataSource": ("bedrock-agent", "create_data_source", "dataSource", "dataSourceId"),
}
_CREATED = {  # the resource types created here; the others are listed in `skipped`
    *EMULATED,
    "AWS::SNS::Topic",
    "AWS::SSM::Parameter",
    "AWS::Serverless::StateMachine",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::Events::EventBus",
    "AWS::Events::Rule",
    "AWS::Serverless::Function",
    "AWS::Serverless::LayerVersion",
}


def _physical_name(stack: str, logical_id: str, limit: int = 80) -> str:
    return f"{stack}-{logical_id}"[:limit]


def _bucket_name(stack: str, logical_id: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{stack}-{logical_id}".lower())
    return name[:63].strip("-")


class Provisioner:
    """Creates the resources through ``client(service)``; what the functions need to run, and the
    taps' queues, are its attributes afterwards."""

    def __init__(
        self,
        root: Path,
        resolver: Resolver,
        stack_name: str,
        region: str,
        endpoint: str,
        client: Callable[[str], Any],
        emulator_dir: Path,
    ) -> None:
        self.root = root
        self.emulator_dir = emulator_dir
        self.resolver = resolver
        self.stack_name = stack_name
        self.region = region
        self.endpoint = endpoint
        self.client = client
        self.functions: dict[str, FunctionSpec] = {}
        self.skipped: list[str] = []
        self.tap_queue_url: str | None = None
        self.notification_queue_url: str | None = None

    def provision(self) -> None:
        r = self.resolver
        for resource in r.resources.values():
            self._name(resource)
        sqs = self.client("sqs")
        queues = self._of_type("AWS::SQS::Queue")
        for q in queues:
            props = r.resolve({k: v for k, v in q.properties.items() if k != "RedrivePolicy"})
            attrs = {
                k: str(props[k])
                for k in ("VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize")
                if k in props
            }
            q.ref = q.attributes["QueueUrl"] = sqs.create_queue(QueueName=q.physical_id, Attributes=attrs)["QueueUrl"]
        for q in queues:
            if "RedrivePolicy" in q.properties:
                policy = r.resolve(q.properties["RedrivePolicy"])
                sqs.set_queue_attributes(
                    QueueUrl=q.attributes["QueueUrl"], Attributes={"RedrivePolicy": json.dumps(policy)}
                )
        ddb = self.client("dynamodb")
        for t in self._of_type("AWS::DynamoDB::Table"):
            self._create_table(ddb, t, r.resolve(t.properties))
        events = self.client("events")
        for bus in self._of_type("AWS::Events::EventBus"):
            events.create_event_bus(Name=bus.physical_id)
        for rule in self._of_type("AWS::Events::Rule"):
            props = r.resolve(rule.properties)
            events.put_rule(
                Name=rule.physical_id,
                EventBusName=props.get("EventBusName", "default"),
                EventPattern=json.dumps(props["EventPattern"]),
                State=props.get("State", "ENABLED"),
            )
            events.put_targets(
                Rule=rule.physical_id,
                EventBusName=props.get("EventBusName", "default"),
                Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets", [])],
            )
        s3 = self.client("s3")
        buckets = self._of_type("AWS::S3::Bucket")
        for b in buckets:
            s3.create_bucket(Bucket=b.physical_id)
            versioning = r.resolve(b.properties.get("VersioningConfiguration") or {})
            if versioning.get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=b.physical_id, VersioningConfiguration={"Status": "Enabled"})
        for b in buckets:
            notifications = r.resolve(b.properties.get("NotificationConfiguration") or {})
            queue_configs = [
                {"QueueArn": c["Queue"], "Events": [c["Event"]], **({"Filter": c["Filter"]} if "Filter" in c else {})}
                for c in notifications.get("QueueConfigurations", [])
            ]
            if queue_configs:
                s3.put_bucket_notification_configuration(
                    Bucket=b.physical_id, NotificationConfiguration={"QueueConfigurations": queue_configs}
                )
        self._provision_emulated_services()
        for f in self._of_type("AWS::Serverless::Function"):
            self.functions[f.logical_id] = self.function_spec(f)
        self._create_tap()
        sns = self.client("sns")
        for topic in self._of_type("AWS::SNS::Topic"):
            sns.create_topic(Name=topic.physical_id)
            sns.subscribe(TopicArn=topic.ref, Protocol="sqs", Endpoint=self._notification_tap_arn())
        ssm = self.client("ssm")
        for parameter in self._of_type("AWS::SSM::Parameter"):
            value = str(r.resolve(parameter.properties["Value"]))
            ssm.put_parameter(Name=parameter.physical_id, Value=value, Type="String", Overwrite=True)
        stepfunctions = self.client("stepfunctions")
        for machine in self._of_type("AWS::Serverless::StateMachine"):
            stepfunctions.create_state_machine(
                name=machine.physical_id,
                definition=self._definition(machine),
                roleArn=LOCAL_ROLE,
                type=str(r.resolve(machine.properties.get("Type", "STANDARD"))),
            )
        self.skipped = sorted({res.type for res in r.resources.values() if res.type not in _CREATED})

    def _of_type(self, kind: str) -> list[Resource]:
        return [res for res in self.resolver.resources.values() if res.type == kind]

    def _name(self, res: Resource) -> None:
        """Physical ids and attributes, assigned before anything is created so refs resolve."""
        stack, lid, region = self.stack_name, res.logical_id, self.region
        kind = res.type
        if kind == "AWS::SQS::Queue":
            res.physical_id = _physical_name(stack, lid)
            res.attributes.update(
                Arn=f"arn:aws:sqs:{region}:{ACCOUNT}:{res.physical_id}",
                QueueName=res.physical_id,
                QueueUrl=f"{self.endpoint}/{ACCOUNT}/{res.physical_id}",
            )
            res.ref = res.attributes["QueueUrl"]  # a queue's Ref is its URL
        elif kind == "AWS::S3::Bucket":
            name = res.properties.get("BucketName")
            res.physical_id = str(self.resolver.resolve(name)) if name else _bucket_name(stack, lid)
            res.attributes.update(
                Arn=f"arn:aws:s3:::{res.physical_id}", DomainName=f"{res.physical_id}.s3.amazonaws.com"
            )
        elif kind == "AWS::DynamoDB::Table":
            res.physical_id = _physical_name(stack, lid, 255)
            res.attributes.update(Arn=f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{res.physical_id}")
        elif kind == "AWS::Events::EventBus":
            res.physical_id = str(self.resolver.resolve(res.properties["Name"]))
            res.attributes.update(
                Arn=f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{res.physical_id}", Name=res.physical_id
            )
        elif kind == "AWS::Events::Rule":
            res.physical_id = _physical_name(stack, lid, 64)
            res.attributes.update(Arn=f"arn:aws:events:{region}:{ACCOUNT}:rule/{res.physical_id}")
        elif kind == "AWS::SNS::Topic":
            res.physical_id = _physical_name(stack, lid, 256)
            res.ref = f"arn:aws:sns:{region}:{ACCOUNT}:{res.physical_id}"
            res.attributes.update(TopicArn=res.ref, TopicName=res.physical_id)
        elif kind == "AWS::SSM::Parameter":
            res.physical_id = res.ref = f"/{stack}/{lid}"
            res.attributes.update(Type="String")
        elif kind == "AWS::Serverless::StateMachine":
            res.physical_id = _physical_name(stack, lid)
            res.ref = f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{res.physical_id}"
            res.attributes.update(Arn=res.ref, Name=res.physical_id)
        elif kind == "AWS::S3Vectors::VectorBucket":
            name = res.properties.get("VectorBucketName")
            res.physical_id = str(self.resolver.resolve(name)) if name else _bucket_name(stack, lid)
            res.ref = f"arn:aws:s3vectors:{region}:{ACCOUNT}:bucket/{res.physical_id}"
            res.attributes.update(VectorBucketArn=res.ref)
        elif kind == "AWS::S3Vectors::Index":
            res.physical_id = _bucket_name(stack, lid)  # its ARN names its bucket: set when it is created
        elif kind == "AWS::IAM::Role":
            res.physical_id = _physical_name(stack, lid, 64)
            res.attributes.update(Arn=f"arn:aws:iam::{ACCOUNT}:role/{res.physical_id}", RoleId=res.physical_id)
        elif kind == "AWS::Serverless::Function":
            res.physical_id = _physical_name(stack, lid, 64)
            res.attributes.update(Arn=f"arn:aws:lambda:{region}:{ACCOUNT}:function:{res.physical_id}")
        else:  # not emulated: names that resolve, so templates referring to them still load
            service = kind.split("::")[1].lower()
            res.physical_id = f"{stack}-{lid}-local"
            res.attributes.update(
                Arn=f"arn:aws:{service}:{region}:{ACCOUNT}:{lid}/{res.physical_id}", KeyId=res.physical_id
            )

    def _provision_emulated_services(self) -> None:
        """The emulator's database, fresh for every stack like moto's in-memory services; in it, the
        template's vector store, knowledge base and data source, each made by its own API call (so
        botocore checks the template's properties against the API, and the emulator checks what AWS
        would, such as equal dimensions); a knowledge base and data source named by parameter
        (``existing`` mode) and the Kendra index are set up as already there."""
        from sluice.pipeline.files import CHUNK_PREFIX
        from sluice_local.emulators import LOCAL_KENDRA_FIELDS, Emulator

        shutil.rmtree(self.emulator_dir, ignore_errors=True)
        emulator = Emulator(self.emulator_dir, s3=self.client("s3"))
        r = self.resolver
        kb, ds = r.parameters.get("KnowledgeBaseId"), r.parameters.get("KnowledgeBaseDataSourceId")
        if kb and r.parameters.get("KnowledgeBaseMode") == "existing":
            emulator.adopt_knowledge_base(kb)
            if ds:  # its data source, over the processed chunks
                processed = next(b for b in self._of_type("AWS::S3::Bucket") if b.logical_id == "ProcessedBucket")
                emulator.create_data_source(kb, ds, processed.physical_id, CHUNK_PREFIX)
        for kind, (service, operation, member, id_key) in EMULATED.items():
            for res in self._of_type(kind):
                client = emulator.client(service)
                call = getattr(client, operation)
                request = _api_request(
                    r.resolve(res.properties),
                    client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation]).input_shape,
                )
                if kind == "AWS::S3Vectors::VectorBucket":  # CloudFormation names what the template does not
                    request.setdefault("vectorBucketName", res.physical_id)
                elif kind == "AWS::S3Vectors::Index":
                    request.setdefault("indexName", res.physical_id)
                response = call(**request)
                if kind == "AWS::S3Vectors::Index":
                    res.ref = response["indexArn"]
                    res.attributes.update(IndexArn=res.ref)
                elif member and id_key:
                    created = response[member]
                    res.physical_id = res.ref = created[id_key]
                    res.attributes.update({k[0].upper() + k[1:]: v for k, v in created.items() if isinstance(v, str)})
        if r.parameters.get("KendraIndexId"):
            emulator.create_index(r.parameters["KendraIndexId"], LOCAL_KENDRA_FIELDS)

    def _create_table(self, ddb: Any, table: Resource, props: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {
            "TableName": table.physical_id,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=table.physical_id,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    def function_spec(self, fn: Resource) -> FunctionSpec:
        """A function as the template and the stack's parameters describe it now."""
        r = self.resolver
        merged = {**r.globals_for("Function"), **fn.properties}
        global_env = (r.globals_for("Function").get("Environment") or {}).get("Variables") or {}
        own_env = (fn.properties.get("Environment") or {}).get("Variables") or {}
        env = {k: str(v) for k, v in r.resolve({**global_env, **own_env}).items()}
        if "SINK" in env:
            env.update(LOCAL_SINK_ENVIRONMENT)
        sources = []
        for event in (fn.properties.get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            props = r.resolve(event["Properties"])
            queue = next(q for q in self._of_type("AWS::SQS::Queue") if q.attributes["Arn"] == props["Queue"])
            sources.append(
                {
                    "queue_url": queue.attributes["QueueUrl"],
                    "queue_arn": queue.attributes["Arn"],
                    "batch_size": int(props.get("BatchSize", 10)),
                    "window": float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    "report_failures": "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    "max_concurrency": int((props.get("ScalingConfig") or {}).get("MaximumConcurrency") or 1000),
                }
            )
        return FunctionSpec(
            logical_id=fn.logical_id,
            code_dir=(self.root / str(merged["CodeUri"])).resolve(),
            handler=str(merged["Handler"]),
            environment=env,
            timeout=float(r.resolve(merged.get("Timeout", 3))),
            memory=int(r.resolve(merged.get("MemorySize", 128))),
            sqs_sources=sources,
        )

    def _definition(self, machine: Resource) -> str:
        """The ASL file with its DefinitionSubstitutions made, as SAM does at deploy time."""
        text = (self.root / str(machine.properties["DefinitionUri"])).read_text()
        for name, value in self.resolver.resolve(machine.properties.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + name + "}", str(value))
        return text

    def _notification_tap_arn(self) -> str:
        """A local-only queue subscribed to every topic, so the demo and the tests see notifications."""
        name = _physical_name(self.stack_name, "LocalNotificationTap")
        self.notification_queue_url = self.client("sqs").create_queue(QueueName=name)["QueueUrl"]
        return f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}"

    def _create_tap(self) -> None:
        """A local-only queue that receives a copy of every event on the stack's buses, so the demo
        report and the tests can see what ingestion announced."""
        sqs, events = self.client("sqs"), self.client("events")
        name = _physical_name(self.stack_name, "LocalBusTap")
        self.tap_queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}"
        for bus in self._of_type("AWS::Events::EventBus"):
            events.put_rule(
                Name=TAP_RULE, EventBusName=bus.physical_id, EventPattern=json.dumps({"account": [ACCOUNT]})
            )
            events.put_targets(Rule=TAP_RULE, EventBusName=bus.physical_id, Targets=[{"Id": "tap", "Arn": arn}])


def _api_request(properties: Any, shape: Any) -> Any:
    """CloudFormation properties (PascalCase, numbers often strings) as an API request of ``shape``:
    each key becomes the member of the same name in camelCase, numbers are converted. A property the
    API has no member for is an error: the template and the emulated API have drifted apart."""
    if shape.type_name == "structure":
        members = {name.lower(): name for name in shape.members}
        request = {}
        for key, value in properties.items():
            name = members.get(key.lower())
            if name is None:
                raise ValueError(f"{key}: {shape.name} has no such member (the template's property has no API twin)")
            request[name] = _api_request(value, shape.members[name])
        return request
    if shape.type_name == "list":
        return [_api_request(v, shape.member) for v in properties]
    if shape.type_name in ("integer", "long"):
        return int(properties)
    if shape.type_name in ("float", "double"):
        return float(properties)
    if shape.type_name == "boolean":
        return properties if isinstance(properties, bool) else str(properties).lower() == "true"
    return properties

"""template.yaml's resources created on the local stack's moto server: physical names and
attributes first (so that every reference resolves), then the queues, tables, buses and rules,
buckets and their notifications, topics, parameters and state machines; the functions as specs for
the workers; the emulated services' data sources and index; and two local-only taps (a queue
receiving every bus event, one subscribed to every topic) for the demo and the tests.

Resource types the local stack does not emulate (KMS keys, IAM roles, log groups, bucket and queue
policies) are listed in ``skipped``, not silently dropped: their absence changes nothing about how
data flows.
"""

from __future__ import annotations

import hashlib
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
_CREATED = {  # the resource types created here; the others are listed in `skipped`
    "AWS::Bedrock::DataSource",
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
        self, root: Path, resolver: Resolver, stack_name: str, region: str, endpoint: str, client: Callable[[str], Any]
    ) -> None:
        self.root = root
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
        for f in self._of_type("AWS::Serverless::Function"):
            self.functions[f.logical_id] = self._function_spec(f)
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
        elif kind == "AWS::Bedrock::DataSource":
            res.physical_id = "LOCAL" + hashlib.sha256(f"{stack}/{lid}".encode()).hexdigest()[:5].upper()
            res.attributes.update(DataSourceId=res.physical_id)
        elif kind == "AWS::Serverless::Function":
            res.physical_id = _physical_name(stack, lid, 64)
            res.attributes.update(Arn=f"arn:aws:lambda:{region}:{ACCOUNT}:function:{res.physical_id}")
        else:  # not emulated: names that resolve, so templates referring to them still load
            service = kind.split("::")[1].lower()
            res.physical_id = f"{stack}-{lid}-local"
            res.attributes.update(
                Arn=f"arn:aws:{service}:{region}:{ACCOUNT}:{lid}/{res.physical_id}", KeyId=res.physical_id
            )

    def provision_emulated_services(self, emulator_dir: Path) -> None:
        """The knowledge base's data sources and the Kendra index, in the emulator's database (fresh
        for every stack, like moto's in-memory services)."""
        from sluice.pipeline.files import CHUNK_PREFIX
        from sluice_local.emulators import LOCAL_KENDRA_FIELDS, Emulator

        shutil.rmtree(emulator_dir, ignore_errors=True)
        emulator = Emulator(emulator_dir, s3=self.client("s3"))
        r = self.resolver
        for source in self._of_type("AWS::Bedrock::DataSource"):
            props = r.resolve(source.properties)
            s3 = props["DataSourceConfiguration"]["S3Configuration"]
            bucket = s3["BucketArn"].rsplit(":", 1)[-1]
            emulator.create_data_source(
                props["KnowledgeBaseId"], source.physical_id, bucket, s3["InclusionPrefixes"][0]
            )
        kb, ds = r.parameters.get("KnowledgeBaseId"), r.parameters.get("KnowledgeBaseDataSourceId")
        if kb and ds:  # an existing data source, named by parameter: over the processed chunks
            processed = next(b for b in self._of_type("AWS::S3::Bucket") if b.logical_id == "ProcessedBucket")
            emulator.create_data_source(kb, ds, processed.physical_id, CHUNK_PREFIX)
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

    def _function_spec(self, fn: Resource) -> FunctionSpec:
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

"""The local stack: moto on 127.0.0.1 serving the AWS APIs, resources provisioned from
template.yaml itself, and the real handlers run by an event pump on real SQS events.

No AWS account, no Docker. Resource types the local stack does not emulate (KMS keys, IAM roles,
log groups, bucket and queue policies) are listed, not silently dropped: their absence changes
nothing about how data flows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sluice_local import moto_patches
from sluice_local.runtime import EventPump, FunctionSpec, FunctionWorker
from sluice_local.template import ACCOUNT, REGION, Resolver, Resource, load

DEFAULT_PORT = 4566
STATE_FILE = "state.json"
TAP_RULE = "sluice-local-tap"
LOCAL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/sluice-local"  # IAM is not emulated; state machines need a role ARN
# The sinks' services are emulated in-process (sluice_local.emulators); these parameters give the
# local stack a knowledge base and a Kendra index so that both sinks exist and run.
LOCAL_PARAMETERS = {"KnowledgeBaseId": "LOCALKB001", "KendraIndexId": "10ca1000-0000-4000-8000-000000000001"}
# Local-only speed-ups of deployed settings: sink status checks after 1 s, 2 s, 4 s … instead of 20 s …
LOCAL_SINK_ENVIRONMENT = {"SINK_FIRST_CHECK_SECONDS": "1"}
EMULATOR_DIR = "emulators"
_EMULATED = {
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


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest directory holding template.yaml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "template.yaml").is_file():
            return directory
    raise FileNotFoundError("no template.yaml here or above; run sluice from the Sluice repository")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class StackState:
    """What `sluice local outputs` and `sluice status --local` read about a running stack."""

    endpoint: str
    region: str
    stack_name: str
    outputs: dict[str, str]
    functions: dict[str, str] = field(default_factory=dict)
    tap_queue_url: str | None = None
    pid: int = 0
    emulator_dir: str = ""  # where the emulated Bedrock and Kendra keep their index and call log
    environments: dict[str, dict[str, str]] = field(default_factory=dict)  # each function's, resolved

    @classmethod
    def read(cls, state_dir: Path) -> StackState:
        path = state_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError("no local stack is running: start one with `sluice local up`")
        state = cls(**json.loads(path.read_text()))
        port = int(state.endpoint.rsplit(":", 1)[1])
        if port_is_free(port):  # nothing listens: the stack died without cleaning up
            path.unlink()
            raise FileNotFoundError(
                f"the local stack at {state.endpoint} is no longer running; start one with `sluice local up`"
            )
        return state

    def write(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / STATE_FILE).write_text(json.dumps(self.__dict__, indent=2))

    def client(self, service: str) -> Any:
        return local_client(service, self.endpoint, self.region)


def local_client(service: str, endpoint: str, region: str = REGION) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


class FunctionError(Exception):
    """A handler raised: carries its error type, as Lambda reports it to Step Functions."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _reply(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok"):
        result: dict[str, Any] = reply.get("result") or {}
        return result
    raise FunctionError(
        str(reply.get("errorType") or "Unhandled"), str(reply.get("errorMessage") or reply.get("error"))
    )


def _physical_name(stack: str, logical_id: str, limit: int = 80) -> str:
    return f"{stack}-{logical_id}"[:limit]


def _bucket_name(stack: str, logical_id: str) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", f"{stack}-{logical_id}".lower())
    return name[:63].strip("-")


class LocalStack:
    def __init__(
        self,
        root: Path,
        *,
        port: int = DEFAULT_PORT,
        stack_name: str = "sluice-local",
        parameters: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        environment: Mapping[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        """``environment``: more variables for every function worker (e.g. SLUICE_FAULTS);
        ``concurrency``: worker processes per queue-fed function, as Lambda scales out (at most the
        event source's ScalingConfig.MaximumConcurrency)."""
        self.root = root
        self.port = port
        self.stack_name = stack_name
        self.state_dir = state_dir or root / ".sluice" / "local"
        self.resolver = Resolver(load(root / "template.yaml"), stack_name, {**LOCAL_PARAMETERS, **(parameters or {})})
        self.region = REGION
        self.endpoint = ""
        self.skipped: list[str] = []
        self.functions: dict[str, FunctionSpec] = {}
        self.workers: dict[str, FunctionWorker] = {}
        self.replicas: list[FunctionWorker] = []  # the further instances of queue-fed functions (concurrency)
        self.environment = dict(environment or {})
        self.concurrency = max(1, concurrency)
        self.tap_queue_url: str | None = None
        self.notification_queue_url: str | None = None
        self._server: Any = None
        self._pump: EventPump | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        moto_patches.apply()
        # Step Functions executions run the real ASL on moto's interpreter; its Lambda tasks are
        # routed to the function workers (route_lambda below), never to moto's Docker runner.
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        default_user_config["lambda"] = {"use_docker": False}
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise here
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = int(port)
        self.endpoint = f"http://{host}:{self.port}"
        os.environ["MOTO_PORT"] = str(self.port)  # where the interpreter sends its own AWS calls
        self.provision()
        self._provision_emulated_services()
        self._start_functions()
        self.state().write(self.state_dir)

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.stop()
        for worker in [*self.workers.values(), *self.replicas]:
            worker.stop()
        state = self.state_dir / STATE_FILE
        if state.is_file():
            state.unlink()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = local_client(service, self.endpoint, self.region)
            return self._clients[service]

    def state(self) -> StackState:
        return StackState(
            endpoint=self.endpoint,
            region=self.region,
            stack_name=self.stack_name,
            outputs=self.outputs(),
            functions={name: str(self.root / "logs" / name) for name in self.functions},
            tap_queue_url=self.tap_queue_url,
            pid=os.getpid(),
            emulator_dir=str(self.emulator_dir),
            environments={name: spec.environment for name, spec in self.functions.items()},
        )

    # -- provisioning ----------------------------------------------------------------------------

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
        self.skipped = sorted({res.type for res in r.resources.values() if res.type not in _EMULATED})

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

    @property
    def emulator_dir(self) -> Path:
        return self.state_dir / EMULATOR_DIR

    def _provision_emulated_services(self) -> None:
        """The knowledge base's data sources and the Kendra index, in the emulator's database (fresh
        for every stack, like moto's in-memory services)."""
        from sluice.pipeline.files import CHUNK_PREFIX
        from sluice_local.emulators import LOCAL_KENDRA_FIELDS, Emulator

        shutil.rmtree(self.emulator_dir, ignore_errors=True)
        emulator = Emulator(self.emulator_dir, s3=self.client("s3"))
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

    def _start_functions(self) -> None:
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            # the caller's import path (a work tree other than the installed one) reaches the workers too
            **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
            "SLUICE_EMULATORS": str(self.emulator_dir),  # the workers answer Bedrock and Kendra in-process
            **self.environment,
        }
        self._pump = EventPump(self.client("sqs"), self.region)
        for name, spec in self.functions.items():
            worker = FunctionWorker(spec, base_env, self.state_dir / "logs" / f"{name}.log")
            self.workers[name] = worker
            for source in spec.sqs_sources:
                self._pump.add(worker, source)
            instances = min([self.concurrency, *(int(s.get("max_concurrency", 1)) for s in spec.sqs_sources)])
            for n in range(1, instances if spec.sqs_sources else 1):
                replica = FunctionWorker(spec, base_env, self.state_dir / "logs" / f"{name}.{n}.log")
                self.replicas.append(replica)
                for source in spec.sqs_sources:
                    self._pump.add(replica, source)
        from sluice_local.emulators import install, route_lambda

        install(self.emulator_dir, s3=self.client("s3"))  # provisioned throughput, for the state machine
        route_lambda(self._worker_for)

    def _worker_for(self, name_or_arn: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """The function worker behind a Lambda name or ARN (what a state machine's task invokes)."""
        name = name_or_arn.rsplit(":function:", 1)[-1].split(":", 1)[0]
        for logical_id, worker in self.workers.items():
            if self.resolver.resources[logical_id].physical_id == name:
                return lambda event: _reply(worker.invoke(event))
        return None

    # -- views -----------------------------------------------------------------------------------

    def outputs(self) -> dict[str, str]:
        r = self.resolver
        outputs = (r.template.get("Outputs") or {}).items()
        return {name: str(r.resolve(body["Value"])) for name, body in outputs if r.holds(body)}

    def queue_counts(self, url: str) -> dict[str, int]:
        """A queue's messages: waiting, in flight, and delayed (a sink's scheduled status checks)."""
        names = {
            "waiting": "ApproximateNumberOfMessages",
            "in flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=list(names.values()))
        return {label: int(attrs["Attributes"].get(name, 0)) for label, name in names.items()}

    def queue_depth(self, url: str) -> int:
        """Messages waiting, in flight or delayed."""
        return sum(self.queue_counts(url).values())

    @property
    def running(self) -> int:
        """Invocations the event pump has under way."""
        return 0 if self._pump is None else self._pump.busy

    def idle(self) -> bool:
        """No message waiting or in flight on any function's queue, and no invocation running."""
        urls = [s["queue_url"] for spec in self.functions.values() for s in spec.sqs_sources]
        return self.running == 0 and all(self.queue_depth(u) == 0 for u in urls)

    def wait_idle(self, timeout: float = 60.0, settle: float = 1.5) -> bool:
        """True once the pipeline has been idle for ``settle`` seconds, False at the timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            time.sleep(0.2)
        return False

"""The local stack: moto on 127.0.0.1 serving the AWS APIs, resources provisioned from
template.yaml itself (sluice_local.provision), and the real handlers run by an event pump on real
SQS events.

No AWS account, no Docker.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sluice_local import moto_patches
from sluice_local.provision import Provisioner
from sluice_local.runtime import EventPump, FunctionSpec, FunctionWorker
from sluice_local.template import REGION, Resolver, load

DEFAULT_PORT = 4566
STATE_FILE = "state.json"
STATE_DIR = Path(".sluice") / "local"  # under the repository: where `sluice ... --local` finds the stack


def state_dir() -> Path:
    """Where the running local stack's state is: SLUICE_LOCAL_STATE (a test's own stack), else the
    repository's .sluice/local."""
    override = os.environ.get("SLUICE_LOCAL_STATE")
    return Path(override) if override else find_root() / STATE_DIR


# The sinks' services are emulated in-process (sluice_local.emulators). The knowledge base is the one
# the template creates (KnowledgeBaseMode=create, the default); this parameter stands for an existing
# Kendra index (Kendra takes no new customers) so that the Kendra sink exists and runs too.
LOCAL_PARAMETERS = {"KendraIndexId": "10ca1000-0000-4000-8000-000000000001"}
EMULATOR_DIR = "emulators"


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
        """``environment``: more variables for every function worker, over the template's (e.g.
        SLUICE_FAULTS);
        ``concurrency``: worker processes per queue-fed function, as Lambda scales out (at most the
        event source's ScalingConfig.MaximumConcurrency)."""
        self.root = root
        self.port = port
        self.stack_name = stack_name
        self.state_dir = state_dir or root / STATE_DIR
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
        self._provisioner: Provisioner | None = None
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
        self._provisioner = provisioner = Provisioner(
            self.root, self.resolver, self.stack_name, self.region, self.endpoint, self.client, self.emulator_dir
        )
        provisioner.provision()
        self.functions, self.skipped = provisioner.functions, provisioner.skipped
        self.tap_queue_url = provisioner.tap_queue_url
        self.notification_queue_url = provisioner.notification_queue_url
        self._start_functions()
        self.state().write(self.state_dir)

    def redeploy(self, parameters: Mapping[str, str]) -> None:
        """`sam deploy` of the same stack with these parameter values, as its functions see it: the
        invocations under way finish, then every function starts again (new instances, as Lambda's after
        a configuration change) with its environment resolved anew. Messages wait in their queues
        meanwhile. A value that would add or remove a resource is refused (TemplateError)."""
        if self._provisioner is None:
            raise RuntimeError("the local stack is not started")
        self.resolver.update_parameters(parameters)
        self._stop_functions(wait=True)
        resources = self.resolver.resources
        self.functions = {name: self._provisioner.function_spec(resources[name]) for name in self.functions}
        self._start_functions()
        self.state().write(self.state_dir)

    def _stop_functions(self, *, wait: bool = False) -> None:
        """Stop the event pump and the workers; ``wait``: let the invocations under way finish first."""
        if self._pump is not None:
            self._pump.stop(timeout=None if wait else 5)
            self._pump = None
        for worker in [*self.workers.values(), *self.replicas]:
            worker.stop()
        self.workers, self.replicas = {}, []

    def stop(self) -> None:
        self._stop_functions()
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

    # -- function workers ------------------------------------------------------------------------

    @property
    def emulator_dir(self) -> Path:
        return self.state_dir / EMULATOR_DIR

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
        }
        self._pump = EventPump(self.client("sqs"), self.region)
        for name, template_spec in self.functions.items():
            spec = replace(template_spec, environment={**template_spec.environment, **self.environment})
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

        # provisioned throughput and the Bedrock jobs the state machine starts, answered in this process
        install(self.emulator_dir, s3=self.client("s3"), aws=self.client)
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

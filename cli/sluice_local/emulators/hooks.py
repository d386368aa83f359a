"""How this process's botocore clients reach the emulated services: the Emulator, which answers a
call from the service module that emulates it (checking the request and the answer against the
service's model, and logging it), and the patch that attaches it, and in-process Lambda Invoke, to
every client created from then on."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody

from sluice_local.emulators import bedrock, kendra, knowledge_base, vectors
from sluice_local.emulators.common import (
    ASSUMPTIONS,
    ASSUMPTIONS_SCHEMA,
    CALLS_FILE,
    DB_FILE,
    CallLog,
    Database,
    Operation,
    ServiceError,
    check_answer,
    check_request_limits,
)

# the others: only their listed operations
WHOLLY_EMULATED = ("bedrock-agent", "bedrock-agent-runtime", "kendra", "s3vectors")

LambdaResolver = Callable[[str], Callable[[dict[str, Any]], dict[str, Any]] | None]


class Emulator:
    """The emulated services over one directory: their database and their call log."""

    def __init__(self, directory: Path, s3: Any = None, aws: Callable[[str], Any] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._s3 = s3
        self._aws_clients = aws
        db = self._db = Database(self.dir / DB_FILE)
        self._log = CallLog(self.dir / CALLS_FILE)
        self.knowledge_base = knowledge_base.KnowledgeBase(db, self.s3)
        self.kendra = kendra.Kendra(db, self.s3)
        runtime = bedrock.Runtime(db, self._aws)
        self._operations: dict[tuple[str, str], Operation] = {
            **self.knowledge_base.operations(),
            **self.kendra.operations(),
            **bedrock.ProvisionedThroughput(db).operations(),
            **bedrock.CustomModelDeployments(db).operations(),
            **bedrock.ModelCatalogue(db).operations(),
            **bedrock.Quotas().operations(),
            **runtime.operations(),
            **bedrock.EvaluationJobs(db, self._aws).operations(),
            **bedrock.InvocationJobs(db, self._aws, runtime).operations(),
            **vectors.VectorStore(db).operations(),
        }
        db.connection().executescript(
            knowledge_base.SCHEMA + kendra.SCHEMA + bedrock.SCHEMA + vectors.SCHEMA + ASSUMPTIONS_SCHEMA
        )

    def s3(self) -> Any:
        """The S3 client the services read documents with, as AWS's own services would."""
        if self._s3 is None:
            import boto3

            self._s3 = boto3.session.Session().client("s3")  # the local stack's endpoint, from the environment
        return self._s3

    def _aws(self, service: str) -> Any:
        """A client of the local stack's AWS (moto), for what the emulated services read there."""
        if service == "s3":
            return self.s3()
        if self._aws_clients is not None:
            return self._aws_clients(service)
        import boto3

        return boto3.session.Session().client(service)

    def create_data_source(self, kb: str, ds: str, bucket: str, prefix: str) -> None:
        self.knowledge_base.create_data_source(kb, ds, bucket, prefix)

    def adopt_knowledge_base(self, kb: str) -> None:
        self.knowledge_base.adopt(kb)

    def client(self, service: str) -> Any:
        """A client of an emulated service answered by this emulator, whichever one is installed
        (it is made without the installed one's hooks)."""
        patched = botocore.session.Session.create_client
        create = getattr(patched, "_sluice_original", patched)
        client = create(
            botocore.session.get_session(),
            service,
            region_name=knowledge_base.REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.attach(client)
        return client

    def create_index(self, index_id: str, fields: dict[str, str]) -> None:
        self.kendra.create_index(index_id, fields)

    def break_assumption(self, name: str, *, broken: bool = True) -> None:
        """Make the emulated services behave as Sluice assumes AWS does not (see ASSUMPTIONS), in
        every process sharing this directory; ``broken=False`` mends it."""
        if name not in ASSUMPTIONS:
            raise ValueError(f"{name!r}: the assumptions are {', '.join(ASSUMPTIONS)}")
        sql = "INSERT OR IGNORE INTO broken VALUES (?)" if broken else "DELETE FROM broken WHERE name = ?"
        self._db.execute(sql, (name,))

    def attach(self, client: Any) -> None:
        """Answer this client's calls: all of them for a wholly emulated service, only the emulated
        operations of a partly emulated one (moto serves the rest)."""
        service = client.meta.service_model.service_name
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parameter-build.{service_id}", _remember_params)
        if service in WHOLLY_EMULATED:
            client.meta.events.register(f"before-call.{service_id}", self._answerer(service))
            return
        for emulated_service, operation in self._operations:
            if emulated_service == service:
                client.meta.events.register(f"before-call.{service_id}.{operation}", self._answerer(service))

    def emulates(self, service: str) -> bool:
        return service in WHOLLY_EMULATED or any(s == service for s, _ in self._operations)

    def _answerer(self, service: str) -> Callable[..., tuple[AWSResponse, dict[str, Any]]]:
        def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            return self.call(service, model, context.get("sluice_params", {}))

        return answer

    def call(self, service: str, model: Any, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        """The service's answer to one call, as botocore would have parsed it from AWS's."""
        operation = model.name
        handler = self._operations.get((service, operation))
        status, error = 200, None
        try:
            if handler is None:
                raise ServiceError("UnsupportedOperation", f"the local {service} does not emulate {operation}")
            if model.input_shape is not None:
                check_request_limits(model.input_shape, params, operation)
            body = handler(params)
            check_answer(service, model, body)
        except ServiceError as exc:
            status, error = exc.status, exc.code
            body = {"Error": {"Code": exc.code, "Message": str(exc)}}
        self._log.append(service, operation, params, status, error)
        body["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4()), "HTTPHeaders": {}}
        return AWSResponse(f"local://{service}/{operation}", status, {}, None), body


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["sluice_params"] = dict(params)


_installed: Emulator | None = None
_lambdas: LambdaResolver | None = None
_install_lock = threading.Lock()


def installed() -> Emulator | None:
    """The emulator this process's clients are answered by, if any."""
    return _installed


def _patch_clients() -> None:
    """Every client this process creates from now on gets the hooks (idempotent)."""
    if getattr(botocore.session.Session.create_client, "_sluice_original", None) is not None:
        return
    original = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        if _installed is not None and _installed.emulates(service_name):
            _installed.attach(client)
        if _lambdas is not None and service_name == "lambda":
            client.meta.events.register("before-parameter-build.lambda.Invoke", _remember_params)
            client.meta.events.register("before-call.lambda.Invoke", _invoke_in_process)
        return client

    create_client._sluice_original = original  # type: ignore[attr-defined]
    botocore.session.Session.create_client = create_client


def install(directory: Path, s3: Any = None, aws: Callable[[str], Any] | None = None) -> Emulator:
    """From now on, every client this process creates for an emulated service is answered by the
    emulator over ``directory``. ``s3`` and ``aws`` (a client for a service name) reach the local
    stack's AWS, where the emulated services read what AWS's would (custom models, S3 objects); by
    default, clients are made from the environment (a function worker's points at the local stack).
    Idempotent."""
    global _installed
    with _install_lock:
        if _installed is None or _installed.dir != directory:
            _installed = Emulator(directory, s3, aws)
        _patch_clients()
        return _installed


def route_lambda(resolve: LambdaResolver) -> None:
    """Lambda Invoke calls made in this process (by moto's Step Functions interpreter, for one) go to
    ``resolve(function name or ARN)``, a callable taking the event and returning the handler's
    result, or raising what the handler raised; None leaves the call to moto."""
    global _lambdas
    with _install_lock:
        _lambdas = resolve
        _patch_clients()


def uninstall() -> None:
    global _installed, _lambdas
    with _install_lock:
        original = getattr(botocore.session.Session.create_client, "_sluice_original", None)
        if original is not None:
            botocore.session.Session.create_client = original
        _installed = None
        _lambdas = None


def _invoke_in_process(
    params: dict[str, Any], context: dict[str, Any], **_: Any
) -> tuple[AWSResponse, dict[str, Any]] | None:
    api = context.get("sluice_params") or {}
    name = str(api.get("FunctionName", ""))
    handler = _lambdas(name) if _lambdas is not None else None
    if handler is None:
        return None
    raw = api.get("Payload") or b"{}"
    event = json.loads(raw.read() if hasattr(raw, "read") else raw)
    body: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    try:
        payload: Any = handler(event)
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports a function error
        error_type = getattr(exc, "error_type", None) or type(exc).__name__  # a worker's, or the handler's own
        payload = {"errorType": error_type, "errorMessage": str(exc), "stackTrace": []}
        body["FunctionError"] = "Unhandled"
    data = json.dumps(payload, default=str).encode()
    body["Payload"] = StreamingBody(io.BytesIO(data), len(data))
    body["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4()), "HTTPHeaders": {}}
    return AWSResponse(f"local://lambda/{name}", 200, {}, None), body

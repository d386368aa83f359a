"""Fault injection for the local stack: throttling, 5xx answers, timeouts and per-entry failures at
every AWS call the function workers make (S3, DynamoDB, EventBridge, SQS, and the emulated Bedrock
Knowledge Base and Kendra), to prove that the pipeline converges through them.

Off by default and free then: the local stack passes ``SLUICE_FAULTS`` (the path of a plan file, see
``FaultPlan``) to its workers only when asked to, and a worker without it never imports this module.
With it, every boto3 client the handlers create gets two hooks:

- services moto serves over HTTP: a ``before-send`` handler that, instead of sending the attempt,
  answers it with the service's own error (status, headers and body as AWS sends them: S3's
  ``SlowDown`` XML, DynamoDB's ``ProvisionedThroughputExceededException`` JSON, …; built in
  ``sluice_local.fault_answers``) or raises
  botocore's ``ConnectTimeoutError``; a "read timeout" sends the request for real (it takes effect)
  and then raises ``ReadTimeoutError``, as a lost response does. botocore parses the answer and
  decides with its own retry handler (standard mode, the retry quota, the backoff) whether to try
  again, exactly as it would against AWS.
- emulated services (``sluice_local.emulators`` answers them in ``before-call``, so botocore's
  HTTP layer and its retries never run for them): a ``before-call`` handler registered ahead of the
  emulator that draws a fault for each attempt and asks the client's own ``needs-retry`` handler
  whether and after how long to try again, so the same retry policy applies.

Two rates: ``rate`` fails single attempts (botocore's retries mostly absorb these), ``outage`` makes a
whole call fail at every attempt (the error reaches the application: SQS redelivery, partial batch
failures, the outbox, the sinks' retries). Per-entry failures (``entries``: PutEvents'
FailedEntryCount, DeleteObjects' Errors, Kendra's FailedDocuments with InternalError) are 200
answers, which botocore never retries: they always reach the application.

Each worker counts calls, attempts, faults, botocore retries and faults that surfaced, per service,
operation and kind, in ``faults-<pid>.json`` beside the plan (rewritten at most once a second and
at exit); ``read_counts`` adds them up. The plan file is re-read when it changes, so a test stops
injecting by writing a plan with both rates at zero.

Dev-only: never in the Lambda layer.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from sluice_local.fault_answers import (
    ERRORS,
    dynamodb_table,
    emulated_entries_answer,
    emulated_error_answer,
    http_entries_answer,
    http_error_answer,
)

ENV = "SLUICE_FAULTS"  # the plan file's path, in a worker's environment
SERVICES = ("s3", "dynamodb", "events", "sqs", "bedrock-agent", "kendra")
EMULATED = frozenset({"bedrock-agent", "kendra"})  # answered in-process by sluice_local.emulators
KINDS = ("throttle", "5xx", "connect-timeout", "read-timeout", "entries")
DEFAULT_WEIGHTS = {"throttle": 0.3, "5xx": 0.3, "connect-timeout": 0.1, "read-timeout": 0.15, "entries": 0.15}
# Operations whose 200 answer can say that some entries failed (and which the pipeline calls).
ENTRY_OPERATIONS = frozenset(
    {
        ("events", "PutEvents"),
        ("s3", "DeleteObjects"),
        ("kendra", "BatchPutDocument"),
        ("kendra", "BatchDeleteDocument"),
    }
)
RELOAD_SECONDS = 0.2  # how often the plan file's modification time is looked at
FLUSH_SECONDS = 1.0  # how often the counts are written out
COUNTS_GLOB = "faults-*.json"


@dataclass(frozen=True)
class FaultPlan:
    """What to inject. ``rate``: the chance that one attempt fails; ``outage``: the chance that a
    call fails at every attempt (drawn at its first); ``kinds``: relative weights of the kinds;
    ``services``: where; ``operations``: only these operations (API names; empty: all);
    ``backoff_scale``: multiplies botocore's retry backoff (1: as in AWS)."""

    rate: float = 0.0
    outage: float = 0.0
    kinds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    services: tuple[str, ...] = SERVICES
    operations: tuple[str, ...] = ()
    backoff_scale: float = 1.0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.rate > 0 or self.outage > 0

    def to_json(self) -> str:
        fields = {"kinds": dict(self.kinds), "services": list(self.services), "operations": list(self.operations)}
        return json.dumps({**asdict(self), **fields})

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        data = json.loads(text)
        unknown = set(data.get("kinds", {})) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; the kinds are {KINDS}")
        return cls(
            rate=float(data.get("rate", 0.0)),
            outage=float(data.get("outage", 0.0)),
            kinds={str(k): float(v) for k, v in (data.get("kinds") or DEFAULT_WEIGHTS).items()},
            services=tuple(data.get("services") or SERVICES),
            operations=tuple(data.get("operations") or ()),
            backoff_scale=float(data.get("backoff_scale", 1.0)),
            seed=data.get("seed"),
        )


def write_plan(path: Path, plan: FaultPlan) -> None:
    """Write (or change) the plan the workers follow; they notice within RELOAD_SECONDS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    temporary.write_text(plan.to_json())
    os.replace(temporary, path)


def read_counts(directory: Path) -> Counter[tuple[str, str, str, str]]:
    """Every worker's counts, added up: (event, service, operation, kind) → n, where event is one of
    call, attempt, fault, retry, surfaced (kind is "" for calls, attempts and retries)."""
    total: Counter[tuple[str, str, str, str]] = Counter()
    for path in sorted(directory.glob(COUNTS_GLOB)):
        for row in json.loads(path.read_text()):
            event, service, operation, kind, n = row
            total[(str(event), str(service), str(operation), str(kind))] += int(n)
    return total


class Injector:
    def __init__(self, plan_path: Path) -> None:
        self.plan_path = plan_path
        self._plan = FaultPlan()
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._random = random.Random()
        self._seeded: int | None = None
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._flushed = 0.0
        self.counts_path = plan_path.parent / f"faults-{os.getpid()}.json"
        self.reload(force=True)

    # -- the plan, and what happened -----------------------------------------------------------------

    def reload(self, *, force: bool = False) -> FaultPlan:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_SECONDS:
            return self._plan
        self._checked = now
        try:
            mtime = self.plan_path.stat().st_mtime
        except FileNotFoundError:
            self._plan, self._mtime = FaultPlan(), None
            return self._plan
        if mtime != self._mtime:
            self._plan, self._mtime = FaultPlan.from_json(self.plan_path.read_text()), mtime
            if self._plan.seed is not None and self._plan.seed != self._seeded:
                self._random.seed(self._plan.seed * 1_000_003 + os.getpid())
                self._seeded = self._plan.seed
        return self._plan

    def plan(self) -> FaultPlan:
        with self._lock:
            return self.reload()

    def count(self, event: str, service: str, operation: str, kind: str = "") -> None:
        with self._lock:
            self._counts[(event, service, operation, kind)] += 1
            if time.monotonic() - self._flushed >= FLUSH_SECONDS:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        self._flushed = time.monotonic()
        rows = [[*key, n] for key, n in sorted(self._counts.items())]
        temporary = self.counts_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(rows))
        os.replace(temporary, self.counts_path)

    def draw(self, service: str, operation: str, context: dict[str, Any], attempt: int) -> str | None:
        """The fault for this attempt of this call, or None. An outage is drawn at the first attempt
        and repeats at every later one."""
        plan = self.plan()
        chosen = not plan.operations or operation.split(" ", 1)[0] in plan.operations
        if service not in plan.services or not plan.active or not chosen:
            context["sluice_outage"] = None
            return None
        with self._lock:
            if attempt == 1:
                down = self._random.random() < plan.outage
                context["sluice_outage"] = self._kind(plan, service, operation) if down else None
            if context.get("sluice_outage"):
                return str(context["sluice_outage"])
            return self._kind(plan, service, operation) if self._random.random() < plan.rate else None

    def _kind(self, plan: FaultPlan, service: str, operation: str) -> str | None:
        weights = {
            k: w
            for k, w in plan.kinds.items()
            if w > 0 and (k != "entries" or (service, operation) in ENTRY_OPERATIONS)
        }
        if not weights:
            return None
        return self._random.choices(list(weights), weights=list(weights.values()))[0]

    def error(self, service: str, kind: str) -> tuple[int, str, str]:
        with self._lock:
            return self._random.choice(ERRORS[service][kind])

    # -- clients -----------------------------------------------------------------------------------

    def attach(self, client: Any) -> None:
        model = client.meta.service_model
        service = str(model.service_name)
        if service not in SERVICES:
            return
        service_id = model.service_id.hyphenize()
        events = client.meta.events
        if service in EMULATED:
            events.register_first(f"before-call.{service_id}", self._emulated(client, service, service_id))
            return
        events.register_first(f"before-send.{service_id}", self._http(client._endpoint.http_session, service))
        events.register(f"after-call.{service_id}", self._after_call(service))
        events.register(f"after-call-error.{service_id}", self._after_call_error(service))

    def _http(self, http_session: Any, service: str) -> Callable[..., AWSResponse | None]:
        def before_send(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
            operation = event_name.rsplit(".", 1)[-1]
            context: dict[str, Any] = request.context
            if service == "dynamodb":  # which table: the registry's and the idempotency layer's differ
                context.setdefault("sluice_operation", f"{operation} {dynamodb_table(request)}".rstrip())
                operation = context["sluice_operation"]
            attempt = int(context.get("retries", {}).get("attempt", 1))
            self._attempted(service, operation, attempt)
            kind = self.draw(service, operation, context, attempt)
            context["sluice_fault"] = kind
            if kind is None:
                return None
            self.count("fault", service, operation, kind)
            if kind == "connect-timeout":
                raise ConnectTimeoutError(endpoint_url=request.url)
            if kind == "read-timeout":  # the request reaches the service; its answer is lost
                http_session.send(request).content  # noqa: B018 - read (and so release) the answer
                raise ReadTimeoutError(endpoint_url=request.url)
            if kind == "entries":
                return http_entries_answer(service, request)
            return http_error_answer(service, *self.error(service, kind), request)

        return before_send

    def _attempted(self, service: str, operation: str, attempt: int) -> None:
        if attempt == 1:
            self.count("call", service, operation)
        else:
            self.count("retry", service, operation)
        self.count("attempt", service, operation)

    def _after_call(self, service: str) -> Callable[..., None]:
        def after_call(http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
            kind = context.get("sluice_fault")
            if kind and (http_response.status_code >= 300 or kind == "entries"):
                self.count("surfaced", service, context.get("sluice_operation", model.name), str(kind))

        return after_call

    def _after_call_error(self, service: str) -> Callable[..., None]:
        def after_call_error(context: dict[str, Any], event_name: str, **_: Any) -> None:
            kind = context.get("sluice_fault")
            if kind:
                operation = context.get("sluice_operation", event_name.rsplit(".", 1)[-1])
                self.count("surfaced", service, operation, str(kind))

        return after_call_error

    def _emulated(self, client: Any, service: str, service_id: str) -> Callable[..., Any]:
        """Ahead of the emulator's answer: botocore's HTTP layer (and so its retry loop) never runs
        for an emulated call, so the attempts are made here and the client's own needs-retry
        handler decides whether to try again and after how long."""

        def before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
            attempt = 1
            while True:
                context.setdefault("retries", {})["attempt"] = attempt
                self._attempted(service, model.name, attempt)
                kind = self.draw(service, model.name, context, attempt)
                if kind is None:
                    return None  # the emulator answers
                self.count("fault", service, model.name, kind)
                answer, error = self._emulated_fault(service, kind, model, context)
                _, delay = client.meta.events.emit_until_response(
                    f"needs-retry.{service_id}.{model.name}",
                    response=answer,
                    endpoint=client._endpoint,
                    operation=model,
                    attempts=attempt,
                    caught_exception=error,
                    request_dict=params,
                )
                if delay is None or delay is False:
                    self.count("surfaced", service, model.name, kind)
                    if error is not None:
                        raise error
                    return answer
                time.sleep(float(delay))
                attempt += 1

        return before_call

    def _emulated_fault(
        self, service: str, kind: str, model: Any, context: dict[str, Any]
    ) -> tuple[tuple[AWSResponse, dict[str, Any]] | None, Exception | None]:
        url = f"local://{service}/{model.name}"
        api: dict[str, Any] = context.get("sluice_params") or {}
        if kind == "connect-timeout":
            return None, ConnectTimeoutError(endpoint_url=url)
        if kind == "read-timeout":  # the emulated service acts on it; the answer is lost
            from sluice_local import emulators

            emulator = emulators.installed()
            if emulator is not None:
                emulator.call(service, model, api)
            return None, ReadTimeoutError(endpoint_url=url)
        if kind == "entries":
            return emulated_entries_answer(url, api), None
        return emulated_error_answer(url, *self.error(service, kind)), None


_injector: Injector | None = None


def install(plan_path: Path) -> Injector:
    """From now on, every client this process creates for one of SERVICES gets faults as the plan
    says (a worker calls this at start when SLUICE_FAULTS is set). Idempotent."""
    global _injector
    if _injector is not None:
        return _injector
    from botocore.retries import standard

    from sluice_local import emulators

    injector = _injector = Injector(plan_path)
    emulator = emulators.installed()
    if emulator is not None:
        # The emulated services read chunks from S3 as AWS's own service would: not the pipeline's
        # calls, so their client is made before the hook and gets no faults.
        emulator.s3()
    original = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        injector.attach(client)
        return client

    # emulators.uninstall() restores the true original through this attribute.
    create_client._sluice_original = getattr(original, "_sluice_original", original)  # type: ignore[attr-defined]
    botocore.session.Session.create_client = create_client

    delay_amount = standard.ExponentialBackoff.delay_amount

    def scaled(self: Any, context: Any) -> float:
        return float(delay_amount(self, context)) * injector.plan().backoff_scale

    standard.ExponentialBackoff.delay_amount = scaled
    atexit.register(injector.flush)
    return injector

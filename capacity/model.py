"""The capacity and cost model: what one document costs each stage (measured by `make bench`'s costs
stage), what each stage can take (the documented quotas and the template's settings), and a fluid
simulation of the queues between them over a day of arrivals or a one-off backfill.

The pipeline is three steps in series, each a server with a rate limit: the ingest function (behind
the ingest queue), then, fed by the event bus, the knowledge-base sink and the Kendra sink (each behind
its queue). A step's capacity in documents a second is the smallest of its limits: its function's
concurrency over the time a document takes it (CPU measured, request latencies assumed, the sink's own
pacing), and each quota the step's requests draw on, over the requests a document makes (DynamoDB's per
partition writes for the hottest index key, S3's per prefix PUTs, EventBridge's PutEvents, the
knowledge base's APIs, S3 Vectors' writes, the embedding model's requests when a quota is given). A
quota AWS does not publish puts no bound; the report says so. The step with the smallest capacity binds
first; the simulation (a step of STEP seconds) gives the queues, the lags and when the last document is
through.

Costs are the measured requests, units and durations priced with capacity/facts.json: per 1,000
documents ingested, per month for 1,000 documents kept, per 1,000 queries, and the fixed costs (an
index billed by the hour, idle queue polling). Pure Python, deterministic, a few seconds.

The backfill's own orchestration follows the code rather than restating it: the states of
statemachine/backfill.asl.json (the Standard parent's transitions, each Express child's invocation and
Wait), the plan ``sluice.backfill.pace`` makes for a rate (children at once, batch size) and each
child's wait, ``sluice.backfill.pace_seconds``. Only rechecks are paced: an object Sluice holds unchanged
costs a registry read and no wait.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sluice.backfill import DEFAULT_RATE, PACE_BUDGET_SECONDS, BackfillSettings, pace, pace_seconds
from sluice.backfill import MAX_CONCURRENCY as BACKFILL_MAX_CONCURRENCY

DAY = 86_400.0
STEP = 60.0  # the simulation's time step, seconds
MARGIN = 0.8  # the share of a limit a planned load may take
GB = 1024**3
BUSINESS_HOURS = (9, 18)  # the business-hours profile: this window (local hours) carries BUSINESS_SHARE
BUSINESS_SHARE = 0.8
BACKFILL_ASL = Path(__file__).resolve().parents[1] / "statemachine" / "backfill.asl.json"
BACKFILL_MEMORY_MB = 512  # template.yaml's BackfillFunction MemorySize (tests/bench/test_capacity.py checks it)
HEAD_THREADS = BackfillSettings(raw_bucket="", ingest_queue_url="").threads  # a batch's HeadObjects at once
EXPRESS_BILLING_MB = 64  # an Express execution's memory is billed in 64 MB chunks; the model assumes one
EXPRESS_BILLING_STEP = 0.1  # and its duration rounded up to 100 ms
LIST_PAGE = 1000  # keys a ListObjectsV2 page holds
SENDS_PER_BATCH = 10  # SendMessageBatch's most entries
STEPS = ("ingest", "kb", "kendra")
FUNCTION_NAMES = {"ingest": "IngestDocumentFunction", "kb": "SyncKnowledgeBaseFunction", "kendra": "SyncKendraFunction"}
# the latency fact each service's requests take (the others: other_request_seconds)
LATENCY = {"s3": "s3_request_seconds", "dynamodb": "dynamodb_request_seconds"}
TIMING_FACTS = ("lambda_cpu_speed", "s3_request_seconds", "dynamodb_request_seconds", "other_request_seconds")


# -- facts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    id: str
    kind: str  # price | quota | assumption
    value: Any
    unit: str
    what: str
    source: str
    checked: str
    published: bool = True
    note: str = ""


def load_facts(path: Path) -> dict[str, Fact]:
    entries = json.loads(path.read_text())["facts"]
    return {key: Fact(id=key, **entry) for key, entry in entries.items()}


def numbers(facts: Mapping[str, Fact]) -> dict[str, float]:
    """The facts that are numbers, by id."""
    return {k: float(f.value) for k, f in facts.items() if isinstance(f.value, int | float)}


# -- what a document costs, as measured ----------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One function's (or AWS service's) work for one document."""

    requests: dict[str, float] = field(default_factory=dict)  # "service:Operation" → requests
    billed: dict[str, float] = field(default_factory=dict)  # "s3.put", "dynamodb.wru", ... → units
    gsi_wru: dict[str, float] = field(default_factory=dict)  # "index#key value" → write units
    invocations: float = 0.0
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int
    max_concurrency: int
    requests_per_second: float | None  # the sink's own pacing, per instance (per API for the knowledge base)


@dataclass(frozen=True)
class Measured:
    """bench/results.json's costs stage, per document."""

    date: str
    documents: int
    chunks: float
    tokens: float
    vector_bytes: float  # what S3 Vectors stores for a document's chunks: embeddings, text, metadata
    stored_bytes: float  # the processed files in S3
    loads: dict[str, Load]  # ingest, kb-direct, kb-job, kendra, kb-service, kb-job-service, esm:<label>
    delivered: dict[str, float]  # messages AWS services put on each queue (notifications, events)
    functions: dict[str, FunctionSettings]  # ingest, kb, kendra
    embedding_model: str


def measured(costs: Mapping[str, Any]) -> Measured:
    n = costs["documents"]
    loads = {}
    for label, usage in costs["usage"].items():
        cpu = 0.0
        if "warm_cpu_seconds_per_record" in usage:
            cpu = usage["warm_cpu_seconds_per_record"] * usage["records"] / n
        cpu += usage.get("sandbox_cpu_seconds", 0.0) / n
        loads[label] = Load(
            requests={k: v / n for k, v in usage["requests"].items()},
            billed={k: v / n for k, v in usage["billed"].items()},
            gsi_wru={k: v / n for k, v in usage["gsi_wru"].items()},
            invocations=usage.get("invocations", 0) / n,
            cpu_seconds=cpu,
        )
    functions = {}
    for step, name in FUNCTION_NAMES.items():
        s = costs["settings"][name]
        functions[step] = FunctionSettings(int(s["memory_mb"]), int(s["max_concurrency"]), s["requests_per_second"])
    per_vector = 4 * int(costs["embedding_dimensions"])  # float32
    vector_bytes = costs["chunks"] * per_vector + costs["chunk_text_bytes"] + costs["sidecar_bytes"]
    return Measured(
        date=costs["date"],
        documents=n,
        chunks=costs["chunks"] / n,
        tokens=costs["tokens"] / n,
        vector_bytes=vector_bytes / n,
        stored_bytes=costs["usage"]["ingest"]["billed"].get("s3.put_bytes", 0) / n,
        loads=loads,
        delivered={k: v / n for k, v in costs["delivered"].items()},
        functions=functions,
        embedding_model=costs["embedding_model"],
    )


# -- settings an operator chooses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    kb_mode: str = "direct"  # KnowledgeBaseSyncMode: direct | ingestion-job
    ingest_concurrency: int | None = None  # IngestMaxConcurrency (None: the template's)
    kb_concurrency: int | None = None  # the knowledge-base queue's MaximumConcurrency (a template edit)
    kb_requests_per_second: float | None = None  # SINK_REQUESTS_PER_SECOND of the knowledge-base sink
    kendra: bool = False  # an existing Kendra index (KendraIndexId; a new account cannot have one)
    embedding_requests_per_minute: float | None = None  # the account's Titan V2 on-demand quota, when known

    def label(self) -> str:
        parts = [f"knowledge base {self.kb_mode}"]
        if self.ingest_concurrency is not None:
            parts.append(f"IngestMaxConcurrency {self.ingest_concurrency}")
        if self.kb_concurrency is not None:
            parts.append(f"knowledge-base sink MaximumConcurrency {self.kb_concurrency}")
        if self.kb_requests_per_second is not None:
            parts.append(f"sink pacing {self.kb_requests_per_second:g}/s")
        if self.embedding_requests_per_minute is not None:
            parts.append(f"embedding quota {self.embedding_requests_per_minute:,.0f}/min")
        if self.kendra:
            parts.append("Kendra")
        return ", ".join(parts)


# -- durations and limits --------------------------------------------------------------------------------------


def kb_label(settings: Settings) -> str:
    return "kb-direct" if settings.kb_mode == "direct" else "kb-job"


def step_load(m: Measured, step: str, settings: Settings) -> Load:
    return m.loads[{"ingest": "ingest", "kb": kb_label(settings), "kendra": "kendra"}[step]]


def pacing(m: Measured, step: str, settings: Settings) -> float | None:
    if step == "kb" and settings.kb_requests_per_second is not None:
        return settings.kb_requests_per_second
    return m.functions[step].requests_per_second


SERVICES = {"kb": "bedrock-agent:", "kendra": "kendra:"}
# The knowledge-base sink's status checks of the documents a batch does not sync run beside its syncs
# (sluice.sinks.runner), in a thread of their own: GetKnowledgeBaseDocuments is paced on its own, and its
# time overlaps the Ingest and Delete calls'.
BESIDE = "bedrock-agent:GetKnowledgeBaseDocuments"


def _sides(load: Load, step: str) -> list[dict[str, float]]:
    """A document's requests, split into what a sink instance does one after the other: the checks
    beside, and everything else (the registry's and sink states' requests counted with the syncs)."""
    if step != "kb":
        return [load.requests]
    return [
        {op: n for op, n in load.requests.items() if op != BESIDE},
        {op: n for op, n in load.requests.items() if op == BESIDE},
    ]


def duration(m: Measured, step: str, settings: Settings, facts: Mapping[str, Fact]) -> float:
    """Seconds of function time a document takes: its CPU, then the longer of its sides (see ``_sides``),
    each a latency for each request and the time the sink waits on its own pacing. A side calls one API
    after another, each paced on its own, so its waits add up."""
    load, p = step_load(m, step, settings), numbers(facts)
    cpu = load.cpu_seconds * p["lambda_cpu_speed"]
    rate, service = pacing(m, step, settings), SERVICES.get(step)

    def seconds(requests: Mapping[str, float]) -> float:
        waiting = sum(n * p[LATENCY.get(op.split(":")[0], "other_request_seconds")] for op, n in requests.items())
        paced = sum(n for op, n in requests.items() if service and op.startswith(service))
        return waiting + (paced / rate if rate else 0.0)

    return cpu + max(seconds(side) for side in _sides(load, step))


def concurrency(m: Measured, step: str, settings: Settings, facts: Mapping[str, Fact]) -> int:
    """The step's instances: the event source's MaximumConcurrency; the ingest function's as set, within
    what the account's Lambda concurrency leaves beside the sinks and a backfill's children."""
    if step == "kb":
        return settings.kb_concurrency or m.functions[step].max_concurrency
    if step == "kendra":
        return m.functions[step].max_concurrency
    wanted = settings.ingest_concurrency or m.functions[step].max_concurrency
    others = concurrency(m, "kb", settings, facts) + m.functions["kendra"].max_concurrency + BACKFILL_MAX_CONCURRENCY
    return min(wanted, int(numbers(facts)["lambda_concurrency"]) - others)


@dataclass(frozen=True)
class Limit:
    step: str
    name: str
    docs_per_second: float | None  # None: no published bound
    why: str
    facts: tuple[str, ...] = ()


def _per_doc(quota: float, per_document: float) -> float | None:
    return quota / per_document if per_document > 0 else None


def limits(m: Measured, settings: Settings, facts: Mapping[str, Fact]) -> list[Limit]:
    """Every limit of every step, in documents a second."""
    q = numbers(facts)
    out: list[Limit] = []

    def quota(step: str, name: str, key: str, per_document: float, why: str) -> None:
        out.append(Limit(step, name, _per_doc(q[key], per_document), why, (key,)))

    for step in STEPS:
        if step == "kendra" and not settings.kendra:
            continue
        load = step_load(m, step, settings)
        n, seconds = concurrency(m, step, settings, facts), duration(m, step, settings, facts)
        why = f"{n} at once, {seconds:.3f} s of function time a document"
        out.append(Limit(step, f"{FUNCTION_NAMES[step]} instances", n / seconds, why, TIMING_FACTS))
        key, wru = max(load.gsi_wru.items(), key=lambda kv: kv[1], default=("", 0.0))
        if wru:
            why = f"{wru:.2f} WRU a document on one partition key value"
            quota(step, f"DynamoDB index key {key}", "dynamodb_partition_write_units", wru, why)
        wru = load.billed.get("dynamodb.wru", 0.0)
        if wru:
            quota(step, "DynamoDB table", "dynamodb_table_request_units", wru, f"{wru:.2f} WRU a document")
        if step == "ingest":
            puts, calls = load.billed.get("s3.put", 0.0), load.requests.get("events:PutEvents", 0.0)
            sinks = [kb_label(settings), *(["kendra"] if settings.kendra else [])]
            targets = sum(m.delivered.get(k, 0.0) for k in sinks)
            quota(step, "S3 PUTs on one prefix", "s3_put_per_prefix", puts, f"{puts:.2f} PUT/LIST requests a document")
            quota(
                step, "EventBridge PutEvents", "eventbridge_put_events_tps", calls, f"{calls:.2f} PutEvents a document"
            )
            why = f"{targets:.2f} deliveries to the sinks' queues a document"
            quota(step, "EventBridge invocations", "eventbridge_invocations_tps", targets, why)
        if step == "kb" and settings.kb_mode == "direct":
            for op in ("IngestKnowledgeBaseDocuments", "GetKnowledgeBaseDocuments", "DeleteKnowledgeBaseDocuments"):
                calls = load.requests.get(f"bedrock-agent:{op}", 0.0)
                if calls:
                    quota(step, f"{op} quota", "kb_ingest_documents_rps", calls, f"{calls:.3f} calls a document")
        if step == "kb" and settings.kb_mode != "direct":
            out.append(Limit(step, "ingestion job throughput", None, "not published", ("kb_ingestion_job_rate",)))
        if step == "kb":
            why = f"{m.chunks:.2f} vectors a document"
            quota(step, "S3 Vectors writes", "s3vectors_vectors_per_second", m.chunks, why)
            rpm = settings.embedding_requests_per_minute
            bound = _per_doc(rpm / 60, m.chunks) if rpm else None
            why = f"{m.chunks:.2f} embeddings a document" if rpm else "the account's quota: not published"
            out.append(Limit(step, "embedding model requests", bound, why, ("titan_embed_v2_requests_per_minute",)))
        if step == "kendra":
            why = "not published (the sink's pacing bounds it)"
            out.append(Limit(step, "Kendra BatchPutDocument", None, why, ("kendra_batch_put_rps",)))
    return out


def capacities(m: Measured, settings: Settings, facts: Mapping[str, Fact]) -> dict[str, Limit]:
    """Each step's binding limit (the smallest with a published bound)."""
    out: dict[str, Limit] = {}
    for limit in limits(m, settings, facts):
        if limit.docs_per_second is None:
            continue
        current = out.get(limit.step)
        if current is None or limit.docs_per_second < (current.docs_per_second or math.inf):
            out[limit.step] = limit
    return out


# -- the simulation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    capacity: float
    limit: str
    served: float  # documents
    peak_utilization: float
    max_backlog: float  # documents waiting at once
    max_wait_seconds: float  # the longest a document waited in this step's queue
    done_seconds: float  # when its last document was through


@dataclass(frozen=True)
class Simulation:
    steps: dict[str, StepRun]
    binding: str  # the step with the highest peak utilization
    last_arrival_seconds: float


def simulate(
    arrivals: Callable[[float], float],
    horizon: float,
    m: Measured,
    settings: Settings,
    facts: Mapping[str, Fact],
    total: float,
) -> Simulation:
    """A fluid simulation: every STEP seconds, ``arrivals(t)`` documents a second join the ingest
    queue; each step serves its queue at up to its capacity; the ingest step's output joins both sinks'
    queues. Runs until ``horizon`` and then until every queue is empty. Waits are counted FIFO: the
    backlog over the capacity."""
    caps = capacities(m, settings, facts)
    rates = {step: limit.docs_per_second or math.inf for step, limit in caps.items()}
    queues = dict.fromkeys(caps, 0.0)
    served = dict.fromkeys(caps, 0.0)
    peak_in = dict.fromkeys(caps, 0.0)
    max_backlog = dict.fromkeys(caps, 0.0)
    max_wait = dict.fromkeys(caps, 0.0)
    done = dict.fromkeys(caps, 0.0)
    t, arrived, last_arrival = 0.0, 0.0, 0.0

    def serve(step: str, inflow: float) -> float:
        out = min(rates[step], queues[step] / STEP + inflow)
        queues[step] += (inflow - out) * STEP
        served[step] += out * STEP
        peak_in[step] = max(peak_in[step], inflow)
        max_backlog[step] = max(max_backlog[step], queues[step])
        max_wait[step] = max(max_wait[step], queues[step] / rates[step])
        if out > 1e-9:
            done[step] = t + STEP
        return out

    while t < horizon or any(q > 1e-6 for q in queues.values()):
        rate = min(arrivals(t) if t < horizon else 0.0, (total - arrived) / STEP)
        if rate > 0:
            last_arrival = t + STEP
        arrived += rate * STEP
        ingested = serve("ingest", rate)
        for sink in caps.keys() - {"ingest"}:
            serve(sink, ingested)
        t += STEP
        if t > 400 * DAY:
            raise RuntimeError("the queues never empty: a step has no capacity")
    steps = {
        s: StepRun(rates[s], caps[s].name, served[s], peak_in[s] / rates[s], max_backlog[s], max_wait[s], done[s])
        for s in caps
    }
    binding = max(steps, key=lambda s: (steps[s].peak_utilization, -steps[s].capacity))
    return Simulation(steps, binding, last_arrival)


def uniform(per_day: float) -> Callable[[float], float]:
    return lambda t: per_day / DAY


def business_hours(per_day: float) -> Callable[[float], float]:
    start, end = BUSINESS_HOURS
    busy = (end - start) * 3600

    def rate(t: float) -> float:
        hour = (t % DAY) / 3600
        if start <= hour < end:
            return per_day * BUSINESS_SHARE / busy
        return per_day * (1 - BUSINESS_SHARE) / (DAY - busy)

    return rate


PROFILES = {"uniform": uniform, "business hours": business_hours}


def steady_state(
    per_day: float, profile: str, m: Measured, settings: Settings, facts: Mapping[str, Fact]
) -> Simulation:
    return simulate(PROFILES[profile](per_day), DAY, m, settings, facts, per_day)


def backfill(documents: float, rate: float, m: Measured, settings: Settings, facts: Mapping[str, Fact]) -> Simulation:
    """A one-off backfill injected at ``rate`` documents a second (the Distributed Map's pacing)."""
    return simulate(lambda t: rate, documents / rate + STEP, m, settings, facts, documents)


def max_rate(m: Measured, settings: Settings, facts: Mapping[str, Fact], live_per_second: float = 0.0) -> float:
    """The highest rate a backfill can be given with every step at most MARGIN busy, beside a live
    load of ``live_per_second``."""
    slowest = min(c.docs_per_second or math.inf for c in capacities(m, settings, facts).values())
    return max(0.0, MARGIN * slowest - live_per_second)


# -- costs -----------------------------------------------------------------------------------------------------


def lambda_cost(m: Measured, step: str, settings: Settings, facts: Mapping[str, Fact]) -> float:
    load = step_load(m, step, settings)
    gb_seconds = m.functions[step].memory_mb / 1024 * duration(m, step, settings, facts)
    return gb_seconds * numbers(facts)["lambda_arm64_gb_second"] + load.invocations * numbers(facts)["lambda_request"]


def _sum(loads: Iterable[Load], unit: str) -> float:
    return sum(load.billed.get(unit, 0.0) for load in loads)


def cost_per_document(m: Measured, settings: Settings, facts: Mapping[str, Fact]) -> dict[str, float]:
    """USD a document costs to ingest, by component (the knowledge base's mode as set; Kendra's index
    is billed by the hour, in ``fixed_costs``)."""
    p = numbers(facts)
    steps = [s for s in STEPS if s != "kendra" or settings.kendra]
    kb = kb_label(settings)
    functions = [step_load(m, s, settings) for s in steps]
    service = m.loads["kb-service" if kb == "kb-direct" else "kb-job-service"]  # the knowledge base reading chunks/
    queues = ["ingest", kb, *(["kendra"] if settings.kendra else [])]
    esm = [m.loads[f"esm:{label}"] for label in queues]  # the event source mappings' receives and deletes
    delivered = sum(m.delivered.get(label, 0.0) for label in queues)  # S3 notifications, EventBridge deliveries
    everyone = [*functions, service]
    return {
        "Lambda": sum(lambda_cost(m, s, settings, facts) for s in steps),
        "S3 requests": _sum(everyone, "s3.put") * p["s3_put_class_request"]
        + _sum(everyone, "s3.get") * p["s3_get_class_request"],
        "DynamoDB": (
            _sum(functions, "dynamodb.rru") * p["dynamodb_read_request_unit"]
            + (_sum(functions, "dynamodb.wru") + sum(sum(f.gsi_wru.values()) for f in functions))
            * p["dynamodb_write_request_unit"]
        ),
        "EventBridge": _sum(functions, "events.entries") * p["eventbridge_custom_event"],
        "SQS": (_sum(functions, "sqs.requests") + _sum(esm, "sqs.requests") + delivered) * p["sqs_standard_request"],
        "Step Functions": 0.0,
        "embeddings": m.tokens / 1000 * p["titan_embed_text_v2_1k_tokens"],
        "S3 Vectors writes": m.vector_bytes / GB * p["s3vectors_put_gb"],
    }


def monthly_storage_per_document(m: Measured, facts: Mapping[str, Fact]) -> dict[str, float]:
    return {
        "S3 storage (processed files)": m.stored_bytes / GB * numbers(facts)["s3_standard_storage"],
        "S3 Vectors storage": m.vector_bytes / GB * numbers(facts)["s3vectors_storage_gb_month"],
    }


def fixed_costs_per_day(settings: Settings, facts: Mapping[str, Fact]) -> dict[str, float]:
    """What runs whatever the load: the Kendra index's hours (Enterprise Edition), and the event source
    mappings' long polls of the idle queues (five pollers each, a 20 s long poll: AWS publishes the
    five, the model assumes the wait)."""
    pollers = 5 * DAY / numbers(facts)["sqs_long_poll_seconds"]
    queues = 2 + (1 if settings.kendra else 0)
    out = {"SQS (idle polling)": pollers * queues * numbers(facts)["sqs_standard_request"]}
    if settings.kendra:
        out["Kendra index (Enterprise Edition)"] = 24 * numbers(facts)["kendra_enterprise_index_hour"]
    return out


# -- the backfill's own orchestration ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillMachine:
    """What statemachine/backfill.asl.json runs for a listing of RawBucket: the states its Standard parent
    passes through (a state transition each, the Choice included) and each child's."""

    parent_states: tuple[str, ...]
    parent_invocations: int  # the parent's Lambda tasks (Plan, Summarise)
    child_type: str  # the Distributed Map's ExecutionType
    child_states: tuple[str, ...]
    child_invocations: int  # a child's Lambda tasks
    child_waits: int  # a child's Wait states


def _path(states: Mapping[str, Any], start: str) -> list[str]:
    """The states an execution passes through from ``start`` when nothing fails and every Choice takes its
    Default (the backfill's: no manifest, a listing of RawBucket)."""
    names, name = [], start
    while True:
        names.append(name)
        state = states[name]
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            return names
        name = state["Default"] if state["Type"] == "Choice" else state["Next"]


def _invocations(states: Mapping[str, Any], names: Iterable[str]) -> int:
    return sum(1 for n in names if states[n]["Type"] == "Task" and states[n]["Resource"].endswith(":lambda:invoke"))


def backfill_machine(path: Path = BACKFILL_ASL) -> BackfillMachine:
    asl = json.loads(path.read_text())
    parent = _path(asl["States"], asl["StartAt"])
    (distributed,) = (asl["States"][n] for n in parent if asl["States"][n]["Type"] == "Map")
    processor = distributed["ItemProcessor"]
    child = _path(processor["States"], processor["StartAt"])
    return BackfillMachine(
        parent_states=tuple(parent),
        parent_invocations=_invocations(asl["States"], parent),
        child_type=processor["ProcessorConfig"]["ExecutionType"],
        child_states=tuple(child),
        child_invocations=_invocations(processor["States"], child),
        child_waits=sum(1 for n in child if processor["States"][n]["Type"] == "Wait"),
    )


@dataclass(frozen=True)
class BackfillChild:
    """One child of the Distributed Map: its batch, its invocation of BackfillFunction and its wait."""

    queued: int  # rechecks it queues (paced)
    unchanged: int  # documents Sluice holds unchanged (a registry read, a HeadObject of the sidecar, no wait)
    lambda_seconds: float  # the function's time: what ``pace_seconds`` is given as elapsed
    wait_seconds: int  # sluice.backfill.pace_seconds
    elapsed_seconds: float  # the child's life: Step Functions' call to the function, the function, the wait
    billed_seconds: float  # its Express duration, rounded up to 100 ms


def backfill_child(
    queued: int, unchanged: int, concurrency: int, rate: float, facts: Mapping[str, Fact]
) -> BackfillChild:
    """A child's batch as BackfillFunction handles it (``sluice.backfill.Backfill.batch``): one BatchGetItem
    of the registry, a GetItem and a conditional PutItem of the batch's record, a HeadObject of each
    unchanged document's sidecar (HEAD_THREADS at once; the model assumes no sidecar is listed in the same
    batch, as for documents that have none), a SendMessageBatch for each ten rechecks; then the Wait."""
    p = numbers(facts)
    lambda_seconds = (
        3 * p["dynamodb_request_seconds"]
        + math.ceil(unchanged / HEAD_THREADS) * p["s3_request_seconds"]
        + math.ceil(queued / SENDS_PER_BATCH) * p["other_request_seconds"]
    )
    wait = pace_seconds(queued, concurrency, rate, lambda_seconds)
    elapsed = p["other_request_seconds"] + lambda_seconds + wait
    billed = round(math.ceil(round(elapsed / EXPRESS_BILLING_STEP, 6)) * EXPRESS_BILLING_STEP, 1)
    return BackfillChild(queued, unchanged, lambda_seconds, wait, elapsed, billed)


def _children(
    count: int, batch: int, queued: bool, concurrency: int, rate: float, facts: Mapping[str, Fact]
) -> list[tuple[int, BackfillChild]]:
    """``count`` documents of one kind in full batches and one partial: (children, the child) pairs."""
    full, rest = divmod(count, batch)
    out: list[tuple[int, BackfillChild]] = []
    for children, size in ((full, batch), (1, rest)):
        if children and size:
            out.append(
                (children, backfill_child(size if queued else 0, 0 if queued else size, concurrency, rate, facts))
            )
    return out


def backfill_orchestration(
    documents: int,
    rechecks: int,
    rate: float,
    m: Measured,
    facts: Mapping[str, Fact],
    concurrency: int | None = None,
) -> dict[str, Any]:
    """The backfill's own cost and time, as the code runs it: statemachine/backfill.asl.json's states, and
    the plan ``sluice.backfill.pace(rate)`` makes (``concurrency`` puts another number of children at
    once beside the plan's batch, to show what it would change). Of ``documents`` listed, ``rechecks``
    are new or changed: queued and paced, each child waiting ``pace_seconds``; the rest Sluice holds
    unchanged, and their children end as soon as their invocation does. The rechecks fill batches of
    their own. Each child's Express duration is billed at EXPRESS_BILLING_MB; the Map keeps its
    concurrency busy, so the run lasts its children's time over the concurrency. The recheck messages
    replace the S3 notifications a new upload would bring."""
    machine = backfill_machine()
    if (machine.child_type, machine.child_invocations, machine.child_waits) != ("EXPRESS", 1, 1):
        raise ValueError(
            f"{BACKFILL_ASL.name}'s children are no longer an Express workflow of one Lambda task and a Wait: "
            "capacity/model.py's backfill_child must follow them"
        )
    p = numbers(facts)
    planned, batch = pace(rate)
    c = concurrency or planned
    kinds = [
        *_children(rechecks, batch, True, c, rate, facts),
        *_children(documents - rechecks, batch, False, c, rate, facts),
    ]
    children = sum(n for n, _ in kinds)
    child_seconds = sum(n * child.billed_seconds for n, child in kinds)
    lambda_seconds = sum(n * child.lambda_seconds for n, child in kinds)
    sends = sum(n * math.ceil(child.queued / SENDS_PER_BATCH) for n, child in kinds)
    unchanged = documents - rechecks
    transitions = len(machine.parent_states) + children * p["stepfunctions_distributed_map_child_transition"]
    invocations = machine.parent_invocations + children * machine.child_invocations
    longest = max((child.billed_seconds for _, child in kinds), default=0.0)
    return {
        "documents": documents,
        "rechecks": rechecks,
        "rate": rate,
        "concurrency": c,
        "planned_concurrency": planned,
        "batch_size": batch,
        "children": children,
        "full_batch_wait_seconds": pace_seconds(batch, c, rate, 0.0),
        "longest_child_seconds": longest,
        "express_limit_ok": longest <= p["express_max_seconds"],
        "child_seconds": child_seconds,
        "express_gb_seconds": child_seconds * EXPRESS_BILLING_MB / 1024,
        "first_wave": c * batch,
        "hours": sum(n * child.elapsed_seconds for n, child in kinds) / c / 3600,
        "parent_states": list(machine.parent_states),
        "child_states": list(machine.child_states),
        "cost": {
            "S3 LIST (the Map's ListObjectsV2)": documents / LIST_PAGE * p["s3_put_class_request"],
            "S3 HeadObject (unchanged documents' sidecars)": unchanged * p["s3_get_class_request"],
            "Step Functions Standard (transitions)": transitions * p["stepfunctions_standard_transition"],
            "Step Functions Express (requests)": children * p["stepfunctions_express_request"],
            "Step Functions Express (duration)": child_seconds
            * EXPRESS_BILLING_MB
            / 1024
            * p["stepfunctions_express_gb_second"],
            "Lambda (BackfillFunction)": lambda_seconds * BACKFILL_MEMORY_MB / 1024 * p["lambda_arm64_gb_second"]
            + invocations * p["lambda_request"],
            "DynamoDB (registry reads, batch records)": (documents + children) * p["dynamodb_read_request_unit"]
            + (children + 1) * p["dynamodb_write_request_unit"],
            "SQS (rechecks sent)": sends * p["sqs_standard_request"],
            "SQS (S3 notifications not sent)": -rechecks * m.delivered.get("ingest", 0.0) * p["sqs_standard_request"],
        },
    }


# each orchestration cost's component in the per-1,000-documents table
ORCHESTRATION_COMPONENTS = {
    "S3 LIST (the Map's ListObjectsV2)": "S3 requests",
    "S3 HeadObject (unchanged documents' sidecars)": "S3 requests",
    "Step Functions Standard (transitions)": "Step Functions",
    "Step Functions Express (requests)": "Step Functions",
    "Step Functions Express (duration)": "Step Functions",
    "Lambda (BackfillFunction)": "Lambda",
    "DynamoDB (registry reads, batch records)": "DynamoDB",
    "SQS (rechecks sent)": "SQS",
    "SQS (S3 notifications not sent)": "SQS",
}


# -- the whole model ----------------------------------------------------------------------------------------------

DAILY = (10_000, 100_000, 1_000_000)
BACKFILL = 1_000_000
LIVE_PEAK = 100_000 * BUSINESS_SHARE / ((BUSINESS_HOURS[1] - BUSINESS_HOURS[0]) * 3600)  # 100,000 a day's peak


def direct_ceiling(m: Measured, facts: Mapping[str, Fact]) -> float:
    """The most documents a second direct mode could take with every instance's calls at the full
    per-API quota: each API's calls a document at the quota, the busiest API binding."""
    calls = [n for op, n in m.loads["kb-direct"].requests.items() if op.startswith(SERVICES["kb"])]
    return numbers(facts)["kb_ingest_documents_rps"] / max(calls)


def rates() -> list[float]:
    return [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400, 500, 700, 1000]


def run_model(costs: Mapping[str, Any], facts: Mapping[str, Fact]) -> dict[str, Any]:
    m = measured(costs)
    direct, jobs = Settings(), Settings(kb_mode="ingestion-job")
    with_kendra = replace(direct, kendra=True)
    modes = {"direct": direct, "ingestion-job": jobs, "direct, with Kendra": with_kendra}
    return {
        "measured": _measured_summary(m, facts),
        "limits": {name: [_limit(lim) for lim in limits(m, s, facts)] for name, s in modes.items()},
        "steady_state": [
            {
                "per_day": n,
                "profile": profile,
                "modes": {name: _simulation(steady_state(n, profile, m, s, facts)) for name, s in modes.items()},
            }
            for n in DAILY
            for profile in PROFILES
        ],
        "backfill": _backfills(m, facts),
        "costs": _costs(m, facts),
    }


def _costs(m: Measured, facts: Mapping[str, Fact]) -> dict[str, Any]:
    direct, jobs = Settings(), Settings(kb_mode="ingestion-job")
    with_kendra = replace(direct, kendra=True)
    per_doc = {
        name: cost_per_document(m, s, facts)
        for name, s in (("direct", direct), ("ingestion-job", jobs), ("direct, with Kendra", with_kendra))
    }
    per_1000 = {name: {k: v * 1000 for k, v in c.items()} for name, c in per_doc.items()}
    # a backfill in ingestion-job mode at its recommended rate, every document new: its orchestration's share
    rate = math.floor(max_rate(m, jobs, facts))
    backfilled = dict(per_1000["ingestion-job"])
    for item, usd in backfill_orchestration(BACKFILL, BACKFILL, rate, m, facts)["cost"].items():
        backfilled[ORCHESTRATION_COMPONENTS[item]] += usd * 1000 / BACKFILL
    return {
        "per_1000_documents": {**per_1000, "backfill, ingestion-job": backfilled},
        "monthly_per_1000_documents_kept": {k: v * 1000 for k, v in monthly_storage_per_document(m, facts).items()},
        "per_1000_queries": {"S3 Vectors queries": 1000 * numbers(facts)["s3vectors_query_request"]},
        "fixed_per_day": {
            name: fixed_costs_per_day(s, facts)
            for name, s in (("without Kendra", direct), ("with Kendra", with_kendra))
        },
        "daily": {
            str(n): {
                name: n * sum(per_doc[name].values()) + sum(fixed_costs_per_day(s, facts).values())
                for name, s in (("direct", direct), ("ingestion-job", jobs), ("direct, with Kendra", with_kendra))
            }
            for n in DAILY
        },
    }


def _backfill_run(
    m: Measured, settings: Settings, facts: Mapping[str, Fact], rate: float | None = None
) -> dict[str, Any]:
    """A 1,000,000-document backfill at ``rate`` (by default the highest rate within MARGIN)."""
    rate = rate if rate is not None else max_rate(m, settings, facts)
    return {
        "settings": settings.label(),
        "kb_mode": settings.kb_mode,
        "kendra": settings.kendra,
        "ingest_concurrency": concurrency(m, "ingest", settings, facts),
        "kb_concurrency": concurrency(m, "kb", settings, facts),
        "rate": rate,
        **_simulation(backfill(BACKFILL, rate, m, settings, facts)),
    }


def _backfills(m: Measured, facts: Mapping[str, Fact]) -> dict[str, Any]:
    direct, jobs = Settings(), Settings(kb_mode="ingestion-job")
    candidates = [
        direct,
        Settings(ingest_concurrency=400),
        jobs,
        Settings(kb_mode="ingestion-job", kb_concurrency=10),
        *(Settings(kb_mode="ingestion-job", ingest_concurrency=c, kb_concurrency=10) for c in (50, 100, 200)),
        Settings(kb_mode="ingestion-job", ingest_concurrency=400, kb_concurrency=25),
    ]
    runs = [_backfill_run(m, s, facts) for s in candidates]
    best = min(range(len(runs)), key=lambda i: runs[i]["hours"])
    fastest, fastest_settings = runs[best], candidates[best]
    return {
        "documents": BACKFILL,
        "default_rate": DEFAULT_RATE,
        "at_default": _backfill_run(m, direct, facts, DEFAULT_RATE),
        "at_default_with_kendra": _backfill_run(m, replace(direct, kendra=True), facts, DEFAULT_RATE),
        "recommended_rate": {
            "direct": math.floor(max_rate(m, direct, facts)),
            "ingestion-job": math.floor(max_rate(m, jobs, facts)),
            "ingestion-job, beside 100,000 a day": math.floor(max_rate(m, jobs, facts, LIVE_PEAK)),
            "ingestion-job, with Kendra": math.floor(max_rate(m, replace(jobs, kendra=True), facts)),
        },
        "live_peak_per_second": LIVE_PEAK,
        "direct_ceiling": direct_ceiling(m, facts),
        "kb_quota": numbers(facts)["kb_ingest_documents_rps"],
        "ingest_calls_per_document": m.loads["kb-direct"].requests.get(
            "bedrock-agent:IngestKnowledgeBaseDocuments", 0.0
        ),
        "runs": runs,
        "fastest": fastest,
        "embedding_quota": [
            _backfill_run(m, replace(fastest_settings, embedding_requests_per_minute=rpm), facts)
            for rpm in (600, 2_000, 6_000, 20_000)
        ],
        "sweep": [{"rate": r, **_simulation(backfill(BACKFILL, r, m, direct, facts))} for r in rates()],
        "orchestration": _orchestration(m, facts, math.floor(max_rate(m, jobs, facts))),
    }


def _orchestration(m: Measured, facts: Mapping[str, Fact], recommended: float) -> dict[str, Any]:
    """The backfill's own cost and time for BACKFILL documents, every one new (each a recheck) or every one
    held unchanged, at the default and the recommended rate; and at the default rate, what fewer
    children at once than the plan's would change."""
    planned, _ = pace(DEFAULT_RATE)
    fewer = sorted({c for c in (1, 2, 5, 10, 20) if c < planned} | {planned})
    return {
        "pace_budget_seconds": PACE_BUDGET_SECONDS,
        "express_max_seconds": numbers(facts)["express_max_seconds"],
        "memory_mb": BACKFILL_MEMORY_MB,
        "express_billing_mb": EXPRESS_BILLING_MB,
        "runs": [
            backfill_orchestration(BACKFILL, rechecks, rate, m, facts)
            for rate in (DEFAULT_RATE, recommended)
            for rechecks in (BACKFILL, 0)
        ],
        "concurrency": [
            {
                "concurrency": c,
                "rechecked": backfill_orchestration(BACKFILL, BACKFILL, DEFAULT_RATE, m, facts, c),
                "unchanged": backfill_orchestration(BACKFILL, 0, DEFAULT_RATE, m, facts, c),
            }
            for c in fewer
        ],
    }


def _simulation(sim: Simulation) -> dict[str, Any]:
    last = max(run.done_seconds for run in sim.steps.values())
    return {
        "binding": sim.binding,
        "binding_limit": sim.steps[sim.binding].limit,
        "hours": last / 3600,
        "steps": {
            s: {
                "capacity": r.capacity,
                "limit": r.limit,
                "peak_utilization": r.peak_utilization,
                "max_backlog": r.max_backlog,
                "max_wait_hours": r.max_wait_seconds / 3600,
                "done_hours": r.done_seconds / 3600,
            }
            for s, r in sim.steps.items()
        },
    }


def _limit(limit: Limit) -> dict[str, Any]:
    return {
        "step": limit.step,
        "name": limit.name,
        "docs_per_second": limit.docs_per_second,
        "why": limit.why,
        "facts": list(limit.facts),
    }


def _measured_summary(m: Measured, facts: Mapping[str, Fact]) -> dict[str, Any]:
    direct, jobs = Settings(), Settings(kb_mode="ingestion-job")
    return {
        "date": m.date,
        "documents": m.documents,
        "chunks_per_document": m.chunks,
        "tokens_per_document": m.tokens,
        "vector_bytes_per_document": m.vector_bytes,
        "stored_bytes_per_document": m.stored_bytes,
        "embedding_model": m.embedding_model,
        "seconds_per_document": {
            "ingest": duration(m, "ingest", direct, facts),
            "kb-direct": duration(m, "kb", direct, facts),
            "kb-job": duration(m, "kb", jobs, facts),
            "kendra": duration(m, "kendra", direct, facts),
        },
        "cpu_seconds_per_document": {
            label: m.loads[label].cpu_seconds for label in ("ingest", "kb-direct", "kb-job", "kendra")
        },
        "requests_per_1000": {
            label: {k: v * 1000 for k, v in m.loads[label].requests.items()}
            for label in ("ingest", "kb-direct", "kb-job", "kendra")
        },
    }

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
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DAY = 86_400.0
STEP = 60.0  # the simulation's time step, seconds
MARGIN = 0.8  # the share of a limit a planned load may take
GB = 1024**3
BUSINESS_HOURS = (9, 18)  # the business-hours profile: this window (local hours) carries BUSINESS_SHARE
BUSINESS_SHARE = 0.8
BACKFILL_BATCH = 100  # keys a Distributed Map child handles (ItemBatcher; BatchGetItem's most keys)
BACKFILL_MAX_CONCURRENCY = 40
BACKFILL_MEMORY_MB = 512  # the backfill function is not built yet: its memory is assumed
BACKFILL_CHILD_TARGET_SECONDS = 60.0  # how long a paced child lives when as few run as keep the rate
EXPRESS_BILLING_MB = 64  # an Express execution's memory is billed in 64 MB chunks; the model assumes one
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


def paced_requests(load: Load, step: str) -> float:
    """The index API requests a sink paces itself on, per document."""
    service = {"kb": "bedrock-agent:", "kendra": "kendra:"}.get(step)
    return sum(n for op, n in load.requests.items() if service and op.startswith(service))


def duration(m: Measured, step: str, settings: Settings, facts: Mapping[str, Fact]) -> float:
    """Seconds of function time a document takes: its CPU, a latency for each request, and the time the
    sink waits on its own pacing. A sink instance calls one API after another, each paced on its own,
    so the waits add up."""
    load, p = step_load(m, step, settings), numbers(facts)
    cpu = load.cpu_seconds * p["lambda_cpu_speed"]
    waiting = sum(n * p[LATENCY.get(op.split(":")[0], "other_request_seconds")] for op, n in load.requests.items())
    rate = pacing(m, step, settings)
    paced = paced_requests(load, step) / rate if rate else 0.0
    return cpu + waiting + paced


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


def backfill_orchestration(
    documents: float, rate: float, m: Measured, facts: Mapping[str, Fact], concurrency: int = BACKFILL_MAX_CONCURRENCY
) -> dict[str, Any]:
    """The backfill's own cost, as the issue describes it (the backfill is not built yet): a Standard
    workflow whose Distributed Map lists RawBucket (one LIST a 1,000 keys) in batches of BACKFILL_BATCH
    keys; each batch an Express child: one Lambda invocation (a consistent BatchGetItem of the batch,
    SendMessageBatch of ten rechecks a call, one put of its progress), then a Wait that paces the run
    to ``rate``. With ``concurrency`` children at once, each lives concurrency × batch / rate seconds;
    the recheck messages replace the S3 notifications a new upload would bring."""
    p = numbers(facts)
    batches = math.ceil(documents / BACKFILL_BATCH)
    child_seconds = concurrency * BACKFILL_BATCH / rate
    latency = p["dynamodb_request_seconds"] * 2 + p["other_request_seconds"] * BACKFILL_BATCH / SENDS_PER_BATCH
    lambda_seconds = batches * latency
    return {
        "child_seconds": child_seconds,
        "express_limit_ok": child_seconds <= p["express_max_seconds"],
        "cost": {
            "S3 LIST (RawBucket)": documents / LIST_PAGE * p["s3_put_class_request"],
            "Step Functions (Standard, one transition a child)": batches * p["stepfunctions_standard_transition"],
            "Step Functions (Express requests)": batches * p["stepfunctions_express_request"],
            "Step Functions (Express duration)": batches
            * child_seconds
            * EXPRESS_BILLING_MB
            / 1024
            * p["stepfunctions_express_gb_second"],
            "Lambda (backfill function)": (
                lambda_seconds * BACKFILL_MEMORY_MB / 1024 * p["lambda_arm64_gb_second"] + batches * p["lambda_request"]
            ),
            "DynamoDB (registry reads, progress)": (
                documents * p["dynamodb_read_request_unit"] + batches * p["dynamodb_write_request_unit"]
            ),
            "SQS (rechecks sent)": documents / SENDS_PER_BATCH * p["sqs_standard_request"],
            "SQS (S3 notifications not sent)": -documents * m.delivered.get("ingest", 0.0) * p["sqs_standard_request"],
        },
    }


# each orchestration cost's component in the per-1,000-documents table
ORCHESTRATION_COMPONENTS = {
    "S3 LIST (RawBucket)": "S3 requests",
    "Step Functions (Standard, one transition a child)": "Step Functions",
    "Step Functions (Express requests)": "Step Functions",
    "Step Functions (Express duration)": "Step Functions",
    "Lambda (backfill function)": "Lambda",
    "DynamoDB (registry reads, progress)": "DynamoDB",
    "SQS (rechecks sent)": "SQS",
    "SQS (S3 notifications not sent)": "SQS",
}


def fewest_children(rate: float) -> int:
    """The fewest Distributed Map children that keep ``rate`` with each living about
    BACKFILL_CHILD_TARGET_SECONDS."""
    return max(1, math.ceil(BACKFILL_CHILD_TARGET_SECONDS * rate / BACKFILL_BATCH))


# -- the whole model ----------------------------------------------------------------------------------------------

DAILY = (10_000, 100_000, 1_000_000)
BACKFILL = 1_000_000
DEFAULT_RATE = 10.0  # the backfill's --rate as first proposed
LIVE_PEAK = 100_000 * BUSINESS_SHARE / ((BUSINESS_HOURS[1] - BUSINESS_HOURS[0]) * 3600)  # 100,000 a day's peak


def direct_ceiling(m: Measured, facts: Mapping[str, Fact]) -> float:
    """The most documents a second direct mode could take with every instance's calls at the full
    per-API quota: an instance calls IngestKnowledgeBaseDocuments and GetKnowledgeBaseDocuments one
    after the other, so the instances together can make at most the quota's calls a second of the two."""
    load = m.loads["kb-direct"]
    return numbers(facts)["kb_ingest_documents_rps"] / paced_requests(load, "kb")


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
    # a backfill in ingestion-job mode at its recommended rate, its orchestration's share included
    rate = math.floor(max_rate(m, jobs, facts))
    backfilled = dict(per_1000["ingestion-job"])
    for item, usd in backfill_orchestration(1000, rate, m, facts, fewest_children(rate))["cost"].items():
        backfilled[ORCHESTRATION_COMPONENTS[item]] += usd
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
        "orchestration": [
            {"rate": rate, "concurrency": c, **backfill_orchestration(BACKFILL, rate, m, facts, c)}
            for rate in (DEFAULT_RATE, math.floor(max_rate(m, jobs, facts)))
            for c in (BACKFILL_MAX_CONCURRENCY, fewest_children(rate))
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

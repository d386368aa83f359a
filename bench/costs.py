"""What one document costs AWS, measured: the real functions, wired by their composition root from the
template's own environment, run against the local stack's AWS (moto's server, provisioned from
template.yaml, with the Bedrock and Kendra emulators), on the load run's mix of typical documents.

Every AWS request a function's clients make is counted through botocore's events on the session the
function is built from, and sized as AWS bills it: S3 requests by price class, DynamoDB read and write
request units from the item sizes (each write's item read before and after it, outside the count, so
that updates, conditional failures and the global secondary indexes are charged as DynamoDB charges
them; index writes are kept per partition key value, where a hot key binds), EventBridge entries and
SQS requests in 64 KB chunks. What AWS's own services do for the pipeline is counted apart: S3
delivering notifications and EventBridge delivering events to the queues, the event source mappings
receiving and deleting (played here by the driver, with the template's batch sizes), and the knowledge
base reading the chunk files (what the emulator reads, as the service does).

CPU is each handler's thread time, less the time spent in the meter and in the emulators (AWS's side of
a call, not the function's), plus the parsing sandbox's CPU; the front end alone (``process_document``
on the same files) is timed apart, so "the rest" is the glue: AWS clients, Powertools, hashing.

The knowledge-base sink runs in both modes: ``direct`` (with Kendra) on one stack, ``ingestion-job`` on a
second. Status checks are made at once (the emulators confirm at the first check) and the sinks' pacing
is lifted, neither of which changes a count; the pacing the template sets is recorded for the capacity
model (capacity/), which reads this stage's results from bench/results.json.

Run with the main venv (moto and the local stack live there): ``.venv/bin/python bench/costs.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "layers" / "sluice", ROOT / "cli", ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

REGION = "us-east-1"
DOCUMENTS = 300
SEED = 5000  # make load's seed: the same mix of documents
KB = 1024  # DynamoDB's units are binary: 1 KB = 1024 bytes
CHUNK_64K = 64 * 1024  # EventBridge entries and SQS payloads are billed per 64 KB
RECEIVE_MAX = 10  # messages per ReceiveMessage, entries per DeleteMessageBatch
# S3's request price classes (the S3 pricing page): PUT, COPY, POST and LIST requests, and GET and
# the rest of the reads. DELETE is free.
S3_PUT_CLASS = frozenset({"PutObject", "CopyObject", "ListObjectsV2", "ListObjects", "ListObjectVersions"})
S3_GET_CLASS = frozenset({"GetObject", "HeadObject"})
S3_FREE = frozenset({"DeleteObject", "DeleteObjects"})
DDB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
DDB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
LIFTED_PACING = "1000"  # requests a second: the sinks' pacing, out of the way of a count
SECOND_INGESTION = ("ingest-again", "esm:ingest-again")  # the job-mode stack's ingestion: not reported


# -- DynamoDB item sizes --------------------------------------------------------------------------------


def value_size(value: dict[str, Any]) -> int:
    """A DynamoDB attribute value's size by the developer guide's rules ("Item sizes"): strings and
    binary by length, a number about one byte per two significant digits plus one, booleans and null
    one byte, lists and maps 3 bytes plus one a member plus the members, sets their members."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = len(v.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(m) for m in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(m) for k, m in v.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in v)
    return sum(len(b) for b in v)  # BS


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


# -- the meter ---------------------------------------------------------------------------------------------


@dataclass
class Usage:
    """One function's (or one AWS service's) requests, and the units AWS bills them in."""

    requests: Counter[str] = field(default_factory=Counter)  # "service:Operation"
    billed: Counter[str] = field(default_factory=Counter)  # "s3.put", "dynamodb.wru", "sqs.requests", ...
    gsi_wru: Counter[str] = field(default_factory=Counter)  # "index#partition key value"
    invocations: list[tuple[int, float]] = field(default_factory=list)  # (records, CPU seconds) of each

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": dict(sorted(self.requests.items())),
            "billed": dict(sorted(self.billed.items())),
            "gsi_wru": dict(sorted(self.gsi_wru.items())),
        }
        if self.invocations:
            # The first invocation of an execution environment also loads what loads lazily (the
            # tokenizer, the parsing sandbox): its CPU is kept apart from the warm invocations'.
            warm = self.invocations[1:] or self.invocations
            out |= {
                "invocations": len(self.invocations),
                "records": sum(r for r, _ in self.invocations),
                "cpu_seconds": sum(c for _, c in self.invocations),
                "first_invocation": {"records": self.invocations[0][0], "cpu_seconds": self.invocations[0][1]},
                "warm_cpu_seconds_per_record": sum(c for _, c in warm) / sum(r for r, _ in warm),
            }
        return out


@dataclass(frozen=True)
class Table:
    key: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]]  # GSI name → its key attributes (hash first)


class Meter:
    """Counts and sizes the requests of every client made from a session it is attached to. DynamoDB
    writes read their item before and after (with a client of its own, not counted) to size the write
    and its index entries; the CPU that takes is kept in ``overhead`` so it can be taken off the
    function's."""

    def __init__(self, raw_dynamodb: Any) -> None:
        self.usage: dict[str, Usage] = defaultdict(Usage)
        self.overhead = 0.0
        self._db = raw_dynamodb
        self._tables: dict[str, Table] = {}
        self._loader: Any = None

    def session(self, label: str) -> Any:
        """A session whose clients are counted under ``label`` (they share one loader of service
        models: each session loading its own would make every client slow to create)."""
        import boto3

        session = boto3.session.Session(region_name=REGION)
        if self._loader is None:
            self._loader = session._session.get_component("data_loader")
        else:
            session._session.register_component("data_loader", self._loader)
        session.events.register("before-parameter-build", self._before(label))
        session.events.register("after-call", self._after(label))
        return session

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.overhead += time.thread_time() - start

    def _before(self, label: str) -> Callable[..., None]:
        def hook(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            with self._timed():
                service = model.service_model.service_name
                self.usage[label].requests[f"{service}:{model.name}"] += 1
                context["meter_params"] = dict(params)
                if "Body" in params:  # botocore has made it a file by now
                    context["meter_body_bytes"] = _body_size(params["Body"])
                if service == "dynamodb" and model.name in DDB_WRITES:
                    context["meter_before"] = self._item(
                        params["TableName"], _key_of(params, self._table(params["TableName"]))
                    )

        return hook

    def _after(self, label: str) -> Callable[..., None]:
        def hook(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            with self._timed():
                params = context.get("meter_params", {})
                service = model.service_model.service_name
                bill = getattr(self, f"_bill_{service.replace('-', '_')}", None)
                if bill is not None:
                    bill(self.usage[label], model.name, params, parsed, context)

        return hook

    # S3, SQS, EventBridge: requests by price class and 64 KB chunk
    def _bill_s3(
        self, usage: Usage, op: str, params: dict[str, Any], parsed: dict[str, Any], context: dict[str, Any]
    ) -> None:
        if op in S3_GET_CLASS:
            usage.billed["s3.get"] += 1
        elif op not in S3_FREE:
            usage.billed["s3.put"] += 1  # PutObject, listings, and anything else a function starts to call
        if op == "PutObject":
            usage.billed["s3.put_bytes"] += context.get("meter_body_bytes", 0)

    def _bill_sqs(self, usage: Usage, op: str, params: dict[str, Any], parsed: dict[str, Any], _: Any) -> None:
        if op == "SendMessageBatch":
            payload = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
            usage.billed["sqs.messages_sent"] += len(params["Entries"])
        elif op == "SendMessage":
            payload = len(params["MessageBody"].encode())
            usage.billed["sqs.messages_sent"] += 1
        elif op == "ReceiveMessage":
            messages = parsed.get("Messages", [])
            payload = sum(len(m["Body"].encode()) for m in messages)
            usage.billed["sqs.messages_received"] += len(messages)
        else:
            payload = 0
        usage.billed["sqs.requests"] += max(1, math.ceil(payload / CHUNK_64K))

    def _bill_events(self, usage: Usage, op: str, params: dict[str, Any], parsed: dict[str, Any], _: Any) -> None:
        if op != "PutEvents":
            return
        for entry in params["Entries"]:
            # the entry size as the PutEvents guide counts it: 14 bytes of time, the source, the
            # detail type, the detail and every resource
            size = 14 + sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
            size += sum(len(r.encode()) for r in entry.get("Resources", []))
            usage.billed["events.entries"] += max(1, math.ceil(size / CHUNK_64K))

    def _bill_dynamodb(
        self, usage: Usage, op: str, params: dict[str, Any], parsed: dict[str, Any], context: dict[str, Any]
    ) -> None:
        failed = "Error" in parsed
        if op in DDB_READS:
            usage.billed["dynamodb.rru"] += _read_units(op, params, parsed)
            return
        if op not in DDB_WRITES:
            return
        table_name = params["TableName"]
        table = self._table(table_name)
        before = context.get("meter_before")
        if failed:  # a write whose condition failed is still a write of the item it looked at
            usage.billed["dynamodb.wru"] += write_units(item_size(before))
            return
        after = None if op == "DeleteItem" else self._item(table_name, _key_of(params, table))
        usage.billed["dynamodb.wru"] += write_units(max(item_size(before), item_size(after)))
        for index, keys in table.indexes.items():
            old, new = _index_key(before, keys), _index_key(after, keys)
            if old is not None and old != new:  # the index entry moves: a delete, then the put below
                usage.gsi_wru[f"{index}#{old[0]}"] += write_units(item_size(before))
            if new is not None:
                usage.gsi_wru[f"{index}#{new[0]}"] += write_units(item_size(after))

    def _table(self, name: str) -> Table:
        if name not in self._tables:
            desc = self._db.describe_table(TableName=name)["Table"]
            indexes = {
                g["IndexName"]: tuple(k["AttributeName"] for k in g["KeySchema"])
                for g in desc.get("GlobalSecondaryIndexes", [])
            }
            self._tables[name] = Table(tuple(k["AttributeName"] for k in desc["KeySchema"]), indexes)
        return self._tables[name]

    def _item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._db.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item


def _body_size(body: Any) -> int:
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    position = body.tell()
    size = int(body.seek(0, os.SEEK_END)) - position
    body.seek(position)
    return size


def _key_of(params: dict[str, Any], table: Table) -> dict[str, Any]:
    source = params.get("Key") or params["Item"]
    return {k: source[k] for k in table.key}


def _index_key(item: dict[str, Any] | None, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """The item's key in an index, or None when the item is not in it (an attribute is missing)."""
    if item is None or any(k not in item for k in keys):
        return None
    return tuple(next(iter(item[k].values())) for k in keys)


def _read_units(op: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
    """Read request units as the developer guide computes them: GetItem and each item of a
    BatchGetItem rounded up to 4 KB (a missing item still costs the minimum); Query and Scan the whole
    page's size rounded up; eventually consistent reads half."""
    if op == "GetItem":
        return read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead")))
    if op == "BatchGetItem":
        total = 0.0
        for table, request in params["RequestItems"].items():
            found = parsed.get("Responses", {}).get(table, [])
            unprocessed = len(parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
            consistent = bool(request.get("ConsistentRead"))
            total += sum(read_units(item_size(i), consistent) for i in found)
            missing = len(request["Keys"]) - len(found) - unprocessed
            total += missing * read_units(0, consistent)
        return total
    size = sum(item_size(i) for i in parsed.get("Items", []))
    return read_units(size, bool(params.get("ConsistentRead")))


# -- the stack -------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """One provisioned copy of template.yaml on the moto server: its functions' environments and queues."""

    name: str
    functions: dict[str, Any]  # logical id → sluice_local.runtime.FunctionSpec
    raw: Callable[[str], Any]  # uncounted clients
    emulator_dir: Path

    def env(self, logical_id: str) -> dict[str, str]:
        return dict(self.functions[logical_id].environment)

    def source(self, logical_id: str) -> dict[str, Any]:
        (source,) = self.functions[logical_id].sqs_sources
        return dict(source)


def provision(name: str, parameters: dict[str, str], endpoint: str, raw: Callable[[str], Any], work: Path) -> Stack:
    from sluice_local.provision import Provisioner
    from sluice_local.stack import LOCAL_PARAMETERS
    from sluice_local.template import Resolver, load

    resolver = Resolver(load(ROOT / "template.yaml"), name, {**LOCAL_PARAMETERS, **parameters})
    provisioner = Provisioner(ROOT, resolver, name, REGION, endpoint, raw, work / name)
    provisioner.provision()
    return Stack(name, provisioner.functions, raw, work / name)


def drain(
    source: dict[str, Any],
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    sqs: Any,
    received: set[str],
) -> None:
    """Play the event source mapping: batches of up to ``batch_size`` messages (received ten at a time)
    handed to ``invoke`` until the queue is empty; what succeeded is deleted ten at a time. The ids of
    the messages seen go to ``received``. A batch item failure is an error here: nothing fails in this
    run, and a retried message would wait out its backoff."""
    from sluice_local.runtime import sqs_event

    queue_url, batch_size = source["queue_url"], int(source["batch_size"])
    while True:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(RECEIVE_MAX, batch_size - len(messages)),
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not got:
                break
            messages += got
        if not messages:
            return
        received.update(m["MessageId"] for m in messages)
        failures = invoke(sqs_event(messages, source["queue_arn"], REGION)).get("batchItemFailures", [])
        if failures:
            raise RuntimeError(f"{len(failures)} messages of {queue_url} failed: {failures[:3]}")
        for start in range(0, len(messages), RECEIVE_MAX):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages[start : start + RECEIVE_MAX])
            ]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


# -- the measurement -------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One stack's functions driven over the corpus, measured into ``meter``."""

    stack: Stack
    meter: Meter
    emulator_cpu: list[float]  # CPU the emulators spent answering, taken off the function that called
    delivered: Counter[str] = field(default_factory=Counter)  # messages AWS services put on each queue

    def function(self, label: str, build: Callable[[dict[str, str], Any], Any], env: dict[str, str]) -> Any:
        """The function's service as its handler builds it, from one session counted under ``label``."""
        from sluice.bootstrap import Clients

        return build(env, Clients(self.meter.session(label)))

    def run(
        self,
        label: str,
        logical_id: str,
        handler: Any,
        call: Callable[[Any, dict[str, Any], Any], dict[str, Any]],
        wiring: Any,
    ) -> None:
        """Drain the function's queue through its handler, its CPU (less the meter's and the
        emulators') and invocations recorded under ``label``."""
        spec = self.stack.functions[logical_id]
        source = self.stack.source(logical_id)
        usage = self.meter.usage[label]
        esm = self.meter.session(f"esm:{label}").client("sqs")

        from sluice_local.worker import Context

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            context = Context(logical_id, spec.memory, spec.timeout, "bench")
            overhead, emulated = self.meter.overhead, self.emulator_cpu[0]
            start = time.thread_time()
            result = call(handler, event, context, wiring)
            spent = time.thread_time() - start - (self.meter.overhead - overhead) - (self.emulator_cpu[0] - emulated)
            usage.invocations.append((len(event["Records"]), spent))
            return result

        received: set[str] = set()
        sent_before = usage.billed["sqs.messages_sent"]
        drain(source, invoke, esm, received)
        self.delivered[label] += len(received) - (usage.billed["sqs.messages_sent"] - sent_before)


def _time_emulator(cpu: list[float]) -> None:
    """Keep the installed emulator's CPU (its answers, its reads of S3) off the calling function's."""
    from sluice_local.emulators import installed

    emulator = installed()
    assert emulator is not None
    answer = emulator.call

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return answer(*args, **kwargs)
        finally:
            cpu[0] += time.thread_time() - start

    emulator.call = timed  # type: ignore[method-assign]


def upload(stack: Stack, docs: list[Any]) -> None:
    """The corpus (and its metadata sidecars) put in RawBucket by someone else: not counted."""
    s3 = stack.raw("s3")
    raw_bucket = stack.env("IngestDocumentFunction")["RAW_BUCKET"]
    for doc in docs:
        s3.put_object(Bucket=raw_bucket, Key=doc.key, Body=doc.body)
        if doc.sidecar is not None:
            s3.put_object(Bucket=raw_bucket, Key=doc.sidecar_key, Body=doc.sidecar)


def clear_test_events(stack: Stack) -> None:
    """S3 puts an s3:TestEvent on the queue when its notifications are configured: not a document."""
    sqs = stack.raw("sqs")
    url = stack.source("IngestDocumentFunction")["queue_url"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=RECEIVE_MAX).get("Messages", []):
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def ingest(run: Run, label: str) -> float:
    """The corpus's notifications through the ingest function; the parsing sandbox's CPU seconds."""
    from sluice.bootstrap.ingest import build
    from support.handlers import load_handler

    handler = load_handler("ingest_document")
    wiring = run.function(label, build, run.stack.env("IngestDocumentFunction"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.run(label, "IngestDocumentFunction", handler, lambda h, e, c, w: h.lambda_handler(e, c, ingest=w), wiring)
    wiring.service.extractor.close()  # the parsing sandbox, reaped: its CPU is the children's now
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)


def sink(run: Run, label: str, logical_id: str) -> None:
    """The bus events on the sink's queue through its function, and the status checks and job polls
    the sink queues for itself, until the queue is empty."""
    from sluice.bootstrap.sinks import build
    from support.handlers import load_handler

    env = run.stack.env(logical_id) | {"SINK_FIRST_CHECK_SECONDS": "0", "SINK_REQUESTS_PER_SECOND": LIFTED_PACING}
    handler = load_handler("sync_sink")
    wiring = run.function(label, build, env)
    run.run(label, logical_id, handler, lambda h, e, c, w: h.lambda_handler(e, c, sync=w), wiring)


def front_end_cpu(docs: list[Any], env: dict[str, str]) -> float:
    """The front end alone (detect, extract, clean, chunk) on the same files, in this process."""
    from sluice.bootstrap.ingest import IngestFunctionSettings
    from sluice.errors import QuarantineError
    from sluice.pipeline.process import process_document

    settings = IngestFunctionSettings.from_env(env).ingest.pipeline
    start = time.thread_time()
    for doc in docs:
        with contextlib.suppress(QuarantineError):
            process_document(doc.body, doc.key, settings)
    return time.thread_time() - start


def corpus_figures(stack: Stack, tokenizer: Any) -> dict[str, Any]:
    """What the ingested corpus became, read from ProcessedBucket: chunks, their tokens (cl100k_base)
    and bytes, the sidecars' bytes (what a vector carries besides its embedding), the documents' text."""
    from sluice.pipeline.files import CHUNK_PREFIX, DOCUMENT_PREFIX

    s3 = stack.raw("s3")
    bucket = stack.env("IngestDocumentFunction")["PROCESSED_BUCKET"]
    figures: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key, size = obj["Key"], obj["Size"]
            if key.startswith(DOCUMENT_PREFIX):
                figures["document_text_bytes"] += size
            elif key.startswith(CHUNK_PREFIX) and key.endswith(".metadata.json"):
                figures["sidecar_bytes"] += size
            elif key.startswith(CHUNK_PREFIX):
                text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                figures["chunks"] += 1
                figures["chunk_text_bytes"] += size
                figures["tokens"] += tokenizer.count(text)
    return dict(figures)


def settings_of(stack: Stack) -> dict[str, Any]:
    """The template's settings the capacity model needs, as provisioned: memory, timeout, batch,
    concurrency and pacing of each queue-fed function."""
    out: dict[str, Any] = {}
    for logical_id, spec in stack.functions.items():
        if not spec.sqs_sources:
            continue
        (source,) = spec.sqs_sources
        out[logical_id] = {
            "memory_mb": spec.memory,
            "timeout_seconds": spec.timeout,
            "batch_size": source["batch_size"],
            "batching_window_seconds": source["window"],
            "max_concurrency": source["max_concurrency"],
            "requests_per_second": float(spec.environment.get("SINK_REQUESTS_PER_SECOND", 0)) or None,
        }
    return out


def bench_costs(documents: int = DOCUMENTS, seed: int = SEED) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    from sluice.pipeline.tokens import tokenizer
    from sluice_local import emulators, moto_patches
    from soak.corpus import load_mix

    started = time.perf_counter()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_NAMESPACE="Sluice",
    )
    moto_patches.apply()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="sluice-costs-"))
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        plain = boto3.session.Session(region_name=REGION)
        clients: dict[str, Any] = {}

        def raw(service: str) -> Any:
            if service not in clients:
                clients[service] = plain.client(service)
            return clients[service]

        docs = load_mix(seed, documents, prefix="bench")
        meter = Meter(raw("dynamodb"))
        emulator_cpu = [0.0]

        # stack A: the knowledge base in direct mode, and Kendra
        direct = provision("bench-direct", {}, endpoint, raw, work)
        emulators.install(direct.emulator_dir, s3=meter.session("kb-service").client("s3"))
        _time_emulator(emulator_cpu)
        clear_test_events(direct)
        upload(direct, docs)
        first = Run(direct, meter, emulator_cpu)
        sandbox = ingest(first, "ingest")
        sink(first, "kb-direct", "SyncKnowledgeBaseFunction")
        sink(first, "kendra", "SyncKendraFunction")
        figures = corpus_figures(direct, tokenizer())

        # stack B: the knowledge base in ingestion-job mode (its ingestion counted apart, not reported)
        jobs = provision("bench-jobs", {"KnowledgeBaseSyncMode": "ingestion-job"}, endpoint, raw, work)
        emulators.install(jobs.emulator_dir, s3=meter.session("kb-job-service").client("s3"))
        _time_emulator(emulator_cpu)
        clear_test_events(jobs)
        upload(jobs, docs)
        second = Run(jobs, meter, emulator_cpu)
        ingest(second, SECOND_INGESTION[0])
        sink(second, "kb-job", "SyncKnowledgeBaseFunction")
        emulators.uninstall()

        usage = {label: u.as_dict() for label, u in meter.usage.items() if label not in SECOND_INGESTION}
        usage["ingest"]["sandbox_cpu_seconds"] = sandbox
        usage["ingest"]["front_end_cpu_seconds"] = front_end_cpu(docs, direct.env("IngestDocumentFunction"))
        delivered = {**first.delivered, "kb-job": second.delivered["kb-job"]}
        return {
            "date": time.strftime("%Y-%m-%d"),
            "documents": documents,
            "seed": seed,
            "uploads": len(docs) + sum(d.sidecar is not None for d in docs),
            "megabytes": sum(len(d.body) for d in docs) / 1e6,
            "formats": dict(sorted(Counter(d.key.rsplit(".", 1)[-1] for d in docs).items())),
            **figures,
            "usage": usage,
            "delivered": delivered,
            "settings": settings_of(direct),
            "embedding_dimensions": int(_parameter_default("EmbeddingDimensions")),
            "embedding_model": _parameter_default("EmbeddingModelId"),
            "seconds": time.perf_counter() - started,
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


# -- the report ---------------------------------------------------------------------------------------------

# the functions and services in the report's order: label → what it is
REPORTED = {
    "ingest": "IngestDocumentFunction",
    "kb-direct": "SyncKnowledgeBaseFunction, direct",
    "kb-job": "SyncKnowledgeBaseFunction, ingestion-job",
    "kendra": "SyncKendraFunction",
    "kb-service": "the knowledge base reading chunks/ (direct)",
    "kb-job-service": "the knowledge base reading chunks/ (jobs)",
    "esm:ingest": "event source mapping, ingest queue",
    "esm:kb-direct": "event source mapping, knowledge-base queue",
    "esm:kendra": "event source mapping, Kendra queue",
}


def cost_report(result: dict[str, Any]) -> list[str]:
    """The section's Markdown lines (docs/benchmarks.md)."""
    n = result["documents"]
    per_k = 1000 / n
    usage = result["usage"]
    ingest = usage["ingest"]
    lines = [
        "## AWS requests and CPU per document",
        "",
        f"{n} documents of `make load`'s mix (seed {result['seed']}; {result['megabytes']:.2f} MB; "
        + ", ".join(f"{k} {v}" for k, v in result["formats"].items())
        + f"; {result['uploads']} uploads with the metadata sidecars) through the real handlers, wired from "
        "template.yaml's environment, against moto's server and the Bedrock and Kendra emulators: "
        f"{result['chunks'] / n:.2f} chunks and {result['tokens'] / n:.0f} tokens (cl100k_base) a document. "
        "Requests are counted on each function's botocore session; DynamoDB units are sized from the items "
        "read and written (bench/costs.py). CPU is the handler's thread time after its first invocation, "
        "without the emulators' and the meter's, per message handled. capacity/ reads these figures.",
        "",
        "| who | requests per 1,000 documents | DynamoDB RRU / WRU per 1,000 | warm CPU per message |",
        "|---|---|---:|---:|",
    ]
    for label, name in REPORTED.items():
        if label not in usage:
            continue
        u = usage[label]
        calls = ", ".join(f"{op.split(':')[1]} {count * per_k:,.0f}" for op, count in u["requests"].items())
        units = f"{u['billed'].get('dynamodb.rru', 0) * per_k:,.0f} / {u['billed'].get('dynamodb.wru', 0) * per_k:,.0f}"
        cpu = f"{u['warm_cpu_seconds_per_record'] * 1000:.1f} ms" if "warm_cpu_seconds_per_record" in u else ""
        lines.append(f"| {name} | {calls} | {units} | {cpu} |")
    front_end, sandbox = ingest["front_end_cpu_seconds"] / n, ingest["sandbox_cpu_seconds"] / n
    first = ingest["first_invocation"]
    hot = {k: v * per_k for label in ("ingest", "kb-direct", "kendra") for k, v in usage[label]["gsi_wru"].items()}
    lines += [
        "",
        "Index writes by partition key value (WRU per 1,000 documents; one key value is one partition's "
        "write rate): " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(hot.items(), key=lambda kv: -kv[1])) + ".",
        "",
        f"The ingest function's CPU: the front end alone (`process_document`) {front_end * 1000:.1f} ms a document, "
        f"the parsing sandbox {sandbox * 1000:.1f} ms, the handler "
        f"{ingest['warm_cpu_seconds_per_record'] * 1000:.1f} ms a message warm (its first invocation "
        f"{first['cpu_seconds'] * 1000:.0f} ms for {first['records']} messages).",
    ]
    return lines


def _parameter_default(name: str) -> str:
    from sluice_local.template import load

    return str(load(ROOT / "template.yaml")["Parameters"][name]["Default"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=DOCUMENTS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, help="write the results here as JSON (default: print them)")
    args = parser.parse_args()
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handlers' logs and metrics are not the result
    result = bench_costs(args.documents, args.seed)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text, file=real_stdout)


if __name__ == "__main__":
    main()

"""What the soak suites share: a local stack of their own, uploads, watching the function workers,
draining the stack with `sluice redrive`'s own functions, the check that RawBucket, the registry,
ProcessedBucket and both indexes agree exactly, peak memory, and tables."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.pipeline.files import chunk_key, document_id, s3_uri, sidecar_key, text_key
from sluice.pipeline.metadata import document_of
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkState, SinkStatus
from sluice.sinks.kendra import fingerprint, kendra_id
from sluice_cli.repair import redrive
from sluice_local.emulators import DB_FILE
from sluice_local.runtime import FunctionWorker
from sluice_local.stack import LocalStack
from soak.corpus import Doc

ROOT = Path(__file__).resolve().parents[2]
SINKS = ("kb", "kendra")


def say(text: str) -> None:
    """A line of a soak run's report, shown at once (pytest -s)."""
    print(text, flush=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain text table, numbers right-aligned."""
    body = [
        [f"{c:,}" if isinstance(c, int) else f"{c:,.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows
    ]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str], numeric: Sequence[bool]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))

    numeric = [all(re.fullmatch(r"[\d,.%]+", r[i]) for r in body) if body else False for i in range(len(headers))]
    out = [line([str(h) for h in headers], numeric), line(["-" * w for w in widths], numeric)]
    return "\n".join([*out, *(line(r, numeric) for r in body)]).rstrip()


# -- uploads ---------------------------------------------------------------------------------------


def put(stack: LocalStack, doc: Doc) -> int:
    """The document (and its sidecar first, when it has one); the number of objects written."""
    s3, raw = stack.client("s3"), stack.outputs()["RawBucketName"]
    if doc.sidecar is not None:
        s3.put_object(Bucket=raw, Key=doc.sidecar_key, Body=doc.sidecar)
    s3.put_object(Bucket=raw, Key=doc.key, Body=doc.body)
    return 2 if doc.sidecar is not None else 1


def delete(stack: LocalStack, doc: Doc) -> int:
    s3, raw = stack.client("s3"), stack.outputs()["RawBucketName"]
    s3.delete_object(Bucket=raw, Key=doc.key)
    if doc.sidecar is not None:
        s3.delete_object(Bucket=raw, Key=doc.sidecar_key)
        return 2
    return 1


# -- watching the workers --------------------------------------------------------------------------


@dataclass
class Deliveries:
    """What the event pump handed each function, seen from the test: invocations, those that
    raised, records, records delivered again (SQS redelivery), records reported as failed."""

    invocations: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    redelivered: Counter[str] = field(default_factory=Counter)
    failed_records: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def watch(self, stack: LocalStack) -> None:
        for worker in workers(stack):
            self._wrap(worker)

    def _wrap(self, worker: FunctionWorker) -> None:
        invoke = worker.invoke
        name = worker.spec.logical_id

        def watched(event: dict[str, Any]) -> dict[str, Any]:
            records = event.get("Records") or []
            started = time.monotonic()
            reply = invoke(event)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started
            self.invocations[name] += 1
            self.records[name] += len(records)
            self.redelivered[name] += sum(
                1 for r in records if int((r.get("attributes") or {}).get("ApproximateReceiveCount", "1")) > 1
            )
            if not reply.get("ok"):
                self.raised[name] += 1
                self.failed_records[name] += len(records)
            else:
                self.failed_records[name] += len((reply.get("result") or {}).get("batchItemFailures") or [])
            return reply

        worker.invoke = watched  # type: ignore[method-assign]

    def rows(self) -> list[tuple[str, int, int, int, int, int, float]]:
        return [
            (
                name,
                self.invocations[name],
                self.raised[name],
                self.records[name],
                self.redelivered[name],
                self.failed_records[name],
                self.seconds.get(name, 0.0),
            )
            for name in sorted(self.invocations)
        ]


def workers(stack: LocalStack) -> list[FunctionWorker]:
    return [*stack.workers.values(), *stack.replicas]


# -- the state of the stack ------------------------------------------------------------------------


@dataclass
class World:
    """Everything the stack holds about the corpus, read at one moment."""

    raw: dict[str, tuple[str, str]]  # key → (version id, ETag) of the current version
    records: dict[str, DocumentRecord]  # by doc_id
    processed: dict[str, str]  # ProcessedBucket key → ETag
    kb: dict[str, str]  # chunk URI → status, in the knowledge base emulator
    kendra: dict[str, tuple[str, str]]  # document id → (title, text), in the Kendra emulator
    states: dict[tuple[str, str], SinkState]  # (sink, doc_id) → what the sink recorded


def read_world(stack: LocalStack) -> World:
    outputs = stack.outputs()
    s3 = stack.client("s3")
    raw: dict[str, tuple[str, str]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=outputs["RawBucketName"]):
        for v in page.get("Versions", []):
            if v["IsLatest"]:
                raw[v["Key"]] = (str(v["VersionId"]), str(v["ETag"]).strip('"'))
    processed = {
        o["Key"]: str(o["ETag"]).strip('"')
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=outputs["ProcessedBucketName"])
        for o in page.get("Contents", [])
    }
    dynamodb = stack.client("dynamodb")
    records = {r.doc_id: r for r in DynamoDBRegistry(dynamodb, outputs["DocumentsTableName"]).records()}
    store = DynamoDBSinkStates(dynamodb, outputs["DocumentsTableName"])
    states = {(s.sink, s.doc_id): s for sink in SINKS for status in SinkStatus for s in store.states(sink, status)}
    with sqlite3.connect(stack.emulator_dir / DB_FILE, timeout=30) as db:
        kb = {str(uri): str(status) for uri, status in db.execute("SELECT uri, status FROM kb_chunks")}
        kendra = {str(i): (str(t), str(x)) for i, t, x in db.execute("SELECT id, title, text FROM kendra_docs")}
    return World(raw, records, processed, kb, kendra, states)


@dataclass
class Verdict:
    problems: list[str]
    live: int = 0
    quarantined: int = 0
    deleted: int = 0
    never_recorded: int = 0  # deleted before any event for them was handled: no record, nothing anywhere
    chunks: int = 0
    tokens: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(stack: LocalStack, keys: Iterable[str], reasons: dict[str, str], *, read_texts: bool = True) -> Verdict:
    """Do the registry, ProcessedBucket and both indexes agree exactly with RawBucket, for every key
    the suite ever wrote (``keys``; sidecars are part of their document)? ``reasons``: the documents
    broken on purpose and the quarantine reason each must have."""
    world = read_world(stack)
    outputs = stack.outputs()
    raw_bucket, processed_bucket = outputs["RawBucketName"], outputs["ProcessedBucketName"]
    s3 = stack.client("s3")
    verdict = Verdict([])
    problems = verdict.problems
    wanted_files: set[str] = set()
    wanted_kb: set[str] = set()
    wanted_kendra: set[str] = set()
    documents = sorted({k for k in keys if document_of(k) is None})
    ids = {document_id(s3_uri(raw_bucket, k)): k for k in documents}
    for doc_id, key in ids.items():
        record = world.records.get(doc_id)
        kb, kendra = world.states.get(("kb", doc_id)), world.states.get(("kendra", doc_id))
        if key not in world.raw:
            verdict.deleted += 1
            if record is None:
                verdict.never_recorded += 1
            elif record.status is not Status.DELETED:
                problems.append(f"{key}: deleted from RawBucket, but its record is {record.status.value}")
            for sink, state in (("kb", kb), ("kendra", kendra)):
                if state is not None and (state.status is not SinkStatus.ABSENT or state.held):
                    problems.append(f"{key}: deleted, but the {sink} sink holds {state.status.value} {state.held}")
            continue
        version, etag = world.raw[key]
        if record is None:
            problems.append(f"{key}: in RawBucket, no record")
            continue
        if (record.version_id, record.etag) != (version, etag):
            problems.append(f"{key}: record of version {record.version_id}, RawBucket holds {version}")
        side = world.raw.get(sidecar_key(key))
        if record.metadata_etag != (side[1] if side else None):
            problems.append(f"{key}: record has sidecar ETag {record.metadata_etag}, RawBucket {side}")
        if record.pending_event:
            problems.append(f"{key}: an unannounced transition in the outbox ({record.pending_event})")
        expected = reasons.get(key)
        if expected is not None:
            verdict.quarantined += 1
            if record.status is not Status.QUARANTINED or record.reason != expected:
                problems.append(f"{key}: {record.status.value} ({record.reason}), expected QUARANTINED ({expected})")
            for sink, state in (("kb", kb), ("kendra", kendra)):
                if state is not None and (state.status is not SinkStatus.ABSENT or state.held):
                    problems.append(f"{key}: quarantined, but the {sink} sink holds {state.status.value}")
            continue
        verdict.live += 1
        if record.status is not Status.PROCESSED:
            problems.append(f"{key}: {record.status.value} ({record.reason}: {record.detail}), expected PROCESSED")
            continue
        verdict.chunks += len(record.chunks)
        verdict.tokens += record.token_count
        verdict.kinds[record.kind or "?"] += 1
        files = {text_key(doc_id)} | {
            k for c in record.chunks for k in (chunk_key(doc_id, c), sidecar_key(chunk_key(doc_id, c)))
        }
        wanted_files |= files
        missing = sorted(files - world.processed.keys())
        if missing:
            problems.append(f"{key}: {len(missing)} processed files missing, e.g. {missing[0]}")
        uris = {f"s3://{processed_bucket}/{chunk_key(doc_id, c)}" for c in record.chunks}
        wanted_kb |= uris
        unindexed = sorted(u for u in uris if world.kb.get(u) != "INDEXED")
        if unindexed:
            said = f"{world.kb.get(unindexed[0]) or 'absent'}; the kb sink says {kb.status.value if kb else 'nothing'}"
            problems.append(
                f"{key}: {len(unindexed)} chunks not INDEXED in the knowledge base, e.g. {unindexed[0]} ({said})"
            )
        if kb is None or kb.status is not SinkStatus.INDEXED or set(kb.held) != set(record.chunks) or kb.pending:
            problems.append(f"{key}: kb sink state {kb.status.value if kb else None}, not INDEXED with its chunks")
        identifier = kendra_id(record)
        wanted_kendra.add(identifier)
        held = world.kendra.get(identifier)
        if held is None:
            problems.append(f"{key}: not in the Kendra index")
        elif held[0] != (record.title or record.key)[:1024]:
            problems.append(f"{key}: Kendra holds the title {held[0]!r}, the record {record.title!r}")
        elif read_texts and text_key(doc_id) in world.processed:
            text = s3.get_object(Bucket=processed_bucket, Key=text_key(doc_id))["Body"].read()
            if hashlib.sha256(text).hexdigest() != record.text_sha256:
                problems.append(f"{key}: documents/{doc_id}.txt is not the recorded text")
            elif held[1] != text.decode("utf-8", "replace"):
                problems.append(f"{key}: Kendra holds another version of the text")
        if kendra is None or kendra.status is not SinkStatus.INDEXED or kendra.held[:1] != (fingerprint(record),):
            problems.append(f"{key}: kendra sink state {kendra.status.value if kendra else None}, not INDEXED")
    strays = sorted(world.processed.keys() - wanted_files)
    if strays:
        problems.append(f"ProcessedBucket: {len(strays)} files no live record names, e.g. {strays[:3]}")
    extra_kb = sorted(world.kb.keys() - wanted_kb)
    if extra_kb:
        problems.append(f"knowledge base: {len(extra_kb)} chunks no live record names, e.g. {extra_kb[:3]}")
    extra_kendra = sorted(world.kendra.keys() - wanted_kendra)
    if extra_kendra:
        problems.append(f"Kendra: {len(extra_kendra)} documents no live record names, e.g. {extra_kendra[:3]}")
    unknown = sorted(r.key for d, r in world.records.items() if d not in ids)
    if unknown:
        problems.append(f"registry: {len(unknown)} records of keys never written, e.g. {unknown[:3]}")
    return verdict


def wait_for_records(stack: LocalStack, count: int, timeout: float) -> int:
    """Until the registry holds ``count`` processed or quarantined documents (or the timeout)."""
    registry = DynamoDBRegistry(stack.client("dynamodb"), stack.outputs()["DocumentsTableName"])
    deadline = time.monotonic() + timeout
    while True:
        recorded = registry.count(Status.PROCESSED) + registry.count(Status.QUARANTINED)
        if recorded >= count or time.monotonic() > deadline:
            return recorded
        time.sleep(1.0)


def wait_for_status(stack: LocalStack, doc_id: str, status: Status, timeout: float) -> None:
    registry = DynamoDBRegistry(stack.client("dynamodb"), stack.outputs()["DocumentsTableName"])
    deadline = time.monotonic() + timeout
    while (record := registry.get(doc_id)) is None or record.status is not status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{doc_id} is {record.status.value if record else 'unrecorded'}, not {status.value}")
        time.sleep(0.5)


HELD_BACK = re.compile(
    r"^\S*\b(DocumentBusyError|IdempotencyAlreadyInProgressError|LeaseLostError|StateConflictError):"
)


def held_back(stack: LocalStack) -> Counter[str]:
    """Errors that held deliveries back, counted in the functions' logs (the last line of each
    traceback): a lease or an in-progress idempotency record left by an earlier attempt, a race."""
    found: Counter[str] = Counter()
    for log in (stack.state_dir / "logs").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            match = HELD_BACK.match(line)
            if match:
                found[match[1]] += 1
    return found


# -- draining ---------------------------------------------------------------------------------------


@dataclass
class Drain:
    converged: bool = False
    rounds: int = 0
    moved: Counter[str] = field(default_factory=Counter)  # dead letters moved back, per queue
    requeued: Counter[str] = field(default_factory=Counter)  # failed sink documents queued again
    seconds: float = 0.0
    verdict: Verdict | None = None
    history: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # what kept it from idling, when it never did


def busy(stack: LocalStack) -> list[str]:
    """What keeps a stack from being idle: each function queue's messages waiting, in flight and
    delayed, invocations running, and the sink states still pending or failed (with their checks
    and what may be held), so that a run that never drains says why."""
    lines = []
    outputs = stack.outputs()
    for name, url in outputs.items():
        if name.endswith("QueueUrl"):
            counts = stack.queue_counts(url)
            if any(counts.values()):
                lines.append(f"{name}: " + ", ".join(f"{n} {label}" for label, n in counts.items()))
    if stack.running:
        lines.append(f"{stack.running} invocations running")
    store = DynamoDBSinkStates(stack.client("dynamodb"), outputs["DocumentsTableName"])
    for sink in SINKS:
        for status in (SinkStatus.PENDING, SinkStatus.FAILED):
            for state in store.states(sink, status):
                lines.append(
                    f"{sink} {state.doc_id} {status.value}: checks {state.checks}, pending {len(state.pending)}, "
                    f"maybe {len(state.maybe)}, failures {sorted(state.failures.values())[:2]}, since {state.updated_at}"
                )
    return lines


REDRIVEN = re.compile(r"^(\w+): (\d+) messages? moved back[^,]*(?:, (\d+) failed documents? queued again)?")


def dead_letters(stack: LocalStack) -> dict[str, int]:
    outputs = stack.outputs()
    return {n: stack.queue_depth(u) for n, u in outputs.items() if n.endswith("DeadLetterQueueUrl")}


def drain(
    stack: LocalStack,
    check: Callable[[], Verdict],
    *,
    timeout: float,
    quiet: float = 3.0,
    stuck: float = 420.0,
    log: Callable[[str], None] = print,
) -> Drain:
    """Until the stack is idle, its dead-letter queues empty and ``check`` passes: whenever it is
    idle, what is dead-lettered (and what a sink recorded as failed) goes back with `sluice
    redrive`'s own function. Documents held by a lease or an idempotency record of an attempt that
    failed midway come back only when those expire (330 s, 300 s), so this may take minutes. Gives
    up early when the same problems have stood, idle and with nothing dead-lettered, for ``stuck``
    seconds (longer than any lease or in-progress record lives): nothing is left to change them."""
    started = time.monotonic()
    result = Drain()
    outputs = stack.outputs()
    deadline = started + timeout
    standing: tuple[list[str], float] | None = None
    while time.monotonic() < deadline:
        result.rounds += 1
        stack.wait_idle(timeout=max(1.0, min(120.0, deadline - time.monotonic())), settle=quiet)
        states = DynamoDBSinkStates(stack.client("dynamodb"), outputs["DocumentsTableName"])
        failed = sum(states.count(sink, SinkStatus.FAILED) for sink in SINKS)
        dead = dead_letters(stack)
        if sum(dead.values()) or failed:
            standing = None
            out = io.StringIO()
            redrive(outputs, stack.client, None, out)
            for line in out.getvalue().splitlines():
                match = REDRIVEN.match(line)
                if match:
                    result.moved[match[1]] += int(match[2])
                    result.requeued[match[1]] += int(match[3] or 0)
            note = f"redrive: {out.getvalue().strip()}".replace("\n", "; ")
            result.history.append(f"{time.monotonic() - started:7.1f} s  {note}")
            log(f"  {result.history[-1]}")
            continue
        if not stack.idle():
            continue
        verdict = check()
        result.verdict = verdict
        if verdict.ok:
            result.converged = True
            break
        if standing is None or standing[0] != verdict.problems:
            standing = (verdict.problems, time.monotonic())
        result.history.append(
            f"{time.monotonic() - started:7.1f} s  idle, nothing dead-lettered, {len(verdict.problems)} problems, "
            f"e.g. {verdict.problems[0]}"
        )
        log(f"  {result.history[-1]}")
        if time.monotonic() - standing[1] > stuck:
            log(f"  the same {len(verdict.problems)} problems for {stuck:.0f} s with nothing in flight: giving up")
            break
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
    result.seconds = time.monotonic() - started
    if not result.converged and not stack.idle():
        result.busy = busy(stack)
    return result


# -- memory -----------------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB; 0 when it is gone."""
    value = _status(pid).get("VmHWM", "0 kB").split()[0]
    return int(value) / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process so far (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def memory(stack: LocalStack) -> list[tuple[str, int, float]]:
    """(process, pid, peak RSS MiB) for the test process (which runs the moto server and the event
    pump), every function worker and the parsing sandboxes they started."""
    rows = [
        ("test process (moto server, pump)", os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    ]
    seen: Counter[str] = Counter()
    for worker in workers(stack):
        name = worker.spec.logical_id
        label = f"{name}#{seen[name]}"
        seen[name] += 1
        pid = worker.process.pid
        rows.append((label, pid, peak_rss_mb(pid)))
        rows += [(f"  {label} sandbox", child, peak_rss_mb(child)) for child in children(pid)]
    return rows


def dump(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))

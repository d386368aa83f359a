"""`sluice local demo` (what `make run` runs): the local stack up, the samples uploaded and ingested
and synced into the (emulated) knowledge base and Kendra index, then an unchanged re-upload, an edit
and a delete, a backfill of files written while RawBucket's notifications were off, a report of what
the pipeline and the sinks did, the knowledge base the template
created, a search, a question answered with its citations, `sluice verify`, and one fine-tune
workflow execution from the ingested corpus."""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.pipeline.files import chunk_key, document_id, s3_uri
from sluice.reconcile import describe
from sluice.registry import DocumentRecord, Status
from sluice.sinks import SinkStatus
from sluice_cli import ask, backfill, connectors, finetune, reconcile, verify
from sluice_cli.search import render, search
from sluice_local import emulators
from sluice_local.site import Site
from sluice_local.stack import DEFAULT_PORT, LocalStack, port_is_free

EDIT_KEY = "sluice-overview.md"
EDIT_FROM = "Logs are structured JSON"
EDIT_TO = "Logs are structured JSON, one object per line,"
UNCHANGED_KEY = "release-notes.txt"
DELETE_KEY = "retrieval-guide.html"
SEARCH = "structured JSON logs"  # finds the edited paragraph: the sinks hold the new text
QUESTION = "How are Sluice's logs written?"  # `sluice ask`: answered from the edited paragraph, cited
SITE_INSTANCE = "harbour-site"  # the web connector's instance, crawling samples/site/ served on 127.0.0.1
# in events/: a 2 x 2 search fine-tuning Nova Micro on the corpus's question/answer pairs, the best
# deployed on demand and evaluated against its base model
FINETUNE_INPUT = "finetune_search.json"
# Written while RawBucket's notifications are off, so only a backfill finds them.
BACKFILL = {
    "backfill/berths.md": "# Berths\n\nBerth 4 takes vessels up to 180 metres; berth 5 is for tugs.\n",
    "backfill/pilotage.txt": "Pilots board at the outer buoy from two hours before high water.\n",
    "backfill/radio.md": "# Radio\n\nCall the harbour master on channel 12 before entering.\n",
}
# What the sinks' changes did, per call-log operation, for the report ("checks" are reported apart).
SINK_CHANGES = {
    "IngestKnowledgeBaseDocuments": ("knowledge base", "chunk", "ingested"),
    "DeleteKnowledgeBaseDocuments": ("knowledge base", "chunk", "deleted"),
    "StartIngestionJob": ("knowledge base", "ingestion job", "started"),
    "BatchPutDocument": ("Kendra", "document", "put"),
    "BatchDeleteDocument": ("Kendra", "document", "deleted"),
}


class Progress:
    """One status line, rewritten in place on a terminal; plain lines elsewhere (CI logs)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last = ""

    def update(self, text: str, key: str = "") -> None:
        """Show ``text``; off a terminal, only when ``key`` (what changed) differs from last time."""
        if self.tty:
            self.out.write("\r\033[K" + text)
            self.out.flush()
        elif (key or text) != self._last:
            self.out.write(text + "\n")
        self._last = key or text

    def done(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write(text + "\n")
        self.out.flush()


@dataclass
class DemoResult:
    records: list[DocumentRecord]
    events: Counter[str]
    ingest_seconds: float
    steps: list[str] = field(default_factory=list)
    processed_objects: int = 0
    dead_letters: int = 0
    settled: bool = True
    calls: list[dict[str, Any]] = field(default_factory=list)  # every call the sinks made, in order
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)  # sink → documents by status
    hits: list[Any] = field(default_factory=list)
    finetune: finetune.FineTuneRun | None = None
    notifications: list[str] = field(default_factory=list)  # what the fine-tune topic sent
    reconciled: list[str] = field(default_factory=list)  # the two reconciliation reports
    knowledge_base: list[str] = field(default_factory=list)  # what the template created
    answer: ask.Answer | None = None
    verified: list[verify.StepResult] = field(default_factory=list)


def drain_events(stack: LocalStack) -> list[dict[str, Any]]:
    """Every event the stack's buses published since the last drain (read from the local tap)."""
    sqs = stack.client("sqs")
    events: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=stack.tap_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return events
        for message in batch:
            events.append(json.loads(message["Body"]))
        sqs.delete_message_batch(
            QueueUrl=stack.tap_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def _wait(
    stack: LocalStack,
    registry: DynamoDBRegistry,
    versions: dict[str, str | None],
    progress: Progress,
    label: str,
    timeout: float = 120.0,
) -> bool:
    """Until every uploaded key has a record of its uploaded version (or of its deletion)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        records = {r.key: r for r in registry.records()}
        settled = sum(
            1
            for key, version in versions.items()
            if key in records
            and (records[key].version_id == version or (version is None and records[key].status is Status.DELETED))
        )
        progress.update(
            f"  {label}: {settled}/{len(versions)} documents settled ({time.monotonic() - start:.1f} s)",
            key=f"{label}{settled}",
        )
        if settled == len(versions) and stack.wait_idle(timeout=5, settle=0.5):
            progress.done(f"  {label}: {settled}/{len(versions)} documents settled in {time.monotonic() - start:.1f} s")
            return True
        time.sleep(0.2)
    progress.done(f"  {label}: timed out after {timeout:.0f} s")
    return False


def sink_changes(stack: LocalStack, since: int = 0) -> tuple[int, str]:
    """What the sinks changed in the indexes after the first ``since`` calls of the call log, and
    the log's length now."""
    calls = emulators.read_calls(stack.emulator_dir)
    items: Counter[str] = Counter()
    for call in calls[since:]:
        if call["operation"] in SINK_CHANGES and call["status"] == 200:
            items[call["operation"]] += call["items"]
    by_sink: dict[str, list[str]] = {}
    for op, n in items.items():
        sink, unit, verb = SINK_CHANGES[op]
        by_sink.setdefault(sink, []).append(f"{n} {unit}{'s' if n != 1 else ''} {verb}")
    summary = "; ".join(f"{sink} {', '.join(parts)}" for sink, parts in sorted(by_sink.items()))
    return len(calls), summary or "no sink calls"


def run_demo(stack: LocalStack, samples: Path, out: TextIO) -> DemoResult:
    outputs = stack.outputs()
    raw, table = outputs["RawBucketName"], outputs["DocumentsTableName"]
    s3 = stack.client("s3")
    registry = DynamoDBRegistry(stack.client("dynamodb"), table)
    progress = Progress(out)
    files = sorted(p for p in samples.iterdir() if p.is_file() and not p.name.startswith("."))
    out.write(f"Uploading {len(files)} files from {samples}/ to s3://{raw}/\n")
    drain_events(stack)
    started = time.monotonic()
    versions = {p.name: s3.put_object(Bucket=raw, Key=p.name, Body=p.read_bytes()).get("VersionId") for p in files}
    settled = _wait(stack, registry, versions, progress, "ingesting")
    ingest_seconds = time.monotonic() - started
    events = Counter(e["detail-type"] for e in drain_events(stack))
    result = DemoResult(records=[], events=events, ingest_seconds=ingest_seconds, settled=settled)
    logged, loaded = sink_changes(stack)
    steps = [f"initial load: {loaded}"]

    out.write("Changing things\n")
    unchanged = samples / UNCHANGED_KEY
    if unchanged.is_file():
        version = s3.put_object(Bucket=raw, Key=UNCHANGED_KEY, Body=unchanged.read_bytes()).get("VersionId")
        result.settled &= _wait(
            stack, registry, {UNCHANGED_KEY: version}, progress, f"re-upload {UNCHANGED_KEY} unchanged"
        )
        announced = drain_events(stack)
        logged, changes = sink_changes(stack, logged)
        steps.append(f"re-uploaded {UNCHANGED_KEY} unchanged: {len(announced)} events; {changes}")
    edited = samples / EDIT_KEY
    if edited.is_file() and EDIT_FROM in edited.read_text():
        before = registry.get(document_id(s3_uri(raw, EDIT_KEY)))
        body = edited.read_text().replace(EDIT_FROM, EDIT_TO, 1).encode()
        version = s3.put_object(Bucket=raw, Key=EDIT_KEY, Body=body).get("VersionId")
        result.settled &= _wait(stack, registry, {EDIT_KEY: version}, progress, f"edit one paragraph of {EDIT_KEY}")
        changed = [e for e in drain_events(stack) if e["detail-type"] == "Document Changed"]
        if changed and before is not None:
            chunks = changed[-1]["detail"]["chunks"]
            added, removed, total = len(chunks["added"]), len(chunks["removed"]), chunks["count"]
            logged, changes = sink_changes(stack, logged)
            steps.append(
                f"edited one paragraph of {EDIT_KEY}: {added} chunk{'s' if added != 1 else ''} added, "
                f"{removed} removed, {total - added} of {total} untouched; {changes}"
            )
    if (samples / DELETE_KEY).is_file():
        s3.delete_object(Bucket=raw, Key=DELETE_KEY)
        result.settled &= _wait(stack, registry, {DELETE_KEY: None}, progress, f"delete {DELETE_KEY}")
        deleted = [e for e in drain_events(stack) if e["detail-type"] == "Document Deleted"]
        if deleted:
            removed = len(deleted[-1]["detail"]["chunks"]["removed"])
            logged, changes = sink_changes(stack, logged)
            steps.append(f"deleted {DELETE_KEY}: {removed} chunk{'s' if removed != 1 else ''} removed; {changes}")
    site_dir = samples / "site"
    if site_dir.is_dir() and "ConnectorConfigParameterName" in outputs:
        logged, synced = _web_connector(stack, Site.from_directory(site_dir), registry, progress, logged, out)
        steps += synced
        result.settled &= bool(synced)
    steps += _backfill(stack, registry, progress)
    result.steps = steps
    result.reconciled = _reconcile(stack, registry, progress)
    result.records = sorted(registry.records(), key=lambda r: r.key)
    paginator = s3.get_paginator("list_objects_v2")
    result.processed_objects = sum(
        len(page.get("Contents", [])) for page in paginator.paginate(Bucket=outputs["ProcessedBucketName"])
    )
    result.dead_letters = sum(stack.queue_depth(url) for name, url in outputs.items() if "DeadLetterQueue" in name)
    result.calls = emulators.read_calls(stack.emulator_dir)
    states = DynamoDBSinkStates(stack.client("dynamodb"), table)
    for sink in ("kb", "kendra"):
        result.sinks[sink] = {status.value.lower(): states.count(sink, status) for status in SinkStatus}
    emulators.install(stack.emulator_dir)  # this process asks the emulated services too
    result.hits = search(outputs, stack.client, SEARCH, top_k=2)
    result.knowledge_base = _knowledge_base(stack)
    result.answer = ask.ask(outputs, stack.client, QUESTION, top_k=3)
    progress.update("sluice verify --local: a canary through every step")
    result.verified = verify.verify(outputs, stack.client, timeout=60, poll=0.3)
    progress.done("sluice verify --local: " + ("passed" if verify.passed(result.verified) else "FAILED"))
    result.finetune, result.notifications = _fine_tune(stack, samples.parent / "events" / FINETUNE_INPUT, out)
    return result


def _knowledge_base(stack: LocalStack) -> list[str]:
    """The knowledge base, vector index and data source the template created, as the services describe them."""
    outputs = stack.outputs()
    if "KnowledgeBaseId" not in outputs:
        return []
    agent = stack.client("bedrock-agent")
    kb = agent.get_knowledge_base(knowledgeBaseId=outputs["KnowledgeBaseId"])["knowledgeBase"]
    vector = kb["knowledgeBaseConfiguration"].get("vectorKnowledgeBaseConfiguration") or {}
    lines = [f"knowledge base {kb['knowledgeBaseId']} ({kb['name']}): {kb['status']}"]
    lines.append(f"  embeds with {vector.get('embeddingModelArn', '?').rsplit('/', 1)[-1]}")
    if outputs.get("VectorIndexArn"):
        index = stack.client("s3vectors").get_index(indexArn=outputs["VectorIndexArn"])["index"]
        keys = ", ".join(index["metadataConfiguration"]["nonFilterableMetadataKeys"])
        lines.append(
            f"  S3 Vectors index {index['indexName']}: {index['dimension']} x {index['dataType']}, "
            f"{index['distanceMetric']}; non-filterable {keys}"
        )
    ds = agent.get_data_source(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=outputs["KnowledgeBaseDataSourceId"])
    source = ds["dataSource"]
    prefixes = source["dataSourceConfiguration"]["s3Configuration"].get("inclusionPrefixes", [])
    chunking = source["vectorIngestionConfiguration"]["chunkingConfiguration"]["chunkingStrategy"]
    lines.append(
        f"  data source {source['dataSourceId']} over {', '.join(prefixes)}: chunking {chunking}, "
        f"deletion policy {source.get('dataDeletionPolicy', '?')}"
    )
    return lines


def _backfill(stack: LocalStack, registry: DynamoDBRegistry, progress: Progress) -> list[str]:
    """Files written while RawBucket's notifications were off reach nothing until `sluice backfill`
    lists the bucket (a Distributed Map) and rechecks what Sluice lacks, at a set rate."""
    outputs = stack.outputs()
    if "BackfillStateMachineArn" not in outputs:
        return []
    s3, raw = stack.client("s3"), outputs["RawBucketName"]
    saved = s3.get_bucket_notification_configuration(Bucket=raw)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={})
    try:
        versions = {key: s3.put_object(Bucket=raw, Key=key, Body=body.encode()).get("VersionId")
                    for key, body in BACKFILL.items()}  # fmt: skip
    finally:
        s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration=saved)
    progress.update("sluice backfill --local: the bucket listed, what Sluice lacks rechecked")
    arn = backfill.start(outputs, stack.client, backfill.request("", 50, False, None))
    found = backfill.follow(outputs, stack.client, arn, None, timeout=120)
    settled = _wait(stack, registry, versions, progress, "backfilled files ingesting")
    progress.done(f"sluice backfill --local: {found.status.lower()}")
    p = found.progress or {}
    return [
        f"backfill of {len(BACKFILL)} files written with notifications off: {found.status.lower()}, "
        f"listed {p.get('listed', 0)}, queued {p.get('queued', 0)}, unchanged {p.get('unchanged', 0)}, "
        f"skipped {p.get('skipped', 0)}; " + ("all ingested" if settled else "NOT all ingested")
    ]


def _reconcile(stack: LocalStack, registry: DynamoDBRegistry, progress: Progress) -> list[str]:
    """Lose a chunk file and a Kendra document behind Sluice's back; reconcile finds and repairs both,
    and the next pass finds nothing."""
    outputs = stack.outputs()
    victim = next((r for r in registry.records(Status.PROCESSED) if r.chunks), None)
    if victim is None or "KendraIndexId" not in outputs:
        return []
    progress.update("reconciling a corrupted stack")
    lost = chunk_key(victim.doc_id, victim.chunks[0])
    stack.client("s3").delete_object(Bucket=outputs["ProcessedBucketName"], Key=lost)
    stack.client("kendra").batch_delete_document(IndexId=outputs["KendraIndexId"], DocumentIdList=[victim.source_uri])
    environment = stack.functions["ReconcileFunction"].environment
    repaired = reconcile.run_here(environment, stack.client, dry_run=False)
    stack.wait_idle(timeout=60)
    again = reconcile.run_here(environment, stack.client, dry_run=False)
    progress.done(f"reconciled: {repaired.drift} drift found and repaired, then {again.drift}")
    return [
        f"lost behind Sluice's back: s3://{outputs['ProcessedBucketName']}/{lost} and Kendra's {victim.source_uri}",
        *describe(repaired),
        *describe(again),
    ]


def _web_connector(
    stack: LocalStack, site: Site, registry: DynamoDBRegistry, progress: Progress, logged: int, out: TextIO
) -> tuple[int, list[str]]:
    """The web connector crawls a small site served here, twice: the pages it lands flow through the
    pipeline to the sinks; then one page is edited and one removed, and only those change."""
    outputs = stack.outputs()
    raw, prefix = outputs["RawBucketName"], f"connectors/{SITE_INSTANCE}/"
    s3 = stack.client("s3")
    site.start()
    try:
        settings = {"start_urls": [site.url], "max_depth": 2, "allowed_networks": ["127.0.0.1/32"]}
        config = {"instances": [{"name": SITE_INSTANCE, "type": "web", "settings": settings}]}
        stack.client("ssm").put_parameter(
            Name=outputs["ConnectorConfigParameterName"], Value=json.dumps(config), Type="String", Overwrite=True
        )
        out.write(f"Web connector: sluice connector run {SITE_INSTANCE} --local (the site at {site.url})\n")
        steps = []
        for label, change in (("first sync", None), ("after an edit and a removal", _edit_site)):
            if change is not None:
                change(site)
            before = _landed(s3, raw, prefix)
            (run,) = connectors.run_here(outputs, stack.client, SITE_INSTANCE)
            after = _landed(s3, raw, prefix)
            versions = {key: version for key, version in after.items() if before.get(key) != version}
            versions |= dict.fromkeys(before.keys() - after.keys())
            if run.stopped != "done":
                out.write(f"  the web connector stopped ({run.stopped}): {'; '.join(run.errors)}\n")
                return logged, []
            if not _wait(stack, registry, versions, progress, f"web connector, {label}"):
                return logged, []
            logged, changes = sink_changes(stack, logged)
            steps.append(
                f"web connector {SITE_INSTANCE}, {label}: {run.landed} page{'s' if run.landed != 1 else ''} landed, "
                f"{run.unchanged} unchanged, "
                f"{run.deleted + run.swept} deleted; {changes}"
            )
        return logged, steps
    finally:
        site.stop()


def _edit_site(site: Site) -> None:
    site.put("/tides.html", site.pages["/tides.html"].replace(b"14:20", b"15:05"))
    site.remove("/harbour-rules.html")


def _landed(s3: Any, bucket: str, prefix: str) -> dict[str, str | None]:
    """The documents under ``prefix`` (not their sidecars) and their versions."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {
        key: s3.head_object(Bucket=bucket, Key=key).get("VersionId")
        for key in keys
        if not key.endswith(".metadata.json")
    }


def _fine_tune(stack: LocalStack, path: Path, out: TextIO) -> tuple[finetune.FineTuneRun | None, list[str]]:
    """One execution of the fine-tune workflow, as a console user would start it (waits of 1 s)."""
    if not path.is_file() or "FineTuneStateMachineArn" not in stack.outputs():
        return None, []
    payload = {**json.loads(path.read_text()), "poll_seconds": 1}
    out.write(f"Fine-tuning: an execution of the workflow with events/{path.name} (job checks every 1 s)\n")
    arn = finetune.start(stack.outputs(), stack.client, payload, name=f"demo-{int(time.time())}")
    run = finetune.follow(stack.client, arn, out, timeout=180)
    notifications = []
    if stack.notification_queue_url:
        sqs = stack.client("sqs")
        for message in sqs.receive_message(
            QueueUrl=stack.notification_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            body = json.loads(message["Body"])
            notifications.append(f"{body.get('Subject')}: {body.get('Message')}")
    return run, notifications


def _histogram(values: list[int], limit: int, out: TextIO) -> None:
    bins = 4
    width = max(1, limit // bins)
    counts = Counter(min(v // width, bins - 1) for v in values)
    peak = max(counts.values()) if counts else 1
    for b in range(bins):
        low, high = b * width, (b + 1) * width - 1 if b < bins - 1 else limit
        bar = "█" * round(20 * counts[b] / peak) if counts[b] else ""
        out.write(f"    {low:>5}-{high:<5} {bar:<20} {counts[b]}\n")


def report(stack: LocalStack, result: DemoResult, out: TextIO, max_tokens: int) -> None:
    out.write("\nDocuments\n")
    width = max((len(r.key) for r in result.records), default=10)
    out.write(f"  {'key':<{width}}  {'type':<8} {'status':<11} {'chunks':>6} {'tokens':>7} {'pages':>5}  title\n")
    for r in result.records:
        pages = str(r.page_count) if r.page_count else ""
        out.write(
            f"  {r.key:<{width}}  {r.kind or '':<8} {r.status.value.lower():<11} {len(r.chunks):>6} {r.token_count:>7} "
            f"{pages:>5}  {r.title or ''}\n"
        )
    processed = [r for r in result.records if r.status is Status.PROCESSED]
    sizes = _chunk_sizes(stack, processed)
    if sizes:
        out.write(
            f"\nChunks: {len(sizes)} in {len(processed)} documents; tokens per chunk min {min(sizes)}, "
            f"median {int(statistics.median(sizes))}, max {max(sizes)} (limit {max_tokens})\n"
        )
        _histogram(sizes, max_tokens, out)
    quarantined = [r for r in result.records if r.status is Status.QUARANTINED]
    if quarantined:
        out.write("\nQuarantined (recorded, announced, acknowledged; never retried in a loop)\n")
        for r in quarantined:
            out.write(f"  {r.key:<{width}}  {r.reason}: {r.detail}\n")
    out.write("\nEvents published on the bus during ingestion\n")
    for name, count in sorted(result.events.items()):
        out.write(f"  {name:<22} {count}\n")
    if result.steps:
        out.write("\nWhat reached the sinks, step by step\n")
        for step in result.steps:
            out.write(f"  {step}\n")
    out.write("\nSinks (documents by state; every call validated against the service's model)\n")
    for sink, counts in result.sinks.items():
        out.write(f"  {sink:<7} " + "  ".join(f"{status} {n}" for status, n in counts.items()) + "\n")
    calls = Counter((c["service"], c["operation"], c["status"]) for c in result.calls)
    items: Counter[tuple[str, str, int]] = Counter()
    for c in result.calls:
        items[(c["service"], c["operation"], c["status"])] += c["items"]
    out.write("  calls in the log (.sluice/local/emulators/calls.jsonl):\n")
    for (service, operation, status), n in sorted(calls.items()):
        out.write(f"    {service:<22} {operation:<30} {n:>3} calls {items[(service, operation, status)]:>4} items")
        out.write(f"  HTTP {status}\n" if status != 200 else "\n")
    if result.knowledge_base:
        out.write("\nThe knowledge base template.yaml created (KnowledgeBaseMode=create)\n")
        for line in result.knowledge_base:
            out.write(f"  {line}\n")
    out.write(f"\nsluice search {SEARCH!r} --local --top-k 2\n")
    render(SEARCH, result.hits, out, as_json=False, width=96)
    if result.answer is not None:
        out.write(f"\nsluice ask {QUESTION!r} --local --top-k 3\n")
        buffer = io.StringIO()
        ask.render(result.answer, buffer, as_json=False)
        out.write("".join(f"  {line}\n" if line else "\n" for line in buffer.getvalue().splitlines()))
    if result.verified:
        out.write("\nsluice verify --local\n")
        show = verify.printer(out)
        for outcome in result.verified:
            show(outcome)
    if result.reconciled:
        out.write("\nsluice reconcile --local, twice\n")
        for line in result.reconciled:
            out.write(f"  {line}\n")
    if result.finetune is not None:
        out.write(f"\nsluice finetune events/{FINETUNE_INPUT} --local --poll-seconds 1\n")
        finetune.render(result.finetune, out)
        for note in result.notifications:
            first, *rest = note.splitlines() or [""]
            out.write(f"  notification     {first}\n" + "".join(f"                   {line}\n" for line in rest))
    out.write(
        f"\nProcessedBucket holds {result.processed_objects} objects; dead-letter queues hold {result.dead_letters}.\n"
        f"Ingestion of the samples took {result.ingest_seconds:.1f} s from the first upload to a settled pipeline.\n"
    )


def _chunk_sizes(stack: LocalStack, records: list[DocumentRecord]) -> list[int]:
    """Token counts of every stored chunk, read back from the sidecars in ProcessedBucket."""
    s3 = stack.client("s3")
    bucket = stack.outputs()["ProcessedBucketName"]
    sizes = []
    for r in records:
        for h in r.chunks:
            body = s3.get_object(Bucket=bucket, Key=f"chunks/{r.doc_id}/{h}.txt.metadata.json")["Body"].read()
            sizes.append(int(json.loads(body)["metadataAttributes"]["tokens"]["value"]["numberValue"]))
    return sizes


def main(root: Path, *, port: int | None, serve: bool, out: TextIO = sys.stdout) -> int:
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else 0
    out.write("Sluice local demo: moto on 127.0.0.1, resources from template.yaml, the real handlers\n")
    started = time.monotonic()
    stack = LocalStack(root, port=port)
    stack.start()
    try:
        counts = Counter(res.type.split("::")[-1] for res in stack.resolver.resources.values())
        out.write(
            f"  stack {stack.stack_name} at {stack.endpoint} ({time.monotonic() - started:.1f} s): "
            + ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
            + "\n"
        )
        out.write(f"  not emulated locally: {', '.join(stack.skipped)}\n")
        result = run_demo(stack, root / "samples", out)
        max_tokens = int(stack.resolver.parameters.get("MaxTokens", 512))
        report(stack, result, out, max_tokens)
        if serve:
            _serve(stack, out)
    finally:
        stack.stop()
    out.write(f"Done in {time.monotonic() - started:.1f} s.\n")
    tuned = result.finetune is None or result.finetune.status == "SUCCEEDED"
    verified = verify.passed(result.verified) if result.verified else True
    return 0 if result.settled and result.dead_letters == 0 and tuned and verified else 1


def _serve(stack: LocalStack, out: TextIO) -> None:
    raw = stack.outputs()["RawBucketName"]
    out.write(
        f"\nThe stack stays up (Ctrl-C to stop). Drop more files in:\n"
        f"  aws --endpoint-url {stack.endpoint} s3 cp FILE s3://{raw}/\n"
        f"  sluice status --local\n"
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        out.write("\nstopping\n")

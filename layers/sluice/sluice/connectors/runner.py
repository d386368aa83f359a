"""One sync of one connector instance: the changes since its cursor landed in RawBucket.

    item       → connectors/{instance}/{item_id}.{ext} + .metadata.json (title, source URL, author,
                 timestamps, access list), written only when its fingerprint changed
    tombstone  → both objects deleted
    checkpoint → the cursor committed: everything before it has landed

Why nothing is lost or duplicated when a run is interrupted (time or item budget, a crash, a rate
limit): the cursor is committed only at checkpoints, after the items before them landed; the next
run resumes from it and re-yields what came after, and re-landing an item whose fingerprint is
recorded writes nothing. For complete-listing sources a pass may span runs (its id is kept until
the listing is exhausted); only a finished pass sweeps what it did not see, and a sweep that would
delete more than ``max_delete_share`` of the instance's items deletes nothing and says why.

Only one run per instance at a time: a lease on the instance's run record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sluice.connectors import (
    EXTENSIONS,
    ITEM_ID,
    MAX_ITEM_ID,
    AttributeValue,
    Checkpoint,
    Connector,
    ConnectorConfigError,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    Unchanged,
    connector_class,
)
from sluice.connectors.http import HttpClient, HttpError, RateLimitedError
from sluice.pipeline.metadata import MAX_LIST, MAX_STRING, RESERVED, SIDECAR_SUFFIX

PREFIX = "connectors"
CONTENT_TYPES = {
    "html": "text/html",
    "md": "text/markdown",
    "txt": "text/plain",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
MAX_ERRORS = 20  # kept per run record
SAVE_SECONDS = 5.0  # the cursor is saved at most this often during a run, and when it ends
MAX_CURSOR_BYTES = 350_000  # with the last run's report, under DynamoDB's 400 KB item
LEASE_GRACE = 60.0  # the lease outlives the time budget by this much


@dataclass
class ItemState:
    item_id: str
    key: str  # where it landed
    fingerprint: str
    seen: str = ""  # the last pass that listed it


@dataclass
class RunState:
    cursor: str | None = None
    pass_id: str = ""  # the pass in progress (complete-listing sources)
    last_run: dict[str, Any] = field(default_factory=dict)


class ConnectorState(Protocol):
    def acquire(self, instance: str, owner: str, until: float, now: float) -> bool:
        """Take the instance's lease (free, or expired at ``now``)."""
        ...

    def release(self, instance: str, owner: str) -> None: ...

    def run_state(self, instance: str) -> RunState: ...

    def save_run(self, instance: str, run: RunState, owner: str, until: float) -> None:
        """Save while holding the lease (and extend it); SourceError when another run took it."""
        ...

    def save_report(self, instance: str, report: dict[str, Any]) -> None:
        """Only the last run's report (a run that never started)."""
        ...

    def item(self, instance: str, item_id: str) -> ItemState | None: ...

    def put_item(self, instance: str, item: ItemState) -> None: ...

    def mark_seen(self, instance: str, item_id: str, pass_id: str) -> None: ...

    def delete_item(self, instance: str, item_id: str) -> None: ...

    def items(self, instance: str) -> Iterator[ItemState]: ...


class Landing(Protocol):
    """RawBucket, seen by a connector run (sluice.adapters.aws.s3.S3BucketWriter fits)."""

    def put(self, key: str, body: bytes, content_type: str) -> None: ...

    def delete(self, keys: list[str]) -> None: ...


@dataclass
class RunReport:
    instance: str
    type: str
    started_at: str
    seconds: float = 0.0
    stopped: str = "done"  # done | item budget | time budget | rate limited | error | busy
    landed: int = 0
    unchanged: int = 0
    deleted: int = 0
    swept: int = 0
    skipped: int = 0  # items the runner refused (an unsafe id, an unreadable principal)
    pass_complete: bool = False
    cursor: str | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as the run record keeps it (next to a cursor of up to 300 KB, in a 400 KB item)."""
        data = asdict(self)
        if data["cursor"] and len(data["cursor"]) > 200:
            data["cursor"] = data["cursor"][:200] + "…"
        data["errors"] = [e if len(e) <= 500 else e[:499] + "…" for e in self.errors[:MAX_ERRORS]]
        return data


def key_for(instance: str, item: Item) -> str:
    return f"{PREFIX}/{instance}/{item.item_id}.{item.ext}"


def sidecar(item: Item, instance: Instance) -> dict[str, Any]:
    """Bedrock's metadata convention (what sluice.pipeline.metadata reads): attributes, access list, title,
    source URL. Attributes a document may not carry are dropped here rather than quarantine it."""
    attributes: dict[str, Any] = {"connector": instance.type, "connector_instance": instance.name}
    for name, given in (("author", item.author), ("created_at", item.created_at), ("updated_at", item.updated_at)):
        if given:
            attributes[name] = given
    for name, raw in item.attributes.items():
        if name in RESERVED or name in attributes:
            continue
        value = _attribute(raw)
        if value is not None:
            attributes[name] = value
    acl = [_principal(p, "ALLOW") for p in item.allow] + [_principal(p, "DENY") for p in item.deny]
    doc: dict[str, Any] = {"metadataAttributes": attributes}
    if acl:
        doc["accessControlList"] = acl
    if item.title:
        doc["title"] = item.title[:MAX_STRING]
    if item.source_url:
        doc["sourceUrl"] = item.source_url
    return doc


def _attribute(raw: AttributeValue) -> AttributeValue | None:
    if isinstance(raw, str):
        return raw[:MAX_STRING] or None
    if isinstance(raw, list):
        values = [str(v)[:MAX_STRING] for v in raw if str(v)][:MAX_LIST]
        return values or None
    return raw


def _principal(token: str, access: str) -> dict[str, str]:
    kind, _, name = token.partition(":")
    if kind.lower() not in ("user", "group") or not name:
        raise SourceError(f"principal {token!r} is not user:NAME or group:NAME")
    return {"name": name, "type": kind.upper(), "access": access}


def fingerprint(body: bytes, metadata: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(body)
    digest.update(b"\0" + json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


class ConnectorRunner:
    def __init__(
        self,
        instance: Instance,
        connector: Connector,
        state: ConnectorState,
        landing: Landing,
        *,
        seconds: float,
        clock: Callable[[], float] = time.time,
        owner: str = "run",
    ) -> None:
        self.instance = instance
        self.connector = connector
        self.state = state
        self.landing = landing
        self.seconds = seconds  # the time budget: stop at a checkpoint-safe place after it
        self.clock = clock
        self.owner = owner

    def run(self) -> RunReport:
        started = self.clock()
        name = self.instance.name
        report = RunReport(name, self.instance.type, _iso(started))
        try:
            if not self.state.acquire(name, self.owner, until=started + self.seconds + LEASE_GRACE, now=started):
                report.stopped = "busy"
                report.errors.append("another run of this instance holds the lease")
                return report
        except Exception as exc:  # noqa: BLE001 - recorded; the other instances still run
            return _failed(report, exc)
        try:
            run = self.state.run_state(name)
            if not run.pass_id:
                run.pass_id = f"{_iso(started)}/{uuid.uuid4().hex[:8]}"
            self._sync(run, report, started)
            report.cursor = run.cursor
            report.seconds = round(self.clock() - started, 3)
            run.last_run = report.to_json()
            self._save(run)
        except Exception as exc:  # noqa: BLE001 - the state could not be read or saved: recorded below
            _failed(report, exc)
            self._record(report)
        finally:
            try:
                self.state.release(name, self.owner)
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own
                report.errors.append(f"could not release the lease: {exc}")
        return report

    def _save(self, run: RunState) -> None:
        self.state.save_run(self.instance.name, run, owner=self.owner, until=self.clock() + self.seconds + LEASE_GRACE)

    def _record(self, report: RunReport) -> None:
        with contextlib.suppress(Exception):  # the report is also returned and logged
            self.state.save_report(self.instance.name, report.to_json())

    def _sync(self, run: RunState, report: RunReport, started: float) -> None:
        complete = self.connector.complete_listing
        ended_with: str | None = None
        saved = started
        forgotten = 0  # Unchanged for items the state does not hold (complete-listing sources)
        try:
            for change in self.connector.changes(run.cursor):
                if isinstance(change, Checkpoint):
                    if len(change.cursor.encode()) > MAX_CURSOR_BYTES:
                        raise SourceError(
                            f"the connector's cursor is {len(change.cursor.encode())} bytes; "
                            f"the state keeps at most {MAX_CURSOR_BYTES}"
                        )
                    # Kept in memory and saved at most every SAVE_SECONDS (a cursor may weigh
                    # 300 KB) and when the run ends: a crash in between only repeats work the
                    # fingerprints then skip.
                    run.cursor = change.cursor
                    ended_with = change.cursor if change.ends_pass else None
                    if self.clock() - saved >= SAVE_SECONDS:
                        self._save(run)
                        saved = self.clock()
                    continue
                if report.landed + report.deleted >= self.instance.max_items_per_run:
                    report.stopped = "item budget"
                    return
                if self.clock() - started >= self.seconds:
                    report.stopped = "time budget"
                    return
                try:
                    forgotten += self._apply(change, run.pass_id if complete else "", report)
                except SourceError as exc:  # this item only: the rest of the run goes on
                    report.skipped += 1
                    report.errors.append(f"{change.item_id} skipped: {exc}")
            report.pass_complete = True
            if complete:
                self._sweep(run.pass_id, report)
                run.pass_id = ""
                # The next pass lists everything again, from the connector's carry-over. Unless
                # the connector called items unchanged that the state does not hold (state lost or
                # rolled back): then its carry-over is wrong, and the next pass reads everything.
                run.cursor = ended_with if not forgotten else None
                if forgotten:
                    report.errors.append(
                        f"{forgotten} items the source called unchanged were not in the state; "
                        "the next pass reads everything again"
                    )
        except RateLimitedError as exc:
            report.stopped = "rate limited"
            report.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - one instance's failure never stops the others
            _failed(report, exc)

    def _apply(self, change: Item | Tombstone | Unchanged, pass_id: str, report: RunReport) -> int:
        """Land, keep or delete one item; 1 when an Unchanged item is unknown to the state."""
        name = self.instance.name
        if not (ITEM_ID.match(change.item_id) and len(change.item_id) <= MAX_ITEM_ID):
            raise SourceError(f"item id {change.item_id[:100]!r} is not a safe key part")
        known = self.state.item(name, change.item_id)
        if isinstance(change, Unchanged):
            report.unchanged += 1
            if known is None:
                return 1 if pass_id else 0
            if pass_id:
                self.state.mark_seen(name, change.item_id, pass_id)
            return 0
        if isinstance(change, Tombstone):
            if known is not None:
                self.landing.delete([known.key, known.key + SIDECAR_SUFFIX])
                self.state.delete_item(name, change.item_id)
                report.deleted += 1
            return 0
        if change.ext not in EXTENSIONS:
            raise SourceError(f"extension {change.ext!r} is not one the pipeline reads")
        metadata = sidecar(change, self.instance)
        printed = fingerprint(change.body, metadata)
        key = key_for(name, change)
        if known is not None and known.fingerprint == printed and known.key == key:
            if pass_id:
                self.state.mark_seen(name, change.item_id, pass_id)
            report.unchanged += 1
            return 0
        # The sidecar first: the document's own event then finds the metadata it belongs with.
        self.landing.put(key + SIDECAR_SUFFIX, json.dumps(metadata, ensure_ascii=False).encode(), "application/json")
        self.landing.put(key, change.body, CONTENT_TYPES.get(change.ext, "application/octet-stream"))
        if known is not None and known.key != key:
            self.landing.delete([known.key, known.key + SIDECAR_SUFFIX])
        self.state.put_item(name, ItemState(change.item_id, key, printed, pass_id))
        report.landed += 1
        return 0

    def _sweep(self, pass_id: str, report: RunReport) -> None:
        items = list(self.state.items(self.instance.name))
        unseen = [i for i in items if i.seen != pass_id]
        if not unseen:
            return
        share = self.instance.max_delete_share
        # One item may always go (a small site losing a page), unless the share is 0.
        allowed = max(share * len(items), 1.0 if share > 0 else 0.0)
        if len(unseen) > allowed:
            report.errors.append(
                f"the pass did not see {len(unseen)} of {len(items)} items; deleting more than "
                f"{share:.0%} at once looks like a source outage, so nothing was deleted "
                "(raise max_delete_share to allow it)"
            )
            return
        for item in unseen:
            self.landing.delete([item.key, item.key + SIDECAR_SUFFIX])
            self.state.delete_item(self.instance.name, item.item_id)
        report.swept = len(unseen)


def _failed(report: RunReport, exc: Exception) -> RunReport:
    report.stopped = "error"
    report.errors.append(str(exc) if isinstance(exc, SourceError | HttpError) else f"{type(exc).__name__}: {exc}")
    return report


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def select(instances: list[Instance], event: Mapping[str, Any]) -> list[Instance]:
    """The instances an invocation asks for: ``{"connector": type}`` (EventBridge Scheduler's),
    ``{"instance": name}`` (``sluice connector run NAME``: the instance so named or, when none is,
    every instance of the type NAME), or all."""
    name, kind = event.get("instance"), event.get("connector")
    if name is not None and kind is None and not any(i.name == name for i in instances):
        name, kind = None, name
    return [i for i in instances if (name is None or i.name == name) and (kind is None or i.type == kind)]


def run_instance(
    instance: Instance,
    *,
    secret: Callable[[str], Mapping[str, Any]],
    aws: Callable[..., Any],
    state: ConnectorState,
    landing: Landing,
    seconds: float,
    owner: str,
) -> RunReport:
    """Build the instance's connector (its secret read, its settings checked) and run it once. A
    connector that cannot be built is a recorded run with the reason, like any other failure."""
    try:
        context = Context(secret=secret(instance.secret) if instance.secret else {}, http=HttpClient(), aws=aws)
        connector = connector_class(instance.type).from_instance(instance, context)
    except (ConnectorConfigError, SourceError) as exc:
        report = RunReport(instance.name, instance.type, _iso(time.time()), stopped="error")
        report.errors.append(f"cannot start: {exc}")
        state.save_report(instance.name, report.to_json())  # the last run only: a running run's cursor stays
        return report
    return ConnectorRunner(instance, connector, state, landing, seconds=seconds, owner=owner).run()

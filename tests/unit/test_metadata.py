"""A document's own metadata and access list, from <key>.metadata.json next to it."""

from __future__ import annotations

import json

import pytest

from sluice.errors import QuarantineError, Reason
from sluice.ingest import Action, IngestService, IngestSettings, ObjectEvent
from sluice.pipeline.files import document_id, s3_uri
from sluice.pipeline.metadata import Access, Principal, PrincipalType, document_of, parse_metadata, sidecar_of
from sluice.registry import Status
from support.fakes import FakeBucketWriter, FakeBus, FakeObjectReader, FakeRegistry

SIDECAR = {
    "metadataAttributes": {
        "department": "finance",
        "year": 2024,
        "confidential": True,
        "tags": ["budget", "annual"],
        "region": {"value": {"type": "STRING", "stringValue": "emea"}, "includeForEmbedding": True},
    },
    "accessControlList": [
        {"name": "finance", "type": "GROUP", "access": "ALLOW"},
        {"name": "Alice@Example.com", "type": "USER", "access": "DENY"},
    ],
    "title": "Annual budget",
}


def test_sidecar_keys() -> None:
    assert sidecar_of("reports/q1.pdf") == "reports/q1.pdf.metadata.json"
    assert document_of("reports/q1.pdf.metadata.json") == "reports/q1.pdf"
    assert document_of("reports/q1.pdf") is None and document_of(".metadata.json") is None


def test_plain_and_typed_values_and_canonical_principals() -> None:
    meta = parse_metadata(json.dumps(SIDECAR).encode(), {"source-url": "https://intranet/budget"})
    assert meta.attributes == {
        "department": "finance",
        "year": 2024.0,
        "confidential": True,
        "tags": ["budget", "annual"],
        "region": "emea",
    }
    assert meta.acl == (
        Principal("finance", PrincipalType.GROUP, Access.ALLOW),
        Principal("alice@example.com", PrincipalType.USER, Access.DENY),  # users are lower-cased
    )
    assert meta.allowed() == ["group:finance"] and meta.denied() == ["user:alice@example.com"]
    assert (meta.title, meta.source_url) == ("Annual budget", "https://intranet/budget")


@pytest.mark.parametrize(
    ("sidecar", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "top level"),
        (json.dumps({"metadataAttributes": {"bad key!": "x"}}).encode(), "not allowed"),
        (json.dumps({"metadataAttributes": {"title": "x"}}).encode(), "not allowed"),  # Sluice's own
        (json.dumps({"metadataAttributes": {"a": {"nested": 1}}}).encode(), "must be"),
        (json.dumps({"metadataAttributes": {"a": [str(i) for i in range(11)]}}).encode(), "at most 10"),
        (
            json.dumps({"accessControlList": [{"name": "x", "type": "ROLE", "access": "ALLOW"}]}).encode(),
            "USER or GROUP",
        ),
    ],
)
def test_invalid_sidecars_are_refused(sidecar: bytes, says: str) -> None:
    with pytest.raises(QuarantineError) as info:
        parse_metadata(sidecar)
    assert info.value.reason is Reason.METADATA_INVALID and says in info.value.detail


class World:
    def __init__(self, clock: list[float], **settings: object) -> None:
        self.raw, self.processed, self.registry, self.bus = (
            FakeObjectReader(),
            FakeBucketWriter(),
            FakeRegistry(),
            FakeBus(),
        )
        self.service = IngestService(
            raw=self.raw, processed=self.processed, registry=self.registry, bus=self.bus,
            settings=IngestSettings(**settings),  # type: ignore[arg-type]
            clock=lambda: clock[0],
        )  # fmt: skip

    def put(self, key: str, data: bytes) -> ObjectEvent:
        return ObjectEvent("raw", key, removed=False, version_id=self.raw.put("raw", key, data))

    def record(self, key: str):  # type: ignore[no-untyped-def]
        return self.registry.get(document_id(s3_uri("raw", key)))

    def sidecars(self) -> list[dict]:  # type: ignore[type-arg]
        return [
            json.loads(v)["metadataAttributes"] for k, v in self.processed.files.items() if k.endswith(".metadata.json")
        ]


def test_attributes_and_access_list_reach_every_chunk_and_the_event(clock: list[float]) -> None:
    world = World(clock)
    world.raw.put("raw", "budget.md.metadata.json", json.dumps(SIDECAR).encode())
    world.service.handle(world.put("budget.md", b"# Budget\n\n" + b"Numbers and plans. " * 200))
    record = world.record("budget.md")
    assert record.title == "Annual budget" and record.doc_metadata["acl"][0]["name"] == "finance"
    sidecars = world.sidecars()
    assert len(sidecars) > 1
    for attrs in sidecars:
        assert attrs["department"]["value"] == {"type": "STRING", "stringValue": "finance"}
        assert attrs["year"]["value"] == {"type": "NUMBER", "numberValue": 2024.0}
        assert attrs["confidential"]["value"] == {"type": "BOOLEAN", "booleanValue": True}
        assert attrs["acl_allow"]["value"] == {"type": "STRING_LIST", "stringListValue": ["group:finance"]}
        assert attrs["acl_deny"]["value"]["stringListValue"] == ["user:alice@example.com"]
    assert world.bus.events[-1].detail["metadata"]["acl"][1] == {
        "name": "alice@example.com",
        "type": "USER",
        "access": "DENY",
    }


def test_changing_the_sidecar_alone_re_chunks_the_document(clock: list[float]) -> None:
    world = World(clock)
    world.service.handle(world.put("doc.txt", b"Some text. " * 50))
    before = world.record("doc.txt").chunks
    sidecar_event = world.put("doc.txt.metadata.json", json.dumps({"metadataAttributes": {"team": "ops"}}).encode())
    outcome = world.service.handle(sidecar_event)
    assert outcome.action is Action.CHANGED and outcome.source_uri == "s3://raw/doc.txt"
    assert world.record("doc.txt").chunks != before  # the metadata is part of every chunk's hash
    assert world.sidecars()[-1]["team"]["value"]["stringValue"] == "ops"
    world.raw.delete("raw", "doc.txt.metadata.json")
    world.service.handle(ObjectEvent("raw", "doc.txt.metadata.json", removed=True))
    assert world.record("doc.txt").chunks == before and world.record("doc.txt").doc_metadata == {}


def test_an_invalid_sidecar_quarantines_the_document(clock: list[float]) -> None:
    world = World(clock)
    world.raw.put("raw", "doc.txt.metadata.json", b"{broken")
    outcome = world.service.handle(world.put("doc.txt", b"Text that must not be indexed without its access list."))
    assert outcome.action is Action.QUARANTINED and outcome.reason == "metadata_invalid"
    world.service.handle(world.put("doc.txt.metadata.json", json.dumps({"accessControlList": []}).encode()))
    assert world.record("doc.txt").status is Status.PROCESSED  # fixing the sidecar releases it


def test_require_acl_refuses_documents_without_principals(clock: list[float]) -> None:
    world = World(clock, require_acl=True)
    assert world.service.handle(world.put("open.txt", b"text")).reason == "acl_unresolved"
    acl = {"accessControlList": [{"name": "everyone", "type": "GROUP", "access": "ALLOW"}]}
    world.raw.put("raw", "open.txt.metadata.json", json.dumps(acl).encode())
    assert world.service.handle(world.put("open.txt", b"text")).action is Action.CHANGED


def test_more_principals_than_bedrock_metadata_holds_is_refused(clock: list[float]) -> None:
    world = World(clock)
    acl = {"accessControlList": [{"name": f"g{i}", "type": "GROUP", "access": "ALLOW"} for i in range(11)]}
    world.raw.put("raw", "doc.txt.metadata.json", json.dumps(acl).encode())
    outcome = world.service.handle(world.put("doc.txt", b"text"))
    assert outcome.reason == "acl_unresolved" and "use groups" in (outcome.detail or "")

"""Switching the knowledge base's sync mode on the running local stack (a deploy with the other
KnowledgeBaseSyncMode: every function starts again with its new environment) with documents in flight
each way: everything ends indexed, and the knowledge base holds exactly the registry's chunks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.pipeline.files import chunk_uri, document_id, s3_uri
from sluice.sinks import SinkState, SinkStatus
from sluice_local import emulators
from sluice_local.stack import LocalStack
from sluice_local.template import TemplateError

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK = "sluice-modes"  # its own names: other modules' stacks may share this process's moto
# Seconds before a sink's first status check or job poll: the test switches in between.
FIRST_CHECK_SECONDS = "4"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        ROOT,
        port=0,
        state_dir=tmp_path_factory.mktemp("local"),
        stack_name=STACK,
        environment={"SINK_FIRST_CHECK_SECONDS": FIRST_CHECK_SECONDS},
    ) as running:
        yield running


def _until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _text(name: str, paragraphs: int = 12) -> str:
    return f"# {name}\n\n" + "\n\n".join(
        " ".join(f"Line {j} of part {i} of {name} records the tides of the harbour." for j in range(8))
        for i in range(paragraphs)
    )


def test_switching_the_sync_mode_with_documents_in_flight_loses_nothing(stack: LocalStack) -> None:
    outputs = stack.outputs()
    raw, processed, s3 = outputs["RawBucketName"], outputs["ProcessedBucketName"], stack.client("s3")
    states = DynamoDBSinkStates(stack.client("dynamodb"), outputs["DocumentsTableName"])

    def kb(key: str) -> SinkState | None:
        return states.get("kb", document_id(s3_uri(raw, key)))

    def waits_for_job(state: SinkState | None) -> bool:
        return state is not None and any(p.startswith("job>") for p in state.pending)

    texts = {f"modes/direct-{i}.md": _text(f"direct {i}") for i in range(3)}
    for key, text in texts.items():
        s3.put_object(Bucket=raw, Key=key, Body=text.encode())
    _until(lambda: all(kb(key) is not None for key in texts))
    sent = [kb(key) for key in texts]
    # Sent directly, their status checks still to come when the mode changes.
    assert any(s is not None and s.status is SinkStatus.PENDING and not waits_for_job(s) for s in sent)
    stack.redeploy({"KnowledgeBaseSyncMode": "ingestion-job"})

    later = {f"modes/job-{i}.md": _text(f"job {i}") for i in range(3)}
    for key, text in later.items():
        s3.put_object(Bucket=raw, Key=key, Body=text.encode())
    _until(lambda: all(waits_for_job(kb(key)) for key in later))
    stack.redeploy({"KnowledgeBaseSyncMode": "direct"})  # their job still running
    edited = "modes/job-0.md"
    texts |= later | {edited: _text("job 0").replace("Line 3 of part 5", "A new line of part 5")}
    s3.put_object(Bucket=raw, Key=edited, Body=texts[edited].encode())

    assert stack.wait_idle(timeout=120)
    wanted = set()
    for key in texts:
        doc = document_id(s3_uri(raw, key))
        record = stack.client("dynamodb").get_item(TableName=outputs["DocumentsTableName"], Key={"doc_id": {"S": doc}})
        chunks = record["Item"]["chunks"]["S"].split()
        state = kb(key)
        assert state is not None and state.status is SinkStatus.INDEXED and set(state.held) == set(chunks), key
        wanted |= {chunk_uri(processed, doc, c) for c in chunks}
    emulators.install(stack.emulator_dir)
    listed = stack.client("bedrock-agent").list_knowledge_base_documents(
        knowledgeBaseId=outputs["KnowledgeBaseId"], dataSourceId=outputs["KnowledgeBaseDataSourceId"]
    )["documentDetails"]
    assert {d["identifier"]["s3"]["uri"] for d in listed if d["status"] == "INDEXED"} == wanted
    operations = {c["operation"] for c in emulators.read_calls(stack.emulator_dir)}
    assert {"IngestKnowledgeBaseDocuments", "GetKnowledgeBaseDocuments", "StartIngestionJob"} <= operations


def test_a_parameter_that_would_add_or_remove_resources_is_refused(stack: LocalStack) -> None:
    with pytest.raises(TemplateError, match="would be added or removed"):
        stack.redeploy({"KnowledgeBaseMode": "off"})
    assert stack.resolver.parameters["KnowledgeBaseMode"] != "off"

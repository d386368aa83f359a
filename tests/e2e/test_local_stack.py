"""End to end on the local stack: moto server on 127.0.0.1, resources from template.yaml, the real
handler in its own process fed by the event pump; files put with boto3 like any S3 client would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.pipeline.files import document_id, s3_uri
from sluice.sinks import SinkStatus
from sluice_cli.demo import drain_events
from sluice_cli.search import Hit, search
from sluice_local import emulators
from sluice_local.stack import LocalStack
from support.localcli import sluice_on
from support.pdfwriter import document, make_pdf

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

MARKDOWN = "# Field guide\n\n" + "\n\n".join(
    f"## Part {i}\n\n" + " ".join(f"Sentence {j} of part {i} describes the pipeline in some detail." for j in range(12))
    for i in range(6)
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, state_dir=tmp_path_factory.mktemp("local")) as running:
        yield running


def _wait_for(stack: LocalStack, key: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    table = stack.outputs()["DocumentsTableName"]
    doc = document_id(s3_uri(stack.outputs()["RawBucketName"], key))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = stack.client("dynamodb").get_item(TableName=table, Key={"doc_id": {"S": doc}}).get("Item")
        if item and "status" in item and predicate(item):
            assert stack.wait_idle(timeout=30)
            return item
        time.sleep(0.2)
    raise AssertionError(f"{key} did not settle")


def _processed(stack: LocalStack, key: str) -> list[str]:
    doc = document_id(s3_uri(stack.outputs()["RawBucketName"], key))
    s3 = stack.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.outputs()["ProcessedBucketName"])
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if doc in o["Key"])


def test_outputs_match_the_templates(stack: LocalStack) -> None:
    outputs = stack.outputs()
    assert outputs["RawBucketName"].startswith("sluice-raw-")
    assert outputs["IngestQueueUrl"].startswith(stack.endpoint)
    assert json.loads((stack.state_dir / "state.json").read_text())["outputs"] == outputs


def test_files_dropped_into_the_raw_bucket_are_ingested(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    s3 = stack.client("s3")
    drain_events(stack)
    pdf = make_pdf(
        document(
            [("Scope", ["The handbook covers operations. " * 20]), ("Alarms", ["Respond quickly. " * 30])],
            title="Runbook",
            lines_per_page=15,
        )
    )
    files = {
        "docs/runbook.pdf": pdf,
        "docs/field guide.md": MARKDOWN.encode(),
        "web/page.html": b"<html><head><title>Web page</title></head>"
        b"<body><main><h1>Hi</h1><p>Hello there.</p></main></body></html>",
        "notes/plain.txt": b"Plain notes\n\nJust some text.\n",
        "uploads/broken.pdf": b"%PDF-1.7\n%broken beyond repair",
    }
    for key, body in files.items():
        s3.put_object(Bucket=raw, Key=key, Body=body)
    for key in files:
        item = _wait_for(stack, key, lambda i: i["status"]["S"] in ("PROCESSED", "QUARANTINED"))
        if key == "uploads/broken.pdf":
            assert item["status"]["S"] == "QUARANTINED" and item["reason"]["S"] == "malformed"
            assert _processed(stack, key) == []
            continue
        assert item["status"]["S"] == "PROCESSED", item
        chunks = item["chunks"]["S"].split()
        keys = _processed(stack, key)
        assert len(keys) == 2 * len(chunks) + 1  # chunk + sidecar per chunk, and the cleaned document
        sidecar_key = next(k for k in keys if k.endswith(".metadata.json"))
        sidecar = json.loads(
            s3.get_object(Bucket=stack.outputs()["ProcessedBucketName"], Key=sidecar_key)["Body"].read()
        )["metadataAttributes"]
        assert sidecar["source_uri"]["value"]["stringValue"] == s3_uri(raw, key)
    runbook = _wait_for(stack, "docs/runbook.pdf", lambda i: True)
    assert runbook["page_count"]["N"] == "2" and runbook["title"]["S"] == "Runbook"
    events = drain_events(stack)
    assert sorted(e["detail-type"] for e in events) == ["Document Changed"] * 4 + ["Document Quarantined"]


def test_an_edit_resends_only_changed_chunks_and_a_delete_removes_everything(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    s3 = stack.client("s3")
    key = "docs/field guide.md"
    before = _wait_for(stack, key, lambda i: i["status"]["S"] == "PROCESSED")["chunks"]["S"].split()
    drain_events(stack)
    edited = MARKDOWN.replace("Sentence 3 of part 4", "Sentence three of part four, rewritten,")
    s3.put_object(Bucket=raw, Key=key, Body=edited.encode())
    after = _wait_for(stack, key, lambda i: i["chunks"]["S"].split() != before)["chunks"]["S"].split()
    (changed,) = drain_events(stack)
    added, removed = changed["detail"]["chunks"]["added"], changed["detail"]["chunks"]["removed"]
    assert set(added) == set(after) - set(before) and set(removed) == set(before) - set(after)
    assert 1 <= len(added) <= 3 and len(set(before) & set(after)) >= len(before) - 3

    s3.put_object(Bucket=raw, Key=key, Body=edited.encode())  # unchanged re-upload
    _wait_for(stack, key, lambda i: True)
    assert drain_events(stack) == []

    s3.delete_object(Bucket=raw, Key=key)
    _wait_for(stack, key, lambda i: i["status"]["S"] == "DELETED")
    assert _processed(stack, key) == []
    (deleted,) = drain_events(stack)
    assert deleted["detail-type"] == "Document Deleted" and set(deleted["detail"]["chunks"]["removed"]) == set(after)


def test_a_message_that_keeps_failing_ends_in_the_dead_letter_queue(stack: LocalStack) -> None:
    outputs = stack.outputs()
    stack.client("sqs").send_message(QueueUrl=outputs["IngestQueueUrl"], MessageBody="not an S3 notification")
    deadline = time.monotonic() + 60
    while stack.queue_depth(outputs["IngestDeadLetterQueueUrl"]) == 0:
        assert time.monotonic() < deadline, "the poison message never reached the dead-letter queue"
        time.sleep(0.5)
    message = stack.client("sqs").receive_message(QueueUrl=outputs["IngestDeadLetterQueueUrl"])["Messages"][0]
    assert message["Body"] == "not an S3 notification"
    stack.client("sqs").delete_message(
        QueueUrl=outputs["IngestDeadLetterQueueUrl"], ReceiptHandle=message["ReceiptHandle"]
    )


def test_cli_reads_the_running_stack(stack: LocalStack) -> None:
    with sluice_on(stack) as sluice:
        assert json.loads(sluice("local", "outputs", "--json").stdout) == stack.outputs()
        report = json.loads(sluice("status", "--local", "--json").stdout)
        assert report["documents"]["QUARANTINED"] >= 1
        assert {"key": "uploads/broken.pdf", "reason": "malformed"}.items() <= report["quarantined"][0].items()
        # A schedule that could not invoke its target leaves an event: status says so, and not to redrive it.
        sqs, url = stack.client("sqs"), stack.outputs()["ScheduleDeadLetterQueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody='{"connector": "web"}')
        try:
            assert json.loads(sluice("status", "--local", "--json").stdout)["queues"]["schedule_dead_letters"] == {
                "waiting": 1, "in_flight": 0}  # fmt: skip
            text = sluice("status", "--local").stdout
            assert "A schedule could not start its target" in text
        finally:
            sqs.purge_queue(QueueUrl=url)


def _calls_since(stack: LocalStack, start: int) -> list[tuple[str, int]]:
    return [(c["operation"], c["items"]) for c in emulators.read_calls(stack.emulator_dir)[start:]]


def _search(stack: LocalStack, query: str) -> list[Hit]:
    emulators.install(stack.emulator_dir)
    return search(stack.outputs(), stack.client, query, top_k=5)


def test_both_sinks_follow_an_upload_an_edit_and_a_delete(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    s3, key = stack.client("s3"), "sinks/tide tables.md"
    text = "# Tide tables\n\n" + "\n\n".join(
        f"## Harbour {i}\n\n" + " ".join(f"High water at harbour {i} comes {j} minutes late." for j in range(30))
        for i in range(5)
    )
    start = len(emulators.read_calls(stack.emulator_dir))
    s3.put_object(Bucket=raw, Key=key, Body=text.encode())
    item = _wait_for(stack, key, lambda i: i["status"]["S"] == "PROCESSED")
    chunks = item["chunks"]["S"].split()
    calls = _calls_since(stack, start)
    assert sum(n for op, n in calls if op == "IngestKnowledgeBaseDocuments") == len(chunks)
    assert ("BatchPutDocument", 1) in calls
    hits = _search(stack, "harbour high water")
    assert {h.sink for h in hits if h.source == s3_uri(raw, key)} == {"kb", "kendra"}

    start = len(emulators.read_calls(stack.emulator_dir))
    edited = text.replace("High water at harbour 3 comes 7 minutes late.", "Spring tides flood the quay at harbour 3.")
    s3.put_object(Bucket=raw, Key=key, Body=edited.encode())
    _wait_for(stack, key, lambda i: i["chunks"]["S"].split() != chunks)
    calls = _calls_since(stack, start)
    assert 1 <= sum(n for op, n in calls if op == "IngestKnowledgeBaseDocuments") <= 3
    assert ("BatchPutDocument", 1) in calls
    assert {h.sink for h in _search(stack, "spring tides flood the quay")} == {"kb", "kendra"}

    start = len(emulators.read_calls(stack.emulator_dir))
    s3.delete_object(Bucket=raw, Key=key)
    _wait_for(stack, key, lambda i: i["status"]["S"] == "DELETED")
    calls = _calls_since(stack, start)
    assert ("BatchDeleteDocument", 1) in calls and any(op == "DeleteKnowledgeBaseDocuments" for op, _ in calls)
    assert not [h for h in _search(stack, "harbour high water spring tides") if h.source == s3_uri(raw, key)]
    states = DynamoDBSinkStates(stack.client("dynamodb"), stack.outputs()["DocumentsTableName"])
    doc = document_id(s3_uri(raw, key))
    assert states.get("kb", doc).status is SinkStatus.ABSENT and states.get("kendra", doc).status is SinkStatus.ABSENT


def test_cli_searches_and_redrives_the_running_stack(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    stack.client("s3").put_object(Bucket=raw, Key="sinks/lighthouse.txt", Body=b"The lighthouse keeper logs fog.\n")
    _wait_for(stack, "sinks/lighthouse.txt", lambda i: i["status"]["S"] == "PROCESSED")
    dead = stack.outputs()["KendraDeadLetterQueueUrl"]
    doc = document_id(s3_uri(raw, "sinks/lighthouse.txt"))
    stack.client("sqs").send_message(QueueUrl=dead, MessageBody=json.dumps({"sluice": "sync", "doc_ids": [doc]}))
    with sluice_on(stack) as sluice:
        found = sluice("search", "lighthouse keeper", "--local", "--json")
        hits = json.loads(found.stdout)["hits"]
        assert {(h["sink"], h["source"]) for h in hits} >= {
            ("kb", s3_uri(raw, "sinks/lighthouse.txt")),
            ("kendra", s3_uri(raw, "sinks/lighthouse.txt")),
        }
        moved = sluice("redrive", "--sink", "kendra", "--local")
        assert (
            "kendra: 1 message moved back from the dead-letter queue, 0 failed documents queued again" in moved.stdout
        )
        assert stack.wait_idle(timeout=30) and stack.queue_depth(dead) == 0
        start = len(emulators.read_calls(stack.emulator_dir))
        again = json.loads(sluice("reconcile", "--local", "--json").stdout)
        assert again["found"] == {} and again["repairs"] == {}
        assert stack.wait_idle(timeout=60)
        reads = {"GetKnowledgeBaseDocuments", "ListKnowledgeBaseDocuments", "BatchGetDocumentStatus"}
        assert {op for op, _ in _calls_since(stack, start)} <= reads  # everything was in step: asked, nothing sent
        status = sluice("status", "--local", "--json")
        sinks = json.loads(status.stdout)["sinks"]
        assert sinks["kb"]["indexed"] >= 1 and sinks["kendra"]["indexed"] >= 1 and sinks["kendra"]["failed"] == 0
        assert sinks["kb"]["settled"]["documents"] >= 1  # indexed minutes ago: the sink's recent pace counts it


def test_the_fine_tune_workflow_runs_on_the_local_stack_from_the_cli(stack: LocalStack) -> None:
    raw, processed = stack.outputs()["RawBucketName"], stack.outputs()["ProcessedBucketName"]
    faq = "\n".join(
        json.dumps({"question": f"Which part covers step {i}?", "answer": f"Part {i % 6}."}) for i in range(8)
    )
    for key, body in {"finetune/harbour.md": MARKDOWN, "finetune/harbour-faq.jsonl": faq}.items():
        stack.client("s3").put_object(Bucket=raw, Key=key, Body=body.encode())
        _wait_for(stack, key, lambda i: i["status"]["S"] == "PROCESSED")
    bad = b'{"prompt": "Where?", "completion": "At the buoy."}\n{"prompt": "When?"\n'
    stack.client("s3").put_object(Bucket=processed, Key="finetune/uploads/bad.jsonl", Body=bad)
    with sluice_on(stack) as sluice:  # the search the demo runs: 2 x 2 trials, the best deployed and evaluated
        tuned = sluice("finetune", str(ROOT / "events" / "finetune_search.json"), "--local", "--poll-seconds", "1",
                       "--name", "e2e-1")  # fmt: skip
        assert "execution e2e-1: SUCCEEDED" in tuned.stdout and "custom model     arn:aws:bedrock:" in tuned.stdout
        deployed = "on demand        arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/"
        assert deployed in tuned.stdout and "(the modelId to call)" in tuned.stdout  # served on demand, locally
        assert tuned.stdout.index("    PrepareDataset") < tuned.stdout.index("    RunTrials")  # followed, in order
        assert all(f"trial t{n}: StartCustomizationJobWithValidation" in tuned.stdout for n in range(1, 5))
        assert "search           4 trials, the best t2 by validation loss" in tuned.stdout
        assert (
            "evaluation       " in tuned.stdout and "token_f1" in tuned.stdout and "promoted         " in tuned.stdout
        )
        assert "to train" in tuned.stdout and "training tokens" in tuned.stdout and "(converse)" in tuned.stdout
        assert "LEGACY" not in tuned.stdout and "not checked" not in tuned.stdout  # Nova Micro: ACTIVE, checked
        payload = json.loads((ROOT / "events" / "finetune_nova_s3.json").read_text())
        payload["dataset"]["uri"] = f"s3://{processed}/finetune/uploads/bad.jsonl"
        refused_input = stack.state_dir / "bad-input.json"
        refused_input.write_text(json.dumps(payload))
        refused = sluice("finetune", str(refused_input), "--local", "--name", "e2e-2", check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "execution e2e-2: FAILED" in refused.stdout and "DatasetInvalidError" in refused.stdout
        assert "line 2" in refused.stdout


def test_a_batch_inference_job_runs_on_the_local_stack(stack: LocalStack) -> None:
    """The local Bedrock reads the custom model from the stack's own moto, not from the environment of
    the process serving it."""
    processed = stack.outputs()["ProcessedBucketName"]
    pairs = "\n".join(json.dumps({"prompt": f"Where is dock {i}?", "completion": f"North {i}."}) for i in range(100))
    prompts = "\n".join(json.dumps({"prompt": f"Where is dock {i}?"}) for i in range(3))
    s3 = stack.client("s3")
    s3.put_object(Bucket=processed, Key="finetune/uploads/docks.jsonl", Body=pairs.encode())
    s3.put_object(Bucket=processed, Key="finetune/uploads/docks-prompts.jsonl", Body=prompts.encode())
    payload = json.loads((ROOT / "events" / "finetune_llama_s3.json").read_text())
    payload["dataset"]["uri"] = f"s3://{processed}/finetune/uploads/docks.jsonl"
    payload |= {"batch": {"prompts": f"s3://{processed}/finetune/uploads/docks-prompts.jsonl"}, "poll_seconds": 1}
    batch_input = stack.state_dir / "batch-input.json"
    batch_input.write_text(json.dumps(payload))
    with sluice_on(stack) as sluice:
        tuned = sluice("finetune", str(batch_input), "--local", "--name", "e2e-batch")
    assert "execution e2e-batch: SUCCEEDED" in tuned.stdout, tuned.stdout
    assert "batch            3 prompts, Completed; output s3://" in tuned.stdout, tuned.stdout


def test_executions_started_without_a_name_each_get_a_uuid_and_run(stack: LocalStack) -> None:
    processed = stack.outputs()["ProcessedBucketName"]
    stack.client("s3").put_object(Bucket=processed, Key="finetune/uploads/unnamed.jsonl", Body=b'{"prompt": "Why?"\n')
    payload = json.loads((ROOT / "events" / "finetune_nova_s3.json").read_text())
    payload["dataset"]["uri"] = f"s3://{processed}/finetune/uploads/unnamed.jsonl"
    sfn, machine = stack.client("stepfunctions"), stack.outputs()["FineTuneStateMachineArn"]
    # `aws stepfunctions start-execution --state-machine-arn ARN --input ...`: no name in the request.
    arns = [sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"] for _ in range(2)]
    names = [sfn.describe_execution(executionArn=arn)["name"] for arn in arns]
    assert len(set(names)) == 2 and all(str(uuid.UUID(name)) == name for name in names), names
    assert [arn.rsplit(":", 1)[-1] for arn in arns] == names
    assert set(names) <= {e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    deadline = time.monotonic() + 60
    ended = {}
    while len(ended) < 2 and time.monotonic() < deadline:
        for arn in arns:
            execution = sfn.describe_execution(executionArn=arn)
            if execution["status"] != "RUNNING":
                ended[arn] = (execution["status"], execution.get("error"))
        time.sleep(0.2)
    assert list(ended.values()) == [("FAILED", "DatasetInvalidError")] * 2, ended  # each ran to its own end


def test_a_web_connector_sync_flows_through_the_pipeline_and_status_reports_it(stack: LocalStack) -> None:
    from sluice_local.site import Site

    site = Site({"/index.html": b"<title>Lighthouse</title><p>The lighthouse keeper logs the fog.</p>"}).start()
    outputs = stack.outputs()
    try:
        settings = {"start_urls": [site.url], "allowed_networks": ["127.0.0.1/32"]}
        config = {"instances": [{"name": "lighthouse", "type": "web", "settings": settings}]}
        stack.client("ssm").put_parameter(
            Name=outputs["ConnectorConfigParameterName"], Value=json.dumps(config), Type="String", Overwrite=True
        )
        with sluice_on(stack) as sluice:
            synced = json.loads(sluice("connector", "run", "lighthouse", "--local", "--json").stdout)
            assert [(r["instance"], r["stopped"], r["landed"]) for r in synced] == [("lighthouse", "done", 1)]
            raw = outputs["RawBucketName"]
            (key,) = [
                o["Key"]
                for o in stack.client("s3").list_objects_v2(Bucket=raw, Prefix="connectors/lighthouse/")["Contents"]
                if not o["Key"].endswith(".metadata.json")
            ]
            item = _wait_for(stack, key, lambda i: i["status"]["S"] == "PROCESSED")
            assert item["title"]["S"] == "Lighthouse"
            again = json.loads(sluice("connector", "run", "web", "--local", "--json").stdout)
            assert [(r["landed"], r["unchanged"]) for r in again] == [(0, 1)]
            status = json.loads(sluice("status", "--local", "--json").stdout)["connectors"]["lighthouse"]
            assert status["items"] == 1 and status["last_run"]["stopped"] == "done"
            missing = sluice("connector", "run", "nothing-here", "--local", check=False)
            assert missing.returncode == 1 and "no instance or type named" in missing.stderr
    finally:
        site.stop()


def test_sluice_reconcile_repairs_a_deliberately_corrupted_stack(stack: LocalStack) -> None:
    outputs = stack.outputs()
    raw, processed, table = outputs["RawBucketName"], outputs["ProcessedBucketName"], outputs["DocumentsTableName"]
    s3, ddb = stack.client("s3"), stack.client("dynamodb")
    files = {f"reconcile/{n}.md": f"# Note {n}\n\nTide gauge {n} reads high water at noon.\n" for n in range(3)}
    for key, body in files.items():
        s3.put_object(Bucket=raw, Key=key, Body=body.encode())
    for key in files:
        _wait_for(stack, key, lambda i: i["status"]["S"] == "PROCESSED")
    assert stack.wait_idle(timeout=60)
    with sluice_on(stack) as sluice:
        clean = json.loads(sluice("reconcile", "--local", "--json").stdout)
        assert clean["complete"] and clean["found"] == {}, clean["examples"]
        docs = [document_id(s3_uri(raw, k)) for k in files]
        ddb.delete_item(TableName=table, Key={"doc_id": {"S": docs[0]}})  # the registry forgot a document
        (first, *_) = _processed(stack, "reconcile/1.md")
        s3.delete_object(Bucket=processed, Key=first)  # a processed file was lost
        stack.client("kendra").batch_delete_document(  # the index lost a document
            IndexId=outputs["KendraIndexId"], DocumentIdList=[s3_uri(raw, "reconcile/2.md")]
        )
        dry = sluice("reconcile", "--local", "--dry-run")
        assert "dry run" in dry.stdout and "unrecorded" in dry.stdout and "index_lost" in dry.stdout, dry.stdout
        repaired = json.loads(sluice("reconcile", "--local", "--json").stdout)
        assert repaired["found"] == {"unrecorded": 1, "processed_missing": 1, "index_lost": 1}
        assert _wait_for(stack, "reconcile/0.md", lambda i: i["status"]["S"] == "PROCESSED")
        assert stack.wait_idle(timeout=60)
        after = json.loads(sluice("reconcile", "--local", "--json").stdout)
        assert after["found"] == {}, after["examples"]
    assert first in _processed(stack, "reconcile/1.md")
    statuses = stack.client("kendra").batch_get_document_status(
        IndexId=outputs["KendraIndexId"], DocumentInfoList=[{"DocumentId": s3_uri(raw, "reconcile/2.md")}]
    )["DocumentStatusList"]
    assert statuses[0]["DocumentStatus"] == "INDEXED"

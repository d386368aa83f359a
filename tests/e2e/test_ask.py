"""The knowledge base the template creates, asked from the command line: `sluice ask` answers with
citations, `--as` keeps the answer and `sluice search` to what the principals may read (a document
denied to them is never cited, even as the best match), and the model is checked first (a custom
model deployed on demand answers once it is Active). And the other two knowledge-base modes
provision as the template says."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.pipeline.files import s3_uri
from sluice_local import emulators
from sluice_local.stack import LocalStack
from support.localcli import Sluice, sluice_on

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK = "sluice-ask"  # moto keeps one set of resources per process: a name of its own
QUESTION = "What is the heron budget for pebbles?"
BOARD = "minutes/board.md"  # the best match, readable by the board only, and never by eve
OPEN = "handbook/herons.md"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, state_dir=tmp_path_factory.mktemp("local"), stack_name=STACK) as running:
        raw, s3 = running.outputs()["RawBucketName"], running.client("s3")
        sidecar = {
            "metadataAttributes": {"department": "finance"},
            "accessControlList": [
                {"name": "board", "type": "GROUP", "access": "ALLOW"},
                {"name": "Eve@Example.com", "type": "USER", "access": "DENY"},
            ],
        }
        s3.put_object(Bucket=raw, Key=f"{BOARD}.metadata.json", Body=json.dumps(sidecar).encode())
        s3.put_object(
            Bucket=raw,
            Key=BOARD,
            Body=b"# Board minutes\n\n## Budget\n\nThe heron budget for pebbles is forty-two pebbles a year.\n",
        )
        s3.put_object(
            Bucket=raw, Key=OPEN, Body=b"# Herons\n\nA heron wades and counts fish. The heron budget is public.\n"
        )
        _settle(running, [BOARD, OPEN])
        yield running


def _settle(stack: LocalStack, keys: list[str], timeout: float = 90) -> None:
    """Until both sinks hold the documents (the knowledge base's chunks INDEXED)."""
    runtime = emulators.install(stack.emulator_dir).client("bedrock-agent-runtime")
    raw, kb = stack.outputs()["RawBucketName"], stack.outputs()["KnowledgeBaseId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runtime.retrieve(
            knowledgeBaseId=kb,
            retrievalQuery={"text": "heron budget pebbles fish"},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": 10}},
        )["retrievalResults"]
        sources = {r["metadata"].get("source_uri") for r in found}
        if {s3_uri(raw, k) for k in keys} <= sources and stack.wait_idle(timeout=30):
            return
        time.sleep(0.3)
    raise AssertionError("the documents did not reach the knowledge base")


def _cited(sluice: Sluice, *args: str) -> list[str]:
    printed = sluice("ask", QUESTION, "--local", "--json", *args)
    answer = json.loads(printed.stdout)
    return [s["source"] for c in answer["citations"] for s in c["sources"]]


def test_the_stack_creates_its_knowledge_base_from_the_template(stack: LocalStack) -> None:
    outputs = stack.outputs()
    emulator = emulators.install(stack.emulator_dir)
    kb = emulator.client("bedrock-agent").get_knowledge_base(knowledgeBaseId=outputs["KnowledgeBaseId"])
    storage = kb["knowledgeBase"]["storageConfiguration"]
    assert storage == {"type": "S3_VECTORS", "s3VectorsConfiguration": {"indexArn": outputs["VectorIndexArn"]}}
    index = emulator.client("s3vectors").get_index(indexArn=outputs["VectorIndexArn"])["index"]
    assert index["dimension"] == 1024 and index["dataType"] == "float32"
    assert set(index["metadataConfiguration"]["nonFilterableMetadataKeys"]) == {
        "AMAZON_BEDROCK_TEXT",
        "AMAZON_BEDROCK_METADATA",
    }
    source = emulator.client("bedrock-agent").get_data_source(
        knowledgeBaseId=outputs["KnowledgeBaseId"], dataSourceId=outputs["KnowledgeBaseDataSourceId"]
    )["dataSource"]
    assert source["dataDeletionPolicy"] == "RETAIN"
    assert source["vectorIngestionConfiguration"]["chunkingConfiguration"]["chunkingStrategy"] == "NONE"
    with sluice_on(stack) as sluice:  # what an operator sees
        status = sluice("status", "--local").stdout
    assert (
        f"Sink kb: knowledge base {outputs['KnowledgeBaseId']}, created by the stack, over the S3 Vectors index "
        f"{index['indexName']}" in status
    ), status
    assert f"Sink kendra: Kendra index {outputs['KendraIndexId']}" in status
    sink = stack.functions["SyncKnowledgeBaseFunction"].environment
    assert (sink["KNOWLEDGE_BASE_ID"], sink["DATA_SOURCE_ID"]) == (
        outputs["KnowledgeBaseId"],
        outputs["KnowledgeBaseDataSourceId"],
    )


def test_ask_answers_with_its_sources(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    with sluice_on(stack) as sluice:
        printed = sluice("ask", QUESTION, "--local")
        assert printed.stdout.startswith("note: amazon.nova-2-lite-v1:0 takes no on-demand calls")
        assert "Emulated answer" in printed.stdout and "[1]" in printed.stdout
        assert f"[1] s3://{raw}/{BOARD}  (Board minutes)" in printed.stdout, printed.stdout
        answer = json.loads(sluice("ask", QUESTION, "--local", "--json").stdout)
        assert answer["model"].endswith("inference-profile/us.amazon.nova-2-lite-v1:0")
        citation = answer["citations"][0]
        assert answer["text"][citation["start"] : citation["end"] + 1] == citation["text"]
        assert citation["sources"][0]["heading_path"] == "Board minutes"
        assert _cited(sluice, "--filter", "department=finance") == [s3_uri(raw, BOARD)]


def test_a_document_denied_to_the_asker_is_never_cited_even_as_the_best_match(stack: LocalStack) -> None:
    raw = stack.outputs()["RawBucketName"]
    board, public = s3_uri(raw, BOARD), s3_uri(raw, OPEN)
    with sluice_on(stack) as sluice:
        assert _cited(sluice, "--as", "group:board")[0] == board
        assert board not in _cited(sluice, "--as", "group:staff")
        assert public in _cited(sluice, "--as", "group:staff")
        as_eve = _cited(sluice, "--as", "group:board", "--as", "user:EVE@example.com")
        assert board not in as_eve and public in as_eve
        for who in (["group:staff"], ["group:board", "user:eve@example.com"]):
            flags = [f for p in who for f in ("--as", p)]
            hits = json.loads(sluice("search", QUESTION, "--local", "--json", *flags).stdout)["hits"]
            assert {h["sink"] for h in hits} == {"kb", "kendra"}
            assert all(h["source"] != board for h in hits), hits
        hits = json.loads(sluice("search", QUESTION, "--local", "--json", "--as", "group:board").stdout)["hits"]
        assert {h["sink"] for h in hits if h["source"] == board} == {"kb", "kendra"}
        refused = sluice("ask", QUESTION, "--local", "--as", "finance", check=False)
        assert refused.returncode == 2 and "user:NAME or group:NAME" in refused.stderr


def test_the_model_is_checked_before_anything_is_asked(stack: LocalStack) -> None:
    emulator = emulators.install(stack.emulator_dir)
    with sluice_on(stack) as sluice:
        legacy = sluice("ask", QUESTION, "--local", "--model", "anthropic.claude-3-haiku-20240307-v1:0")
        assert "is LEGACY and ends on 2027-01-31" in legacy.stdout
        unknown = sluice("ask", QUESTION, "--local", "--model", "amazon.nothing-v9:0", check=False)
        assert unknown.returncode == 1 and "is not a model or inference profile" in unknown.stderr
        emulator.break_assumption("model_access")
        try:
            denied = sluice("ask", QUESTION, "--local", check=False)
        finally:
            emulator.break_assumption("model_access", broken=False)
        assert denied.returncode == 1 and "model access has not been granted" in denied.stderr


def test_ask_answers_with_a_custom_model_deployed_on_demand_once_it_is_active(stack: LocalStack) -> None:
    custom = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abc123def456"
    bedrock = emulators.install(stack.emulator_dir).client("bedrock")
    deployment = bedrock.create_custom_model_deployment(modelDeploymentName="heron-answers", modelArn=custom)
    arn = deployment["customModelDeploymentArn"]
    with sluice_on(stack) as sluice:
        creating = sluice("ask", QUESTION, "--local", "--model", arn, check=False)  # its first Get: Creating
        assert creating.returncode == 1 and f"{arn} is Creating, not yet Active: wait" in creating.stderr
        answer = json.loads(sluice("ask", QUESTION, "--local", "--model", arn, "--json").stdout)
        gone = arn.rsplit("/", 1)[0] + "/000000000000"
        missing = sluice("ask", QUESTION, "--local", "--model", gone, check=False)
    assert answer["model"] == arn and answer["text"].startswith("Emulated answer") and answer["citations"]
    assert missing.returncode == 1 and "is not a custom model deployment in us-east-1" in missing.stderr


@pytest.mark.parametrize(
    ("parameters", "has_kb"),
    [
        (
            {
                "KnowledgeBaseMode": "existing",
                "KnowledgeBaseId": "EXISTINGKB",
                "KnowledgeBaseDataSourceId": "EXISTINGDS",
            },
            True,
        ),
        ({"KnowledgeBaseMode": "existing", "KnowledgeBaseId": "EXISTINGKB"}, True),
        ({"KnowledgeBaseMode": "off"}, False),
    ],
)
def test_the_other_modes_provision_as_the_template_says(
    tmp_path: Path, parameters: dict[str, Any], has_kb: bool
) -> None:
    name = f"sluice-{parameters['KnowledgeBaseMode']}-{len(parameters)}"  # moto's backends are per process
    with LocalStack(ROOT, port=0, state_dir=tmp_path, parameters=parameters, stack_name=name) as running:
        outputs = running.outputs()
        assert "VectorIndexArn" not in outputs and "KnowledgeBaseArn" not in outputs
        assert ("SyncKnowledgeBaseFunction" in running.functions) is has_kb
        if has_kb:
            assert outputs["KnowledgeBaseId"] == "EXISTINGKB"
            expected = parameters.get("KnowledgeBaseDataSourceId")
            assert outputs["KnowledgeBaseDataSourceId"] == expected or (
                not expected and outputs["KnowledgeBaseDataSourceId"]
            )
        else:
            assert "KnowledgeBaseId" not in outputs

"""The capacity model (capacity/model.py) and its renderer on a hand-made costs stage: `make bench`'s
costs stage takes minutes, so the model's behaviour is checked on figures built here. Nothing here
is timed."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
N = 100  # documents in the hand-made measurement


@pytest.fixture(autouse=True)
def _repository_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def _usage(requests: dict[str, float], billed: dict[str, float], gsi: dict[str, float] | None = None,
           cpu: float = 0.0, records: int = N) -> dict[str, Any]:  # fmt: skip
    return {
        "requests": requests,
        "billed": billed,
        "gsi_wru": gsi or {},
        "invocations": records // 10,
        "records": records,
        "cpu_seconds": cpu * records,
        "first_invocation": {"records": 10, "cpu_seconds": cpu * 10},
        "warm_cpu_seconds_per_record": cpu,
    }


def costs_stage(scale: float = 1.0) -> dict[str, Any]:
    """A costs stage as bench/costs.py writes it, for N × ``scale`` documents of 3 chunks each."""
    n = int(N * scale)

    def per(value: float) -> float:
        return value * scale

    ingest = _usage(
        {"s3:PutObject": per(700), "s3:GetObject": per(100), "s3:HeadObject": per(200), "dynamodb:PutItem": per(300),
         "dynamodb:UpdateItem": per(200), "events:PutEvents": per(100)},
        {"s3.put": per(800), "s3.get": per(300), "s3.put_bytes": per(1_200_000), "dynamodb.wru": per(600),
         "events.entries": per(100)},
        {"status-index#PROCESSED": per(250)}, cpu=0.05, records=n,
    )  # fmt: skip
    sink_db = {"dynamodb:GetItem": per(400), "dynamodb:PutItem": per(200)}
    kb = _usage(
        {"bedrock-agent:IngestKnowledgeBaseDocuments": per(30), "bedrock-agent:GetKnowledgeBaseDocuments": per(30),
         **sink_db, "sqs:SendMessage": per(1)},
        {"dynamodb.rru": per(400), "dynamodb.wru": per(200), "sqs.requests": per(1), "sqs.messages_sent": per(1)},
        {"sink-status-index#kb#PENDING": per(200), "sink-status-index#kb#INDEXED": per(100)}, cpu=0.015, records=n,
    )  # fmt: skip
    jobs = _usage(
        {"bedrock-agent:StartIngestionJob": per(1), "bedrock-agent:GetIngestionJob": per(2), **sink_db},
        {"dynamodb.rru": per(400), "dynamodb.wru": per(200), "sqs.requests": per(2), "sqs.messages_sent": per(2)},
        {"sink-status-index#kb#PENDING": per(200)}, cpu=0.01, records=n,
    )  # fmt: skip
    kendra = _usage(
        {"kendra:BatchPutDocument": per(10), "kendra:BatchGetDocumentStatus": per(10), **sink_db,
         "s3:GetObject": per(100)},
        {"dynamodb.rru": per(400), "dynamodb.wru": per(200), "s3.get": per(100)},
        {"sink-status-index#kendra#PENDING": per(200)}, cpu=0.015, records=n,
    )  # fmt: skip
    esm = {"requests": {"sqs:ReceiveMessage": per(11), "sqs:DeleteMessageBatch": per(10)},
           "billed": {"sqs.requests": per(21)}, "gsi_wru": {}}  # fmt: skip
    sinks = {"batch_size": 100, "batching_window_seconds": 10.0, "max_concurrency": 2, "memory_mb": 512,
             "timeout_seconds": 600.0}  # fmt: skip
    return {
        "date": "2026-12-07",
        "documents": n,
        "seed": 1,
        "uploads": n,
        "megabytes": per(0.5),
        "formats": {"md": n},
        "chunks": per(300),
        "tokens": per(75_000),
        "chunk_text_bytes": per(300_000),
        "sidecar_bytes": per(150_000),
        "document_text_bytes": per(280_000),
        "usage": {
            "ingest": ingest,
            "kb-direct": kb,
            "kb-job": jobs,
            "kendra": kendra,
            "kb-service": {"requests": {"s3:GetObject": per(600)}, "billed": {"s3.get": per(600)}, "gsi_wru": {}},
            "kb-job-service": {
                "requests": {"s3:GetObject": per(600), "s3:ListObjectsV2": per(1)},
                "billed": {"s3.get": per(600), "s3.put": per(1)},
                "gsi_wru": {},
            },
            **{f"esm:{label}": esm for label in ("ingest", "kb-direct", "kb-job", "kendra")},
        },
        "delivered": {label: per(100) for label in ("ingest", "kb-direct", "kb-job", "kendra")},
        "settings": {
            "IngestDocumentFunction": {
                "batch_size": 10,
                "batching_window_seconds": 2.0,
                "max_concurrency": 20,
                "memory_mb": 1769,
                "timeout_seconds": 300.0,
                "requests_per_second": None,
            },
            "SyncKnowledgeBaseFunction": {**sinks, "requests_per_second": 2.0},
            "SyncKendraFunction": {**sinks, "requests_per_second": 5.0},
        },
        "embedding_dimensions": 1024,
        "embedding_model": "amazon.titan-embed-text-v2:0",
    }


@pytest.fixture
def facts() -> dict[str, Any]:
    from capacity.model import load_facts

    return load_facts(ROOT / "capacity" / "facts.json")


def with_fact(facts: dict[str, Any], key: str, value: float) -> dict[str, Any]:
    return {**facts, key: replace(facts[key], value=value)}


def test_every_price_and_quota_has_a_source_and_a_date(facts: dict[str, Any]) -> None:
    assert len(facts) > 30
    for fact in facts.values():
        assert re.fullmatch(r"https://\S+", fact.source), fact.id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fact.checked), fact.id
        assert fact.kind in ("price", "quota", "assumption"), fact.id
        assert fact.what, fact.id
        if not fact.published or fact.value is None:  # what is not published says what the model does instead
            assert fact.note, fact.id
        if fact.kind == "assumption":
            assert not fact.published, fact.id


def test_the_binding_step_moves_when_its_quota_changes(facts: dict[str, Any]) -> None:
    from capacity.model import Settings, capacities, measured, steady_state

    m = measured(costs_stage())
    before = capacities(m, Settings(), facts)["kb"]
    assert before.name == "SyncKnowledgeBaseFunction instances"  # the sink's own pacing, at these figures
    tight = with_fact(facts, "s3vectors_vectors_per_second", 3.0)  # one document's 3 vectors a second
    after = capacities(m, Settings(), tight)["kb"]
    assert after.name == "S3 Vectors writes"
    assert after.docs_per_second == pytest.approx(1.0)
    # and the simulation sees it: a day of 100,000 documents now queues at the knowledge base
    assert steady_state(100_000, "uniform", m, Settings(), facts).steps["kb"].max_backlog == 0
    squeezed = steady_state(100_000, "uniform", m, Settings(), tight)
    assert squeezed.binding == "kb"
    assert squeezed.steps["kb"].limit == "S3 Vectors writes"
    assert squeezed.steps["kb"].max_backlog > 0


def test_a_quota_not_published_puts_no_bound_until_one_is_given(facts: dict[str, Any]) -> None:
    from capacity.model import Settings, capacities, limits, measured

    m = measured(costs_stage())
    embedding = [lim for lim in limits(m, Settings(kb_mode="ingestion-job"), facts) if lim.name.startswith("embedding")]
    assert [lim.docs_per_second for lim in embedding] == [None]
    bounded = Settings(kb_mode="ingestion-job", embedding_requests_per_minute=60)  # one embedding a second
    assert capacities(m, bounded, facts)["kb"].name == "embedding model requests"
    assert capacities(m, bounded, facts)["kb"].docs_per_second == pytest.approx(1 / 3)


def test_costs_scale_linearly_with_documents(facts: dict[str, Any]) -> None:
    from capacity.model import Settings, cost_per_document, measured, run_model

    one, three = measured(costs_stage()), measured(costs_stage(3.0))
    for settings in (Settings(), Settings(kb_mode="ingestion-job"), Settings(kendra=True)):
        assert cost_per_document(one, settings, facts) == pytest.approx(cost_per_document(three, settings, facts))
    daily = run_model(costs_stage(), facts)["costs"]["daily"]
    fixed = sum(run_model(costs_stage(), facts)["costs"]["fixed_per_day"]["without Kendra"].values())
    variable = {int(n): by_mode["direct"] - fixed for n, by_mode in daily.items()}
    assert variable[100_000] == pytest.approx(10 * variable[10_000])
    assert variable[1_000_000] == pytest.approx(100 * variable[10_000])
    assert variable[10_000] > 0


def test_a_backfill_follows_its_rate_until_the_binding_step_and_no_further(facts: dict[str, Any]) -> None:
    from capacity.model import Settings, backfill, capacities, measured

    m = measured(costs_stage())
    slowest = min(c.docs_per_second or math.inf for c in capacities(m, Settings(), facts).values())
    documents = 100_000
    hours = {rate: backfill(documents, rate, m, Settings(), facts) for rate in (slowest / 4, slowest / 2, 2 * slowest,
                                                                                10 * slowest)}  # fmt: skip
    slow, half, fast, faster = (max(r.done_seconds for r in sim.steps.values()) for sim in hours.values())
    assert slow == pytest.approx(2 * half, rel=0.01)  # below the bound, half the rate takes twice as long
    assert half == pytest.approx(documents / (slowest / 2), rel=0.01)
    floor = documents / slowest
    assert fast >= floor
    assert faster >= floor
    assert faster == pytest.approx(fast, rel=0.01)  # past the bound a higher rate only lengthens a queue


def test_ingestion_job_mode_lifts_the_knowledge_base_bound(facts: dict[str, Any]) -> None:
    from capacity.model import Settings, capacities, measured

    m = measured(costs_stage())
    direct = capacities(m, Settings(), facts)["kb"].docs_per_second
    jobs = capacities(m, Settings(kb_mode="ingestion-job"), facts)["kb"].docs_per_second
    assert direct is not None
    assert jobs is not None
    assert jobs > direct


def test_the_backfill_orchestration_follows_the_plan_and_the_state_machine(facts: dict[str, Any]) -> None:
    from capacity.model import backfill_machine, backfill_orchestration, measured
    from sluice.backfill import PACE_BUDGET_SECONDS, pace, pace_seconds

    m = measured(costs_stage())
    machine = backfill_machine()
    assert machine.parent_states == ("Plan", "FromInventory?", "BackfillFromListing", "Summarise")
    assert machine.parent_invocations == 2
    assert (machine.child_type, machine.child_invocations, machine.child_waits) == ("EXPRESS", 1, 1)
    documents = 100_000
    for rate in (0.1, 1, 5, 10, 27, 100):
        concurrency, batch = pace(rate)
        new = backfill_orchestration(documents, documents, rate, m, facts)
        held = backfill_orchestration(documents, 0, rate, m, facts)
        for run in (new, held):
            assert (run["concurrency"], run["batch_size"]) == (concurrency, batch), rate
            assert run["children"] == math.ceil(documents / batch)
            assert run["express_limit_ok"], rate
            transitions = len(machine.parent_states) + run["children"]
            assert run["cost"]["Step Functions Standard (transitions)"] == pytest.approx(
                transitions * facts["stepfunctions_standard_transition"].value
            )
        # only rechecks wait: a child of rechecks waits pace_seconds, about q × concurrency ÷ rate in all
        assert new["full_batch_wait_seconds"] == pace_seconds(batch, concurrency, rate, 0.0)
        assert new["full_batch_wait_seconds"] <= PACE_BUDGET_SECONDS
        assert new["child_seconds"] >= documents * concurrency / rate
        assert new["child_seconds"] <= documents * concurrency / rate + new["children"] * 1.5
        assert new["hours"] * 3600 == pytest.approx(documents / rate, rel=0.05)
        assert held["longest_child_seconds"] < 1  # an unchanged batch does not wait
        assert held["cost"]["SQS (rechecks sent)"] == 0
        assert held["hours"] < new["hours"]
    # fewer children than the plan's: less Express duration for the rechecks, a slower listing of the rest
    fewer = backfill_orchestration(documents, documents, 10, m, facts, concurrency=1)
    planned = backfill_orchestration(documents, documents, 10, m, facts)
    assert fewer["batch_size"] == planned["batch_size"]
    assert (
        fewer["cost"]["Step Functions Express (duration)"] < planned["cost"]["Step Functions Express (duration)"] / 30
    )
    slow = backfill_orchestration(documents, 0, 10, m, facts, concurrency=1)
    assert slow["hours"] > 30 * backfill_orchestration(documents, 0, 10, m, facts)["hours"]


def test_the_backfill_model_moves_with_the_plan(facts: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import capacity.model
    from capacity.model import backfill_orchestration, measured

    m = measured(costs_stage())
    before = backfill_orchestration(100_000, 100_000, 10, m, facts)
    monkeypatch.setattr(capacity.model, "pace", lambda rate: (20, 40))  # half the children at once
    after = backfill_orchestration(100_000, 100_000, 10, m, facts)
    assert (after["concurrency"], after["batch_size"]) == (20, 40)
    assert after["full_batch_wait_seconds"] == before["full_batch_wait_seconds"] / 2
    assert after["child_seconds"] == pytest.approx(before["child_seconds"] / 2, rel=0.01)


def test_the_backfill_function_memory_is_the_templates() -> None:
    from samtranslator.yaml_helper import yaml_parse

    from capacity.model import BACKFILL_MEMORY_MB

    template = yaml_parse((ROOT / "template.yaml").read_text())
    assert template["Resources"]["BackfillFunction"]["Properties"]["MemorySize"] == BACKFILL_MEMORY_MB


def test_the_renderer_writes_the_page_from_a_results_file(facts: dict[str, Any], tmp_path: Path) -> None:
    from capacity import render

    bench = tmp_path / "results.json"
    bench.write_text(json.dumps({"date": "2026-12-01", "costs": costs_stage()}))
    out, results = tmp_path / "capacity.md", tmp_path / "capacity.json"
    assert render.main(["--bench", str(bench), "--out", str(out), "--results", str(results)]) == 0
    page = out.read_text()
    model = json.loads(results.read_text())
    for heading in ("## In short", "## What each step can take", "## Steady state", "## A backfill of 1,000,000",
                    "## Cost", "## Prices and quotas", "## What the model leaves out"):  # fmt: skip
        assert heading in page
    assert f"**Recommended `--rate`: {model['backfill']['recommended_rate']['ingestion-job']}**" in page
    decision = "yes" if _jobs_faster(model) else "no"
    assert f"**Decision: {decision}," in page
    for fact in facts.values():  # every fact is on the page with its source
        assert fact.source in page


def _jobs_faster(model: dict[str, Any]) -> bool:
    runs = {run["settings"]: run["hours"] for run in model["backfill"]["runs"]}
    return runs["knowledge base ingestion-job"] < runs["knowledge base direct"]


def test_without_the_costs_stage_it_says_to_run_the_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from capacity import render

    bench = tmp_path / "results.json"
    bench.write_text(json.dumps({"date": "2026-12-01", "sinks": {}}))
    out = tmp_path / "capacity.md"
    assert render.main(["--bench", str(bench), "--out", str(out), "--results", str(tmp_path / "r.json")]) == 2
    assert "make bench" in capsys.readouterr().err
    assert not out.exists()

"""`make capacity`: the capacity model (capacity/model.py) run on the per-document costs `make bench`
measured (bench/results.json, its costs stage) and the prices and quotas of capacity/facts.json, written
to capacity/results.json and rendered as docs/capacity.md, narrative included: every figure in it comes
from those two files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capacity.model import (
    BUSINESS_HOURS,
    BUSINESS_SHARE,
    DAILY,
    MARGIN,
    STEP,
    Fact,
    load_facts,
    run_model,
)

ROOT = Path(__file__).resolve().parents[1]
STEP_NAMES = {"ingest": "ingest", "kb": "knowledge base", "kendra": "Kendra"}
MODES = ("direct", "ingestion-job", "direct, with Kendra")


class MissingStageError(Exception):
    """The bench results have no costs stage."""


def _usd(value: float) -> str:
    if value < 0:
        return "−" + _usd(-value)
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.0001 else f"${value:.6f}"


def _rate(value: float | None) -> str:
    if value is None:
        return "no published bound"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _hours(value: float) -> str:
    return f"{value:,.1f} h" if value >= 1 else f"{value * 60:,.0f} min"


def _pct(value: float) -> str:
    return f"{value * 100:,.0f} %"


def _fact_links(ids: list[str], facts: Mapping[str, Fact]) -> str:
    return ", ".join(f"[{i}]({facts[i].source})" for i in ids)


# -- sections ------------------------------------------------------------------------------------------------


def summary(r: dict[str, Any], facts: Mapping[str, Fact]) -> list[str]:
    return ["## In short", "", *(f"- {bullet}" for bullet in (
        _cost_bullet(r, facts), _binding_bullet(r), _steady_bullet(r), _backfill_bullet(r), _faster_bullet(r),
        _decision_bullet(r), _rate_bullet(r), _orchestration_bullet(r),
    ))]  # fmt: skip


def _cost_bullet(r: dict[str, Any], facts: Mapping[str, Fact]) -> str:
    c = r["costs"]
    per_k = c["per_1000_documents"]["direct"]
    top = sorted(per_k.items(), key=lambda kv: -kv[1])[:3]
    kept = sum(c["monthly_per_1000_documents_kept"].values())
    kendra = c["fixed_per_day"]["with Kendra"]["Kendra index (Enterprise Edition)"]
    return (
        f"**A document costs {_usd(sum(per_k.values()))} per 1,000 to ingest** (knowledge base in direct mode, no "
        "Kendra): " + ", ".join(f"{name} {_usd(v)}" for name, v in top) + f", the rest under {_usd(top[-1][1])} each. "
        f"Keeping 1,000 documents costs {_usd(kept)} a month (S3 and S3 Vectors storage). An existing Kendra "
        f"Enterprise index adds {_usd(kendra)} a day whatever the load (Kendra takes no new customers since "
        f"{facts['kendra_closed_to_new_customers'].value})."
    )


def _sink(r: dict[str, Any], mode: str = "direct") -> dict[str, Any]:
    return next(lim for lim in r["limits"][mode] if lim["name"] == "SyncKnowledgeBaseFunction instances")


def _binding_bullet(r: dict[str, Any]) -> str:
    binding = {(s["modes"]["direct"]["binding"], s["modes"]["direct"]["binding_limit"]) for s in r["steady_state"]}
    where = "at every volume" if len(binding) == 1 else "at some volumes (the table below)"
    step, limit = sorted(binding)[0]
    sink, b = _sink(r), r["backfill"]
    ingest_only = b["documents"] * b["ingest_calls_per_document"] / b["kb_quota"] / 3600
    return (
        f"**The {STEP_NAMES[step]} step binds first {where}**, on its {limit}. In direct mode the knowledge-base sink "
        f"takes {_rate(sink['docs_per_second'])} documents a second ({sink['why']}; an instance paces "
        "IngestKnowledgeBaseDocuments and GetKnowledgeBaseDocuments at 2 a second each, the status checks beside "
        "the ingests). "
        f"Even with every call at the full {b['kb_quota']:g} a second per API, direct mode cannot pass "
        f"{_rate(b['direct_ceiling'])} documents a second. Counting the ingest calls alone at the quota, as the issue "
        f"did, {b['documents']:,} documents take {_hours(ingest_only)}."
    )


def _steady_bullet(r: dict[str, Any]) -> str:
    steady = {(s["per_day"], s["profile"]): s["modes"] for s in r["steady_state"]}
    fits = [n for n in DAILY if steady[(n, "business hours")]["direct"]["steps"]["kb"]["max_backlog"] == 0]
    over = [n for n in DAILY if n not in fits]
    text = f"**Steady state**: {' and '.join(f'{n:,}' for n in fits)} documents a day fit in direct mode"
    if fits:
        busiest = steady[(fits[-1], "business hours")]["direct"]["steps"]["kb"]["peak_utilization"]
        text += f" (the sink at most {_pct(busiest)} busy at a business-hours peak, no queue)"
    for n in over:
        run = steady[(n, "business hours")]
        kb, jobs = run["direct"]["steps"]["kb"], run["ingestion-job"]["steps"]
        text += (
            f". {n:,} a day does not: with {_pct(BUSINESS_SHARE)} of it in business hours the sink's queue reaches "
            f"{kb['max_backlog']:,.0f} documents, a document waits up to {_hours(kb['max_wait_hours'])}, and the "
            f"day is through after {_hours(run['direct']['hours'])}, so every day adds to the backlog. In "
            f"ingestion-job mode the same day keeps the sink at most {_pct(jobs['kb']['peak_utilization'])} busy "
            f"and the ingest function {_pct(jobs['ingest']['peak_utilization'])}; how long the jobs then take is not "
            "published"
        )
    return text + "."


def _backfill_bullet(r: dict[str, Any]) -> str:
    b = r["backfill"]
    steps = b["at_default"]["steps"]
    return (
        f"**A backfill of {b['documents']:,} documents at the defaults** (`--rate {b['default_rate']:g}`, direct "
        f"mode): the registry is complete after {_hours(steps['ingest']['done_hours'])}, the knowledge base after "
        f"{_hours(steps['kb']['done_hours'])}, its queue {steps['kb']['max_backlog']:,.0f} documents deep at worst. "
        f"A rate above {_rate(_sink(r)['docs_per_second'])} only lengthens that queue."
    )


def _jobs_run(r: dict[str, Any]) -> dict[str, Any]:
    return next(run for run in r["backfill"]["runs"] if run["settings"] == "knowledge base ingestion-job")


def _faster_bullet(r: dict[str, Any]) -> str:
    jobs, fastest = _jobs_run(r), r["backfill"]["fastest"]
    edits = fastest["settings"].removeprefix("knowledge base ingestion-job, ")
    return (
        f"**Faster**: in ingestion-job mode the sink makes a few calls per thousand documents; the backfill at "
        f"{_rate(jobs['rate'])} documents a second ({_pct(MARGIN)} of the slowest step, "
        f"{STEP_NAMES[jobs['binding']]}'s "
        f"{jobs['binding_limit']}) is handed to the jobs after {_hours(jobs['hours'])}. With {edits} it runs at "
        f"{_rate(fastest['rate'])} a second and takes {_hours(fastest['hours'])}, bound by "
        f"{STEP_NAMES[fastest['binding']]}'s {fastest['binding_limit']}. The jobs' own pace is not published; if the "
        "account's Titan Text Embeddings V2 quota bounds them, the backfill section gives the time for a range of "
        "quotas."
    )


def _decision_bullet(r: dict[str, Any]) -> str:
    b, c = r["backfill"], r["costs"]["per_1000_documents"]
    direct = next(run for run in b["runs"] if run["settings"] == "knowledge base direct")
    jobs = _jobs_run(r)
    switch = jobs["hours"] < direct["hours"]
    direct_cost, jobs_cost = sum(c["direct"].values()), sum(c["ingestion-job"].values())
    return (
        f"**Decision: {'yes' if switch else 'no'}, a backfill should {'' if switch else 'not '}switch the knowledge "
        f"base to ingestion-job mode**{' (and back afterwards)' if switch else ''}: at the template's settings and "
        f"{_pct(MARGIN)} of the slowest step, {b['documents']:,} documents take {_hours(jobs['hours'])} in "
        f"ingestion-job mode against {_hours(direct['hours'])} in direct mode, at {_usd(jobs_cost)} per 1,000 "
        f"documents against {_usd(direct_cost)}. While it runs, new documents wait for the running job instead of "
        "being ingested one by one."
        + (
            " `sluice backfill --kb-sync-mode ingestion-job` holds the mode for the run and gives it back after."
            if switch
            else ""
        )
    )


def _rate_bullet(r: dict[str, Any]) -> str:
    rec = r["backfill"]["recommended_rate"]
    return (
        f"**Recommended `--rate`: {rec['ingestion-job']}** documents a second with the knowledge base in ingestion-job "
        f"mode ({_pct(MARGIN)} of the slowest step; {rec['ingestion-job, beside 100,000 a day']} beside a live load "
        f"of 100,000 documents a day at its business-hours peak; {rec['ingestion-job, with Kendra']} with an "
        f"existing Kendra index, whose sink then binds); {rec['direct']} if the knowledge base stays in direct mode "
        f"(the backfill's default, {r['backfill']['default_rate']:g}, is more than direct mode's sink takes)."
    )


def _orchestration(r: dict[str, Any], rate: float, rechecks: int) -> dict[str, Any]:
    runs = r["backfill"]["orchestration"]["runs"]
    return next(o for o in runs if o["rate"] == rate and o["rechecks"] == rechecks)


def _express(o: dict[str, Any]) -> float:
    return float(o["cost"]["Step Functions Express (duration)"])


def _orchestration_bullet(r: dict[str, Any]) -> str:
    b = r["backfill"]
    n, rate = b["documents"], b["default_rate"]
    new, held = _orchestration(r, rate, n), _orchestration(r, rate, 0)
    one, planned = b["orchestration"]["concurrency"][0], b["orchestration"]["concurrency"][-1]
    return (
        f"**The backfill's own cost** is small beside the documents'. At the default `--rate {rate:g}` its plan "
        f"(`sluice.backfill.pace`) runs {new['concurrency']} children at once, {new['batch_size']} objects each: "
        f"{n:,} new documents cost {_usd(sum(new['cost'].values()))}, {_usd(_express(new))} of it Express duration "
        f"({new['child_seconds'] / 1e6:.1f} million child-seconds: a child that queued {new['batch_size']} rechecks "
        f"waits {new['full_batch_wait_seconds']} s), and are queued in {_hours(new['hours'])}; {n:,} documents Sluice "
        f"holds unchanged cost {_usd(sum(held['cost'].values()))} (a registry read and a HeadObject each, no wait) and "
        f"are listed in {_hours(held['hours'])}. Only rechecks wait, so the children's time is about rechecks × "
        f"concurrency ÷ rate: {_at_a_time(one['concurrency'])} would queue the same rechecks (in "
        f"{_hours(one['rechecked']['hours'])}) for {_usd(_express(one['rechecked']))} of Express duration instead of "
        f"{_usd(_express(planned['rechecked']))}, and list {n:,} unchanged objects in "
        f"{_hours(one['unchanged']['hours'])} instead of {_hours(planned['unchanged']['hours'])}."
    )


def _at_a_time(children: int) -> str:
    return "one child at a time" if children == 1 else f"{children} children at a time"


def measured_section(r: dict[str, Any], costs: dict[str, Any]) -> list[str]:
    m = r["measured"]
    lines = [
        "## What a document takes (measured)",
        "",
        f"`make bench`'s costs stage ({m['date']}): {m['documents']} documents of `make load`'s mix through the real "
        "handlers against the local stack, every AWS request counted on the functions' own botocore sessions "
        f"(docs/benchmarks.md). A document averages {m['chunks_per_document']:.2f} chunks and "
        f"{m['tokens_per_document']:.0f} tokens, {m['vector_bytes_per_document'] / 1024:.1f} KB in S3 Vectors "
        "(1,024 float32 dimensions, the chunk's text and metadata per chunk) and "
        f"{m['stored_bytes_per_document'] / 1024:.1f} KB "
        "of processed files. Function time is the measured CPU plus an assumed latency per request (facts below) "
        "plus the sink's waits on its own pacing.",
        "",
        "| function | CPU a document | function time a document | AWS requests per 1,000 documents |",
        "|---|---:|---:|---|",
    ]
    names = {
        "ingest": "IngestDocumentFunction",
        "kb-direct": "SyncKnowledgeBaseFunction, direct",
        "kb-job": "SyncKnowledgeBaseFunction, ingestion-job",
        "kendra": "SyncKendraFunction",
    }
    for label, name in names.items():
        calls = ", ".join(f"{op.split(':')[1]} {n:,.0f}" for op, n in m["requests_per_1000"][label].items())
        lines.append(
            f"| {name} | {m['cpu_seconds_per_document'][label] * 1000:.1f} ms | "
            f"{m['seconds_per_document'][label] * 1000:.0f} ms | {calls} |"
        )
    return lines


def limits_section(r: dict[str, Any], facts: Mapping[str, Fact]) -> list[str]:
    lines = [
        "## What each step can take",
        "",
        "Documents a second each limit allows, at the template's settings. A step's capacity is its smallest "
        "limit; one AWS does not publish puts no bound and is listed for what it is.",
        "",
        "| mode | step | limit | documents a second | because | source |",
        "|---|---|---|---:|---|---|",
    ]
    for mode in ("direct", "ingestion-job"):
        for lim in r["limits"][mode]:
            if mode == "ingestion-job" and lim["step"] != "kb":
                continue
            lines.append(
                f"| {mode} | {STEP_NAMES[lim['step']]} | {lim['name']} | {_rate(lim['docs_per_second'])} | "
                f"{lim['why']} | {_fact_links(lim['facts'], facts)} |"
            )
    for lim in r["limits"]["direct, with Kendra"]:
        if lim["step"] == "kendra":
            lines.append(
                f"| with Kendra | Kendra | {lim['name']} | {_rate(lim['docs_per_second'])} | {lim['why']} | "
                f"{_fact_links(lim['facts'], facts)} |"
            )
    return lines


def steady_section(r: dict[str, Any]) -> list[str]:
    start, end = BUSINESS_HOURS
    lines = [
        "## Steady state: 10,000, 100,000 and 1,000,000 documents a day",
        "",
        f"A day's documents arriving evenly, or {_pct(BUSINESS_SHARE)} of them between {start}:00 and {end}:00 (the "
        f"business-hours profile, an assumption); a fluid simulation in {STEP:.0f} s steps. `busy` is the binding "
        "step's peak arrival rate over its capacity; `longest wait` the longest a document queues anywhere; `through` "
        "when the "
        "day's last document is done (24 h when nothing queues).",
        "",
        "| documents a day | arrivals | mode | binds first | busy at peak | longest wait | through "
        "| with a Kendra index: its sink busy at peak |",
        "|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for s in r["steady_state"]:
        kendra = s["modes"]["direct, with Kendra"]["steps"]["kendra"]["peak_utilization"]
        for mode in MODES[:2]:
            sim = s["modes"][mode]
            wait = max(step["max_wait_hours"] for step in sim["steps"].values())
            lines.append(
                f"| {s['per_day']:,} | {s['profile']} | {mode} | {STEP_NAMES[sim['binding']]}: "
                f"{sim['binding_limit']} | {_pct(sim['steps'][sim['binding']]['peak_utilization'])} | "
                f"{_hours(wait) if wait > 0 else '-'} | {_hours(sim['hours'])} | {_pct(kendra)} |"
            )
    lines += [
        "",
        "In ingestion-job mode `through` is when the sink has handed a document to a job; the job's own time "
        "is not published. Kendra's sink is as busy in either mode.",
    ]
    return lines


def backfill_section(r: dict[str, Any]) -> list[str]:
    b = r["backfill"]
    lines = [
        f"## A backfill of {b['documents']:,} documents",
        "",
        f"Documents injected at the backfill's `--rate` (its Distributed Map paces the rechecks it queues); each run "
        f"below at the highest rate that keeps every step at most {_pct(MARGIN)} busy, except the first (the "
        f"backfill's default, {b['default_rate']:g} a second). Ingest done: every document recorded in the registry; "
        "knowledge base: indexed (direct) or handed to a job (ingestion-job).",
        "",
        "| settings | rate | binds | ingest done | knowledge base | its longest wait |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for run in [b["at_default"], b["at_default_with_kendra"], *b["runs"]]:
        steps = run["steps"]
        lines.append(
            f"| {run['settings']} | {run['rate']:,.1f} | {STEP_NAMES[run['binding']]}: {run['binding_limit']} | "
            f"{_hours(steps['ingest']['done_hours'])} | {_hours(steps['kb']['done_hours'])} | "
            f"{_hours(steps['kb']['max_wait_hours']) if steps['kb']['max_wait_hours'] > 0 else '-'} |"
        )
    lines += [
        "",
        "The time follows the rate until the binding step's capacity, then stops falling (direct mode, the template's "
        "settings):",
        "",
        "| rate | " + " | ".join(f"{x['rate']:g}" for x in b["sweep"]) + " |",
        "|---|" + "---:|" * len(b["sweep"]),
        "| hours | " + " | ".join(f"{x['hours']:,.0f}" for x in b["sweep"]) + " |",
        "",
        "If the account's on-demand request quota for Titan Text Embeddings V2 bounds the knowledge base's embedding "
        "(AWS publishes neither the default nor whether a knowledge base's own embedding counts against it; read yours "
        "with `aws service-quotas get-service-quota --service-code bedrock --quota-code L-26C560CE`), the fastest "
        "settings above give:",
        "",
        "| embedding requests a minute | rate | binds | knowledge base |",
        "|---:|---:|---|---:|",
    ]
    for run in b["embedding_quota"]:
        rpm = run["settings"].rsplit("embedding quota ", 1)[1].removesuffix("/min")
        lines.append(
            f"| {rpm} | {run['rate']:,.1f} | {STEP_NAMES[run['binding']]}: {run['binding_limit']} | "
            f"{_hours(run['steps']['kb']['done_hours'])} |"
        )
    return lines + orchestration_lines(r)


def orchestration_lines(r: dict[str, Any]) -> list[str]:
    b = r["backfill"]
    o = b["orchestration"]
    n, rate = b["documents"], b["default_rate"]
    new = _orchestration(r, rate, n)
    parent, child = new["parent_states"], new["child_states"]
    components = list(new["cost"])
    longest = max(run["longest_child_seconds"] for run in o["runs"])
    lines = [
        "",
        f"The backfill's own cost and time for {n:,} objects, from the state machine the stack deploys "
        "(statemachine/backfill.asl.json) and the plan its Plan state makes (`sluice.backfill.pace`): the Standard "
        f"parent passes through {', '.join(parent)} ({len(parent)} state transitions) and one transition more for "
        "each child the Distributed Map starts. Each child is an Express workflow, "
        f"{' then '.join(child)}: one invocation of BackfillFunction ({o['memory_mb']} MB) that reads the registry "
        "for its batch, heads the sidecar of each document Sluice holds unchanged (the model assumes none is listed "
        "in the same batch), queues the rechecks ten a call and records the batch; then a Wait of "
        "`sluice.backfill.pace_seconds`: q × concurrency ÷ rate seconds less the invocation's time for a child that "
        "queued q rechecks, none for a batch of unchanged objects. A child's Express duration is rounded up to 100 "
        f"ms and billed, as the model assumes, at {o['express_billing_mb']} MB (the smallest chunk AWS bills an "
        "execution's memory in). `new`: every object listed needs a recheck (a bucket "
        "that held documents before Sluice); `unchanged`: Sluice holds every one (a second run). A bucket of both "
        "costs about the sum of each share. `time`: the listing and queueing, the children at once kept busy; the "
        f"ingestion behind it is in the table above. A full batch's wait stays within {o['pace_budget_seconds']} s "
        f"(`sluice.backfill.PACE_BUDGET_SECONDS`); the longest child below lives {longest:.1f} s, "
        f"{'within' if all(run['express_limit_ok'] for run in o['runs']) else 'past'} Express's "
        f"{o['express_max_seconds']:.0f} s.",
        "",
        "| rate | objects | children at once × batch | children | a full batch waits | longest child | "
        "child-seconds | " + " | ".join(components) + " | total | time |",
        "|---:|---|---:|---:|---:|---:|---:|" + "---:|" * (len(components) + 2),
    ]
    for run in o["runs"]:
        kind = "new" if run["rechecks"] == run["documents"] else "unchanged"
        cells = " | ".join(_usd(run["cost"][c]) for c in components)
        lines.append(
            f"| {run['rate']:g} | {kind} | {run['concurrency']} × {run['batch_size']} | {run['children']:,} | "
            f"{run['full_batch_wait_seconds'] if run['rechecks'] else 0} s | {run['longest_child_seconds']:.1f} s | "
            f"{run['child_seconds']:,.0f} | {cells} | {_usd(sum(run['cost'].values()))} | {_hours(run['hours'])} |"
        )
    one, planned = o["concurrency"][0], o["concurrency"][-1]
    saved = _express(planned["rechecked"]) - _express(one["rechecked"])
    lines += [
        "",
        "Only rechecks wait, so the children's Express duration is about rechecks × concurrency ÷ rate "
        "child-seconds: the rechecks go at the rate whatever the concurrency, and what the plan's "
        f"{planned['concurrency']} children at once buy is the listing of the objects that need none (their children "
        "end as soon as their invocation does), at the price of a first wave of concurrency × batch rechecks queued "
        f"at once. At `--rate {rate:g}`, the plan's batch of {planned['rechecked']['batch_size']}, and fewer children "
        "at once than the plan's:",
        "",
        f"| children at once | Express duration, {n:,} new | total, {n:,} new | queued in | {n:,} unchanged listed in "
        "| first wave |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in o["concurrency"]:
        new_run, held = row["rechecked"], row["unchanged"]
        lines.append(
            f"| {row['concurrency']} | {_usd(_express(new_run))} | {_usd(sum(new_run['cost'].values()))} | "
            f"{_hours(new_run['hours'])} | {_hours(held['hours'])} | {new_run['first_wave']:,} |"
        )
    lines += [
        "",
        f"The trade-off: {planned['concurrency']} children at once cost {_usd(saved)} more Express duration per "
        f"{n:,} rechecks than {_at_a_time(one['concurrency'])} ({_usd(_express(planned['rechecked']))} against "
        f"{_usd(_express(one['rechecked']))}), and list {n:,} unchanged objects in "
        f"{_hours(planned['unchanged']['hours'])} rather than {_hours(one['unchanged']['hours'])}. Fewer children "
        f"also queue a little slower than the rate ({_hours(one['rechecked']['hours'])} against "
        f"{_hours(planned['rechecked']['hours'])}): the rounding of a child's wait up to a whole second and Step "
        f"Functions' call to the function weigh more on a shorter cycle ({one['rechecked']['batch_size']} rechecks "
        f"every {one['rechecked']['full_batch_wait_seconds']} s for {_at_a_time(one['concurrency'])}, every "
        f"{planned['rechecked']['full_batch_wait_seconds']} s for each of {planned['concurrency']}). The plan "
        "(`sluice.backfill.pace`) decides the concurrency; this page follows it.",
    ]
    return lines


def cost_section(r: dict[str, Any]) -> list[str]:
    c = r["costs"]
    per_k = c["per_1000_documents"]
    columns = [*MODES, "backfill, ingestion-job"]
    lines = [
        "## Cost",
        "",
        "Per 1,000 documents ingested, by component (us-east-1, on demand, no free tiers). The last column is a "
        "backfill in ingestion-job mode at its recommended rate, every document new, its orchestration included "
        "(Step Functions runs only then):",
        "",
        "| component | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in per_k["direct"]:
        lines.append(f"| {name} | " + " | ".join(_usd(per_k[mode][name]) for mode in columns) + " |")
    lines.append("| **total** | " + " | ".join(f"**{_usd(sum(per_k[mode].values()))}**" for mode in columns) + " |")
    lines += [
        "",
        "Per 1,000 documents kept, a month: "
        + ", ".join(f"{k} {_usd(v)}" for k, v in c["monthly_per_1000_documents_kept"].items())
        + ". Per 1,000 questions: "
        + ", ".join(f"{k} {_usd(v)}" for k, v in c["per_1000_queries"].items())
        + " (the data each query processes is charged too; see the facts). Fixed, a day: "
        + "; ".join(
            f"{mode}: " + ", ".join(f"{k} {_usd(v)}" for k, v in f.items()) for mode, f in c["fixed_per_day"].items()
        )
        + ".",
        "",
        "A day's total, documents and fixed costs (storage and questions apart):",
        "",
        "| documents a day | " + " | ".join(MODES) + " |",
        "|---:|" + "---:|" * len(MODES),
    ]
    for n, by_mode in c["daily"].items():
        lines.append(f"| {int(n):,} | " + " | ".join(_usd(by_mode[mode]) for mode in MODES) + " |")
    return lines


def facts_section(facts: Mapping[str, Fact]) -> list[str]:
    lines = [
        "## Prices and quotas",
        "",
        "capacity/facts.json, each with its source and the date it was checked. Re-check before relying on one: prices "
        "change, and Service Quotas shows an account's own quotas.",
        "",
        "| what | value | source | checked |",
        "|---|---|---|---|",
    ]
    for f in facts.values():
        if f.published:
            lines.append(f"| {f.what} | {_value(f)} | [{f.id}]({f.source}) | {f.checked} |")
    lines += ["", "Not published (or not found), and what the model assumes instead:", ""]
    for f in facts.values():
        if not f.published:
            lines.append(f"- **{f.what}** ({f.id}, [source]({f.source}), checked {f.checked}): {f.note}")
    return lines


def _value(f: Fact) -> str:
    if f.value is None:
        return f"no published bound ({f.unit})" if f.kind == "quota" else "not published"
    if isinstance(f.value, float) and f.value < 0.01:
        return f"{f.value:.10f}".rstrip("0") + f" {f.unit}"
    return f"{f.value:,} {f.unit}" if not isinstance(f.value, str) else f.value


LEFT_OUT = [
    "KMS requests (the buckets use bucket keys; the queues reuse a data key for 300 s), CloudWatch Logs and metrics, "
    "X-Ray traces, and data transfer.",
    "DynamoDB storage and point-in-time recovery, RawBucket's storage and versions, free tiers and volume tiers.",
    "Cold starts: the measured CPU is warm; an execution environment's first invocation costs more "
    "(docs/benchmarks.md).",
    "Retries, redeliveries and throttling: the bench injects no faults (make faults does).",
    "Status checks beyond the first: the emulators confirm at the first check; a real knowledge base may take more, "
    "each a GetKnowledgeBaseDocuments per ten chunks.",
    "What a knowledge base's ingestion job does besides reading the files (its scans of the data source), and its "
    "pace.",
    "Kendra's storage capacity units beyond an index's base, and S3 Vectors' charge for the data a query processes.",
    "Reconciliation passes (docs/operations.md gives their requests per pass) and connector runs.",
    "In a backfill: BackfillFunction's CPU (not measured: its time is the assumed latencies of its requests), "
    "Step Functions' own time to start a child, Summarise's Query of the batch records, `sluice backfill` following "
    "the run, and an S3 Inventory's reads in place of the listing.",
]


def render(r: dict[str, Any], facts: Mapping[str, Fact], bench_date: str) -> str:
    lines = [
        "# Capacity and cost",
        "",
        "Written by `make capacity` (capacity/render.py) from the per-document costs `make bench` measured "
        f"({r['measured']['date']}; bench/results.json, its costs stage) and the prices and quotas of "
        "capacity/facts.json, with the capacity model in capacity/model.py (how it works: capacity/README.md). "
        "When the code's costs change, `make bench` (or only its costs stage) and `make capacity` bring every "
        f"figure here along. Results: capacity/results.json. Bench run of {bench_date}.",
        "",
        *summary(r, facts),
        "",
        *measured_section(r, r["costs"]),
        "",
        *limits_section(r, facts),
        "",
        *steady_section(r),
        "",
        *backfill_section(r),
        "",
        *cost_section(r),
        "",
        *facts_section(facts),
        "",
        "## What the model leaves out",
        "",
        *(f"- {item}" for item in LEFT_OUT),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def costs_of(bench: dict[str, Any]) -> dict[str, Any]:
    if "costs" not in bench:
        raise MissingStageError(
            "bench/results.json has no costs stage: run `make bench`, or only that stage with "
            "`.venv/bin/python bench/run.py --stage costs` (about six minutes), then `make capacity`"
        )
    costs: dict[str, Any] = bench["costs"]
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the capacity model, rendered as docs/capacity.md")
    parser.add_argument("--bench", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--facts", type=Path, default=ROOT / "capacity" / "facts.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "capacity.md")
    parser.add_argument("--results", type=Path, default=ROOT / "capacity" / "results.json")
    args = parser.parse_args(argv)
    bench = json.loads(args.bench.read_text())
    try:
        costs = costs_of(bench)
    except MissingStageError as exc:
        print(exc, file=sys.stderr)
        return 2
    facts = load_facts(args.facts)
    results = run_model(costs, facts)
    args.results.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    args.out.write_text(render(results, facts, bench.get("date", "?")))
    print(f"written to {args.out} and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

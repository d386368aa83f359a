"""`sluice finetune INPUT.json`: start the fine-tune workflow with a console input and follow it,
state by state, to its end; then the result (or the reason it failed) and the dataset report.

What the Step Functions console shows, in a terminal: for a developer on the local stack, for an
operator who would rather not click. The execution is the same one the console lists."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from sluice_cli.status import start_execution

Clients = Callable[[str], Any]
POLL = 0.5  # seconds between two looks at the execution's history
# A trial's waiting loop, left out of the lines written (the states list keeps every state).
# The waiting loops inside a Map's iterations, left out of what `sluice finetune` prints.
ITERATION_LOOPS = frozenset(
    {"HasValidationSet?", "WaitForJob", "CheckJob", "CountCheck", "JobStatus?",
     "WaitForJudge", "CheckJudge", "CountJudgeCheck", "JudgeStatus?"}
)  # fmt: skip
# How each Map state's iterations are named: a search's trials t1, t2, …; the judge's two sides.
ITERATION_NAMES: dict[str, tuple[str, ...]] = {"Judge": ("judge base", "judge custom")}


@dataclass
class FineTuneRun:
    execution_arn: str
    status: str = "RUNNING"
    states: list[str] = field(default_factory=list)  # entered, in order
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cause: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # the dataset report, when one was written


def start(outputs: dict[str, str], client: Clients, payload: dict[str, Any], name: str | None = None) -> str:
    return start_execution(outputs, client, "FineTuneStateMachineArn", payload, name)


def follow(client: Clients, arn: str, out: TextIO | None, timeout: float) -> FineTuneRun:
    """Until the execution ends (or ``timeout``), writing each state as it is entered."""
    sfn = client("stepfunctions")
    run = FineTuneRun(arn)
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    iteration_of: dict[int, str] = {}  # event id -> the Map iteration it belongs to ("trial t1")
    while True:
        # The status first, then the history: a run that ended in between still shows its last states.
        execution = sfn.describe_execution(executionArn=arn)
        for event in _new_events(sfn, arn, events[-1]["id"] if events else 0):
            events.append(event)
            iteration = event.get("mapIterationStartedEventDetails")
            if iteration is not None:
                iteration_of[event["id"]] = _iteration_name(iteration.get("name", ""), int(iteration.get("index", 0)))
            elif event.get("previousEventId") in iteration_of and not str(event.get("type")).startswith("Map"):
                iteration_of[event["id"]] = iteration_of[event["previousEventId"]]  # an iteration's thread goes on
            entered = event.get("stateEnteredEventDetails")
            if entered:
                run.states.append(entered["name"])
                if out is not None:
                    out.write(_state_line(entered["name"], iteration_of.get(event["id"])))
                    out.flush()
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    run.status = execution["status"]
    run.output = json.loads(execution.get("output") or "{}")
    run.error, run.cause = execution.get("error", ""), execution.get("cause", "")
    run.report = _report(client, run.output.get("dataset_report_uri") or _report_uri(events))
    return run


def _iteration_name(map_state: str, index: int) -> str:
    names = ITERATION_NAMES.get(map_state, ())
    return names[index] if index < len(names) else f"trial t{index + 1}"


def _state_line(name: str, iteration: str | None) -> str:
    """A state as the console's graph would name it; a Map iteration's, with the iteration's name
    (its waiting loop left out)."""
    if iteration is None:
        return f"    {name}\n"
    return "" if name in ITERATION_LOOPS else f"      {iteration}: {name}\n"


def _new_events(sfn: Any, arn: str, after: int) -> list[dict[str, Any]]:
    """The history's events after event ``after``, oldest first: read newest first and only as far
    back as needed, so following a days-long job does not read its whole history at every look."""
    new: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn, reverseOrder=True):
        for event in page["events"]:
            if event["id"] <= after:
                return new[::-1]
            new.append(event)
    return new[::-1]


def _report_uri(events: list[dict[str, Any]]) -> str:
    """Where PrepareDataset wrote its report, for a run that failed after it (or skipped it)."""
    for event in reversed(events):
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") == "PrepareDataset":
            return str((json.loads(details.get("output") or "{}").get("dataset") or {}).get("report_uri", ""))
    return ""


def _report(client: Clients, uri: str) -> dict[str, Any]:
    if not uri.startswith("s3://"):
        return {}
    bucket, key = uri[5:].split("/", 1)
    report: dict[str, Any] = json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return report


def render(run: FineTuneRun, out: TextIO) -> None:
    out.write(f"  execution {run.execution_arn.rsplit(':', 1)[-1]}: {run.status}\n")
    if run.status == "SUCCEEDED" and "custom_model_arn" in run.output:
        out.write(f"  custom model     {run.output['custom_model_arn']}\n")
        if run.output.get("throughput"):
            out.write(f"  throughput       {run.output['throughput'].get('ProvisionedModelArn')}\n")
        if run.output.get("deployment"):
            out.write(
                f"  on demand        {run.output['deployment'].get('CustomModelDeploymentArn')} (the modelId to call)\n"
            )
        _render_search(run.output.get("search"), out)
        _render_evaluation(run.output, out)
        batch = run.output.get("batch")
        if batch:
            outcome = {
                "NotRun": f"did not run: {batch.get('reason')}",
                "NotFollowed": f"started ({batch.get('job_arn')}), not followed: {batch.get('reason')}",
            }.get(batch["status"], batch["status"])
            out.write(
                f"  batch            {batch.get('records')} prompts, {outcome}; output {batch.get('output_uri')}\n"
            )
    elif run.status == "SUCCEEDED":
        out.write("  no new model: the corpus has not changed enough since the last one\n")
    elif run.status != "RUNNING":
        out.write(f"  error            {run.error}\n")
        for line in run.cause.splitlines():
            out.write(f"    {line}\n")
    report = run.report
    if report:
        out.write(
            f"  dataset          {report.get('records')} records ({report.get('format')}): "
            f"{report.get('train_records')} to train, {report.get('validation_records')} to validate\n"
            f"  tokens           {report.get('train_tokens')} in training records, longest record "
            f"{report.get('max_record_tokens_seen')}; {report.get('epochs')} epoch(s) → about "
            f"{report.get('estimated_training_tokens')} training tokens ({report.get('tokenizer')})\n"
        )
        search = report.get("search") or {}
        if search:
            out.write(
                f"  search tokens    {search.get('trials')} trials → about {search.get('estimated_training_tokens')} "
                "training tokens in all\n"
            )
        corpus = report.get("corpus") or {}
        if corpus:
            documents = corpus.get("documents")
            noun = "document" if documents == 1 else "documents"
            out.write(f"  from the corpus  {documents} {noun}, {corpus.get('skipped_total')} skipped\n")
        for warning in report.get("warnings", []):
            out.write(f"  warning          {warning}\n")


def _render_search(search: dict[str, Any] | None, out: TextIO) -> None:
    if not search:
        return
    by = str(search.get("chosen_by", "")).replace("_", " ")
    out.write(f"  search           {len(search['trials'])} trials, the best {search['best']} by {by}\n")
    for trial in search["trials"]:
        settings = ", ".join(f"{k}={v}" for k, v in trial["hyperparameters"].items())
        if trial["status"] == "Completed":
            fate = "best" if trial["trial"] == search["best"] else ("kept" if trial.get("kept") else "deleted")
            what = f"validation loss {trial.get('validation_loss')}, training loss {trial.get('training_loss')}; {fate}"
        else:
            what = f"{trial['status']}: {trial.get('reason', '')}"
        out.write(f"    {trial['trial']:<4} {settings:<40} {what}\n")


def _render_evaluation(output: dict[str, Any], out: TextIO) -> None:
    evaluation = output.get("evaluation")
    if not evaluation:
        return
    out.write(f"  evaluation       {evaluation['prompts']} held-out prompts, base against custom\n")
    for line in str(evaluation.get("table", "")).splitlines():
        out.write(f"    {line}\n")
    verdict = "the custom model wins" if evaluation.get("custom_wins") else "the custom model does not win"
    kept = "kept" if output.get("promoted", True) else "withdrawn (promote_only_if_better)"
    out.write(f"  promoted         {verdict}: its deployment is {kept}\n")


def run_input(
    outputs: dict[str, str],
    client: Clients,
    payload: dict[str, Any],
    out: TextIO,
    *,
    name: str | None = None,
    wait: bool = True,
    timeout: float = 6 * 3600,
) -> int:
    """What the command does; 0 when the execution succeeded (or was started, without ``wait``)."""
    arn = start(outputs, client, payload, name)
    out.write(f"Started {arn}\n")
    if not wait:
        return 0
    run = follow(client, arn, out, timeout)
    render(run, out)
    return 0 if run.status == "SUCCEEDED" else 1

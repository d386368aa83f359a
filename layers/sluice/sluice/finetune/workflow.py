"""The fine-tune workflow's own steps (the Lambda tasks of statemachine/finetune.asl.json).

Each step takes the execution's state and returns it with its part added, so the state machine
passes one document along and a console user reads every decision in it: ``settings`` (the
validated input, what Bedrock said of the base model, the trials, the warnings), ``corpus_change``
(for scheduled retraining), ``dataset`` (where the JSONL went, and the report with the
training-token estimate and the warnings), ``jobs`` (one customization job per trial, which the
Map state runs), ``search`` (every trial's losses and the best), ``evaluation`` (base against
custom), ``result`` (the custom model, how it is served, the notification's text). Everything that
could fail the Bedrock job for a reason in the data or the settings fails here first, before any
money is spent, with the problems named (line numbers included).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sluice.finetune.batch import batch_input
from sluice.finetune.dataset import (
    CorpusDocument,
    DatasetInvalidError,
    corpus_records,
    matches_filter,
    parse_jsonl,
    prepare,
)
from sluice.finetune.evaluation import Ask, evaluate, held_out
from sluice.finetune.families import FINE_TUNING, family_for
from sluice.finetune.scoring import PLACES, Scores, compare, table
from sluice.finetune.settings import FineTuneInputError, SupportLookup, client_token_for, validate_input
from sluice.pipeline.files import s3_uri, split_s3_uri, text_key
from sluice.registry import DocumentRecord, Status
from sluice.storage import ObjectHead, ObjectReader

PREFIX = "finetune/"
MAX_DATASET_BYTES = 1024**3  # Bedrock's training-file limit for most families (1 GB)
PAIR_KINDS = frozenset({"jsonl", "json", "csv"})  # documents whose original records can hold pairs


class DatasetSourceError(ValueError):
    """The dataset named in the input cannot be read (missing, too large, or outside the stack)."""


class CustomizationJobFailed(RuntimeError):
    """Every trial's job failed (or Bedrock refused to start it); the message names each reason."""


class CustomizationJobEnded(RuntimeError):
    """The only job was stopped."""


class JobStillRunning(RuntimeError):
    """No trial completed and at least one is still running: the execution stops following it."""


# What the Lambda asks Bedrock beyond the base model: the account's quota of customization jobs at
# once (None and why, when it cannot be read), a custom model's deletion, and an answer (Converse).
QuotaLookup = Callable[[], tuple[int | None, str]]
ModelDeleter = Callable[[str], None]
STACK_TAG = "sluice:stack"  # on every custom model and deployment the workflow makes
_CONTEXT_SUFFIX = re.compile(r":\d+k$")  # amazon.nova-micro-v1:0:128k: the customizable version's id


class Documents(Protocol):
    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]: ...


class Writer(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...


def _latest_key(settings: Mapping[str, Any]) -> str:
    """Where the last model of this lineage (the input's custom_model_name) is recorded."""
    return f"{PREFIX}models/{settings['lineage']}/latest.json"


class FineTuneSteps:
    def __init__(
        self,
        *,
        documents: Documents,
        reader: ObjectReader,
        writer: Writer,
        processed_bucket: str,
        readable_buckets: frozenset[str],
        support: SupportLookup | None = None,
        quota: QuotaLookup | None = None,
        delete_model: ModelDeleter | None = None,
        ask: Ask | None = None,
        resolve_model: Callable[[str], str] | None = None,
        stack: str = "",
        clock: Any = None,
    ) -> None:
        self.documents = documents
        self.reader = reader
        self.writer = writer
        self.bucket = processed_bucket
        self.readable = readable_buckets
        self.support = support  # Bedrock asked about the base model; None: the input alone is checked
        self.quota = quota
        self.delete_model = delete_model
        self.ask = ask
        self.resolve_model = resolve_model or (lambda model: model)  # a model id -> what to call for it
        self.stack = stack
        self.clock = clock or (lambda: datetime.now(UTC))

    def run(self, step: str, state: dict[str, Any], execution: str) -> dict[str, Any]:
        steps = {
            "validate-input": lambda: self.validate(state, execution),
            "corpus-change": lambda: self.corpus_change(state),
            "prepare-dataset": lambda: self.prepare_dataset(state),
            "pick-best": lambda: self.pick_best(state),
            "record-model": lambda: self.record_model(state),
            "evaluate": lambda: self.evaluate(state),
            "read-judgement": lambda: self.read_judgement(state),
            "summarise": lambda: self.summarise(state),
        }
        if step not in steps:
            raise FineTuneInputError([f"unknown step {step!r}; the steps are {', '.join(steps)}"])
        return steps[step]()

    # -- ValidateInput ----------------------------------------------------------------------------

    def validate(self, state: dict[str, Any], execution: str) -> dict[str, Any]:
        settings = validate_input(state, execution, support=self.support)
        settings.setdefault("warnings", [])
        if self.stack:  # the workflow deletes only what its own stack made (IAM checks this tag)
            settings["tags"] = [*settings["tags"], {"Key": STACK_TAG, "Value": self.stack}]
        if len(settings["trials"]) > 1 and self.quota is not None:
            self._within_quota(settings)
        return {"input": state, "settings": settings}

    def _within_quota(self, settings: dict[str, Any]) -> None:
        """A search never starts more jobs at once than the account may run."""
        limit, why = self.quota() if self.quota else (None, "")
        wanted = settings["max_parallel"]
        if limit is None:
            settings["warnings"].append(
                f"the account's quota of customization jobs at once was not read ({why}): up to {wanted} "
                "start at once, and a start Bedrock refuses over the quota is retried"
            )
        elif limit < wanted:
            settings["max_parallel"] = max(1, limit)
            settings["warnings"].append(
                f"search.max_parallel lowered from {wanted} to {max(1, limit)}: this account runs at most "
                f"{limit} customization jobs at once (Service Quotas, bedrock L-0406044C)"
            )
        settings["job_quota"] = limit

    # -- CheckCorpusChange ----------------------------------------------------------------------------

    def corpus_change(self, state: dict[str, Any]) -> dict[str, Any]:
        settings = state["settings"]
        now = self._fingerprint(settings["dataset"])
        last = self._read_json(_latest_key(settings))
        before: dict[str, str] = {}
        if last and last.get("corpus_key"):
            before = (self._read_json(last["corpus_key"]) or {}).get("documents", {})
        changed = sum(1 for d in set(now) | set(before) if now.get(d) != before.get(d))
        share = changed / max(1, len(set(now) | set(before)))
        retrain = not before or share >= float(settings["retrain_when_changed"])
        change = {
            "documents": len(now),
            "changed": changed,
            "share": round(share, 4),
            "threshold": settings["retrain_when_changed"],
            "last_model": (last or {}).get("custom_model_arn"),
            "retrain": retrain,
        }
        return {**state, "corpus_change": change}

    def _fingerprint(self, dataset: Mapping[str, Any]) -> dict[str, str]:
        """What the dataset would be built from, by document: its cleaned-text hash."""
        if dataset["source"] == "s3":
            head = self._head(dataset["uri"])
            return {dataset["uri"]: head.etag}
        return {r.doc_id: r.text_sha256 or "" for r in self._corpus(dataset)}

    # -- PrepareDataset ---------------------------------------------------------------------------

    def prepare_dataset(self, state: dict[str, Any]) -> dict[str, Any]:
        settings = state["settings"]
        family = family_for(settings["base_model"])
        if family is None:  # validate_input refused it already; a hand-made state might not have
            raise FineTuneInputError([f"no model family for {settings['base_model']}"])
        dataset = settings["dataset"]
        summary: dict[str, Any] = {}
        if dataset["source"] == "s3":
            head = self._head(dataset["uri"])
            records, problems = parse_jsonl(
                self.reader.get(head), customization_type=settings["customization_type"], origin=dataset["uri"]
            )
        else:
            documents = [self._corpus_document(r) for r in self._corpus(dataset)]
            records, summary = corpus_records(
                documents,
                customization_type=settings["customization_type"],
                max_record_tokens=int(settings["max_record_tokens"]),
            )
            problems = []
        prepared = prepare(records, settings, family, problems)
        trials = settings["trials"]
        total = prepared.report["train_tokens"] * sum(int(t["epochs"]) for t in trials)
        budget = settings.get("max_training_tokens")
        if budget is not None and total > budget:
            epochs = " + ".join(str(t["epochs"]) for t in trials)
            raise DatasetInvalidError(
                [
                    f"the {'search' if len(trials) > 1 else 'job'} would train on about {total:,} tokens "
                    f"({prepared.report['train_tokens']:,} training tokens x {epochs} epochs), over "
                    f"max_training_tokens {budget:,}: fewer trials or epochs, a smaller dataset, or a larger budget"
                ]
            )
        base = f"{PREFIX}datasets/{settings['job_name']}/"
        report = {**prepared.report, **({"corpus": summary} if summary else {})}
        if len(trials) > 1:
            report["search"] = {"trials": len(trials), "estimated_training_tokens": total}
        if settings.get("warnings"):  # the base model's (LEGACY, not checked) come first
            report["warnings"] = [*settings["warnings"], *report["warnings"]]
            report["warnings_total"] += len(settings["warnings"])
        self.writer.put(f"{base}train.jsonl", prepared.train, "application/jsonl")
        out: dict[str, Any] = {
            "train_uri": s3_uri(self.bucket, f"{base}train.jsonl"),
            "output_uri": s3_uri(self.bucket, f"{PREFIX}output/{settings['job_name']}/"),
            "report_uri": s3_uri(self.bucket, f"{base}report.json"),
            "report": report,
        }
        if prepared.validation:
            self.writer.put(f"{base}validation.jsonl", prepared.validation, "application/jsonl")
            out["validation_uri"] = s3_uri(self.bucket, f"{base}validation.jsonl")
        fingerprint = {"documents": self._fingerprint(dataset)}
        self.writer.put(f"{base}corpus.json", json.dumps(fingerprint).encode(), "application/json")
        out["corpus_key"] = f"{base}corpus.json"
        if "batch" in settings:
            out |= self._batch_input(settings, base)
        self.writer.put(f"{base}report.json", json.dumps(report, indent=2).encode(), "application/json")
        return {**state, "dataset": out, "jobs": [self._job(settings, t, out) for t in trials]}

    def _batch_input(self, settings: Mapping[str, Any], base: str) -> dict[str, Any]:
        """The batch job's input file, checked and written now: a bad prompt fails before any job."""
        uri = settings["batch"]["prompts"]
        prepared = batch_input(self.reader.get(self._head(uri)), uri)
        if prepared.problems:
            raise DatasetInvalidError(prepared.problems)
        self.writer.put(f"{base}batch-input.jsonl", prepared.lines, "application/jsonl")
        return {
            "batch_input_uri": s3_uri(self.bucket, f"{base}batch-input.jsonl"),
            "batch_output_uri": s3_uri(self.bucket, f"{PREFIX}output/{settings['job_name']}/batch/"),
            "batch_records": prepared.records,
        }

    def _job(self, settings: Mapping[str, Any], trial: Mapping[str, Any], dataset: Mapping[str, Any]) -> dict[str, Any]:
        """What one iteration of the Map state needs to run a trial's job, and nothing else."""
        job = {
            "trial": trial,
            "base_model": settings["base_model"],
            "customization_type": settings["customization_type"],
            "train_uri": dataset["train_uri"],
            "output_uri": s3_uri(self.bucket, f"{PREFIX}output/{trial['job_name']}/"),
            "tags": settings["tags"],
            "poll_seconds": settings["poll_seconds"],
            "max_checks": settings["max_checks"],
        }
        return job | ({"validation_uri": dataset["validation_uri"]} if "validation_uri" in dataset else {})

    def _head(self, uri: str) -> ObjectHead:
        parts = split_s3_uri(uri)
        if parts is None:
            raise DatasetSourceError(f"{uri} is not an s3://bucket/key URI")
        bucket, key = parts
        if bucket not in self.readable:
            raise DatasetSourceError(
                f"{uri} is outside this stack; put the file under s3://{self.bucket}/{PREFIX}uploads/ "
                "(the workflow reads only the stack's buckets)"
            )
        head = self.reader.head(bucket, key)
        if head is None:
            raise DatasetSourceError(f"{uri} does not exist")
        if head.size > MAX_DATASET_BYTES:
            raise DatasetSourceError(f"{uri} is {head.size} bytes; the training file limit is {MAX_DATASET_BYTES}")
        return head

    def _corpus(self, dataset: Mapping[str, Any]) -> Iterator[DocumentRecord]:
        """The processed documents the dataset takes (chosen from the registry, before any read)."""
        prefix = dataset.get("prefix") or ""
        wanted = dataset.get("filter") or {}
        for record in self.documents.records(Status.PROCESSED):
            attributes = record.doc_metadata.get("attributes") or {}
            candidate = CorpusDocument(record.source_uri, record.kind or "", "", None, attributes)
            if record.key.startswith(prefix) and matches_filter(candidate, wanted):
                yield record

    def _corpus_document(self, record: DocumentRecord) -> CorpusDocument:
        head = self.reader.head(self.bucket, text_key(record.doc_id))
        text = self.reader.get(head).decode("utf-8") if head else ""
        raw = None
        if record.kind in PAIR_KINDS:
            raw_head = self.reader.head(record.bucket, record.key)
            raw = self.reader.get(raw_head) if raw_head else None
        return CorpusDocument(
            source=record.source_uri,
            kind=record.kind or "",
            text=text,
            raw=raw,
            attributes=record.doc_metadata.get("attributes") or {},
        )

    # -- PickBest ---------------------------------------------------------------------------------

    def pick_best(self, state: dict[str, Any]) -> dict[str, Any]:
        """The trial with the lowest validation loss (training loss when no trial has one) wins; the
        losers' custom models are deleted unless the input keeps them all. A failed trial fails the
        search only when every trial failed."""
        settings = state["settings"]
        jobs = {job["trial"]["trial"]: job for job in state["jobs"]}
        train_tokens = int(state["dataset"]["report"].get("train_tokens", 0))
        trials = [self._outcome(o, jobs[o["trial"]["trial"]], train_tokens) for o in state["trials"]]
        done = [t for t in trials if t["status"] == "Completed"]
        if not done:
            raise self._no_model(trials)
        by = "validation_loss" if all(t.get("validation_loss") is not None for t in done) else "training_loss"
        best = min(done, key=lambda t: (_loss(t.get(by)), trials.index(t)))
        warnings: list[str] = []
        if by == "training_loss" and len(done) > 1:
            warnings.append("no validation loss for every trial: the best was chosen by training loss")
        for trial in done:
            trial["kept"] = trial is best or settings["keep"] == "all"
            if not trial["kept"] and self.delete_model is not None:
                try:
                    self.delete_model(trial["custom_model_arn"])
                    trial["deleted"] = True
                except Exception as exc:  # noqa: BLE001 - the winner stands; the user is told what is left
                    trial["kept"] = True
                    warnings.append(
                        f"trial {trial['trial']}'s model {trial['custom_model_arn']} was not deleted: {exc}"
                    )
        outcome = next(o for o in state["trials"] if o["trial"]["trial"] == best["trial"])
        search = {"trials": trials, "best": best["trial"], "chosen_by": by, "keep": settings["keep"]}
        search |= {"max_parallel": settings["max_parallel"], "warnings": warnings}
        rest = {k: v for k, v in state.items() if k not in ("trials", "jobs")}
        return {**rest, "search": search, "check": outcome["check"], "job": {"JobArn": best["job_arn"]}}

    def _outcome(self, outcome: Mapping[str, Any], job: Mapping[str, Any], train_tokens: int) -> dict[str, Any]:
        """One trial as the report shows it: hyperparameters, status, losses (or why it has none)."""
        trial = outcome["trial"]
        check = outcome.get("check") or {}
        status = str(outcome.get("status") or check.get("Status") or "Error")
        row: dict[str, Any] = {
            "trial": trial["trial"],
            "hyperparameters": trial["varied"] or trial["hyperparameters"],
            "status": status,
            "estimated_training_tokens": train_tokens * int(trial["epochs"]),
        }
        if outcome.get("job_arn"):
            row["job_arn"] = outcome["job_arn"]
        if status == "Completed":
            row["custom_model_arn"] = check["OutputModelArn"]
            row |= self._losses(check, job)
        elif status == "StillRunning":
            row["reason"] = (
                f"still running after {job['max_checks']} checks; it goes on (follow it in the Bedrock console)"
            )
        elif check.get("FailureMessage"):
            row["reason"] = check["FailureMessage"]
        elif outcome.get("error"):
            error = outcome["error"]
            row["reason"] = f"{error.get('Error')}: {error.get('Cause')}"
        else:
            row["reason"] = f"ended {status}"
        return row

    def _losses(self, check: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
        """The final training and validation loss: Bedrock's job record, else the metrics files the
        job wrote under its output prefix."""
        training = (check.get("TrainingMetrics") or {}).get("TrainingLoss")
        validation = next(
            (m["ValidationLoss"] for m in check.get("ValidationMetrics") or [] if m.get("ValidationLoss") is not None),
            None,
        )
        source = "job"
        if training is None or (validation is None and "validation_uri" in job):
            parts = split_s3_uri(job["output_uri"])
            prefix = parts[1] if parts else ""
            if training is None:
                training = self._last_value(prefix, "step_wise_training_metrics.csv", "training_loss")
            if validation is None and "validation_uri" in job:
                validation = self._last_value(prefix, "validation_metrics.csv", "validation_loss")
            source = "metrics files"
        return {"training_loss": training, "validation_loss": validation, "loss_source": source}

    def _last_value(self, prefix: str, name: str, column: str) -> float | None:
        key = next((k for k in self.writer.keys(prefix) if k.rsplit("/", 1)[-1] == name), None)
        head = self.reader.head(self.bucket, key) if key else None
        if head is None:
            return None
        rows = list(csv.DictReader(io.StringIO(self.reader.get(head).decode("utf-8", "replace"))))
        values = [_float(row.get(column)) for row in rows]
        return next((v for v in reversed(values) if v is not None), None)

    @staticmethod
    def _no_model(trials: list[dict[str, Any]]) -> Exception:
        if len(trials) == 1:
            (trial,) = trials
            where = f"Job {trial.get('job_arn', trial['trial'])}"
            if trial["status"] == "StillRunning":
                return JobStillRunning(f"{where} is {trial['reason']}; or start again with a longer poll_seconds.")
            if trial["status"] == "Stopped":
                return CustomizationJobEnded(f"{where} ended Stopped.")
            return CustomizationJobFailed(f"{where} failed: {trial['reason']}")
        reasons = "\n".join(f"- trial {t['trial']} ({t['status']}): {t['reason']}" for t in trials)
        if any(t["status"] == "StillRunning" for t in trials):
            return JobStillRunning(f"No trial of the search has completed:\n{reasons}")
        return CustomizationJobFailed(f"Every trial of the search failed:\n{reasons}")

    # -- RecordModel --------------------------------------------------------------------------------

    def record_model(self, state: dict[str, Any]) -> dict[str, Any]:
        check = state["check"]
        model_arn = check["OutputModelArn"]
        name = check.get("OutputModelName") or state["settings"]["custom_model_name"]
        latest = {
            "custom_model_arn": model_arn,
            "job_arn": state["job"]["JobArn"],
            "custom_model_name": name,
            "corpus_key": state["dataset"]["corpus_key"],
            "recorded_at": self.clock().isoformat(timespec="seconds"),
        }
        self.writer.put(_latest_key(state["settings"]), json.dumps(latest, indent=2).encode(), "application/json")
        search = state.get("search") or {}
        result = {
            "custom_model_arn": model_arn,
            "custom_model_name": name,
            "job_arn": state["job"]["JobArn"],
            "dataset_report_uri": state["dataset"]["report_uri"],
            "training_records": state["dataset"]["report"].get("train_records"),
            "estimated_training_tokens": sum(t["estimated_training_tokens"] for t in search.get("trials", []))
            or state["dataset"]["report"].get("estimated_training_tokens"),
            "warnings": [*state["settings"].get("warnings", []), *search.get("warnings", [])],
        }
        if len(search.get("trials", [])) > 1:
            result["search"] = {k: search[k] for k in ("best", "chosen_by", "keep", "trials")}
        return {**state, "result": result}

    # -- Evaluate -----------------------------------------------------------------------------------

    def evaluate(self, state: dict[str, Any]) -> dict[str, Any]:
        """The held-out prompts answered by the base model and by the served custom model, scored;
        with promote_only_if_better, a custom model that does not win is marked for withdrawal."""
        settings, result = state["settings"], state["result"]
        asked = settings["evaluation"]
        if self.ask is None:
            raise FineTuneInputError(["evaluation needs Bedrock's Converse, which this function was not given"])
        served = (result.get("deployment") or {}).get("CustomModelDeploymentArn") or (
            result.get("throughput") or {}
        ).get("ProvisionedModelArn")
        if not served:
            raise FineTuneInputError(
                ["evaluation needs the custom model served: no deployment or throughput in the state"]
            )
        base = self.resolve_model(_CONTEXT_SUFFIX.sub("", settings["base_model"]))
        dataset = asked["dataset"]
        uri = state["dataset"].get("validation_uri") if dataset == "validation" else dataset["uri"]
        if not uri:
            raise DatasetSourceError("the validation split is empty: there is no held-out prompt to evaluate on")
        head = self._head(uri)
        records, problems = parse_jsonl(self.reader.get(head), customization_type=FINE_TUNING, origin=uri)
        prompts = held_out(records, int(asked["max_prompts"]))
        done = evaluate(prompts, self.ask, base, served, asked["metrics"])
        folder = evaluation_name(settings["job_name"])
        where = f"{PREFIX}evaluations/{folder}/"
        lines = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in done.answered)
        self.writer.put(f"{where}answers.jsonl", lines, "application/jsonl")
        summary = done.summary() | {
            "base_model": base,
            "custom_model": served,
            "dataset": uri,
            "unreadable_records": len(problems),
            "answers_uri": s3_uri(self.bucket, f"{where}answers.jsonl"),
            "table": table(done.comparison),
        }
        if asked.get("judge_model"):
            summary["judge_jobs"] = self._judge_jobs(settings, folder, done.answered)
        self._decide(summary, asked, result)
        self.writer.put(f"{where}report.json", json.dumps(summary, indent=2).encode(), "application/json")
        return {**state, "evaluation": summary}

    @staticmethod
    def _decide(summary: dict[str, Any], asked: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Promoted unless promote_only_if_better and the custom model did not win; a loser's
        deployment (or throughput) is to be withdrawn."""
        summary["promoted"] = bool(summary["custom_wins"]) or not asked.get("promote_only_if_better")
        summary.pop("withdraw", None)
        if not summary["promoted"]:
            summary["withdraw"] = "deployment" if result.get("deployment") else "throughput"

    def _judge_jobs(
        self, settings: Mapping[str, Any], folder: str, answered: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """One Bedrock evaluation job per side (a job judges one model's responses), over the answers
        already collected: the judge reads them ("bring your own responses") and calls neither model."""
        asked = settings["evaluation"]
        jobs = []
        for side in ("base", "custom"):
            key = f"{PREFIX}evaluations/{folder}/judge/{side}.jsonl"
            lines = [
                {
                    "prompt": row["prompt"],
                    "referenceResponse": row["reference"],
                    "modelResponses": [{"response": row[side], "modelIdentifier": side}],
                }
                for row in answered
            ]
            body = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
            self.writer.put(key, body, "application/jsonl")
            name = f"{folder[: 63 - len(side) - 7]}-judge-{side}".strip("-")
            jobs.append(
                {
                    "side": side,
                    "job_name": name,
                    "client_token": client_token_for(f"{settings['job_name']}/judge/{side}"),
                    "judge_model": asked["judge_model"],
                    "metrics": asked["judge_metrics"],
                    "dataset_uri": s3_uri(self.bucket, key),
                    "output_uri": s3_uri(self.bucket, f"{PREFIX}evaluations/{folder}/judge/output/"),
                    "tags": settings["tags"],
                    "poll_seconds": settings["poll_seconds"],
                    "max_checks": settings["max_checks"],
                }
            )
        return jobs

    # -- ReadJudgement ------------------------------------------------------------------------------

    def read_judgement(self, state: dict[str, Any]) -> dict[str, Any]:
        """The judge's scores, averaged per metric for each side, join the comparison; the decision is
        made again over every metric. A judge job that failed leaves the decision to the reference
        metrics, with a warning."""
        settings = state["settings"]
        evaluation = {k: v for k, v in state["evaluation"].items() if k != "judge_jobs"}
        judged = {j["side"]: j for j in state.get("judgements") or []}
        failed = [f"{side}: {_judge_failure(j)}" for side, j in judged.items() if j.get("status") != "Completed"]
        means = {side: self._judge_means(j) for side, j in judged.items() if j.get("status") == "Completed"}
        names = settings["evaluation"]["judge_metrics"]
        short = [f"judge:{name.removeprefix('Builtin.')}" for name in names]
        scored = [
            (name, label)
            for name, label in zip(names, short, strict=True)
            if all(name in means.get(side, {}) for side in ("base", "custom"))
        ]
        if failed or len(scored) < len(names):
            missing = ", ".join(label for name, label in zip(names, short, strict=True) if (name, label) not in scored)
            reason = "; ".join(failed) or f"no score for {missing}"
            evaluation.setdefault("warnings", []).append(
                f"the judge's scores are incomplete ({reason}): the decision leaves out {missing}"
            )
        rows = dict(evaluation["metrics"])
        for name, label in scored:
            base, custom = means["base"][name], means["custom"][name]
            rows[label] = {"base": base, "custom": custom, "delta": round(custom - base, PLACES)}
        comparison = compare(
            Scores({m: r["base"] for m, r in rows.items()}, evaluation["prompts"]),
            Scores({m: r["custom"] for m, r in rows.items()}, evaluation["prompts"]),
            list(rows),
        )
        evaluation |= comparison.as_dict() | {"table": table(comparison)}
        evaluation["judge"] = {"model": settings["evaluation"]["judge_model"], "jobs": list(judged.values())}
        self._decide(evaluation, settings["evaluation"], state["result"])
        folder = evaluation_name(settings["job_name"])
        report = json.dumps(evaluation, indent=2, default=str).encode()
        self.writer.put(f"{PREFIX}evaluations/{folder}/report.json", report, "application/json")
        return {**{k: v for k, v in state.items() if k != "judgements"}, "evaluation": evaluation}

    def _judge_means(self, judged: Mapping[str, Any]) -> dict[str, float]:
        """Each metric's mean over the judge's result lines (``*_output.jsonl`` under the job's own
        output folder); a metric the judge found not applicable to a line (null) is left out of it."""
        parts = split_s3_uri(judged["output_uri"])
        prefix = f"{parts[1] if parts else ''}{judged['job_name']}/"
        totals: dict[str, list[float]] = {}
        for key in self.writer.keys(prefix):
            head = self.reader.head(self.bucket, key) if key.endswith("_output.jsonl") else None
            for line in self.reader.get(head).splitlines() if head else []:
                scores = ((json.loads(line) or {}).get("automatedEvaluationResult") or {}).get("scores") or []
                for score in scores:
                    name, value = str(score.get("metricName", "")), _float(score.get("result"))
                    if value is not None:
                        full = name if name.startswith("Builtin.") else f"Builtin.{name}"
                        totals.setdefault(full, []).append(value)
        return {name: round(math.fsum(v) / len(v), PLACES) for name, v in totals.items() if v}

    # -- Summarise ----------------------------------------------------------------------------------

    def summarise(self, state: dict[str, Any]) -> dict[str, Any]:
        """The execution's output and the notification's text: the model, the search, the evaluation,
        and how the model is served (or why it is not)."""
        result = dict(state["result"])
        lines = [
            f"Custom model {result['custom_model_arn']} ({result.get('training_records')} training records, "
            f"about {result.get('estimated_training_tokens')} training tokens)."
        ]
        search = result.get("search")
        if search:
            by = search["chosen_by"].replace("_", " ")
            lines.append(f"Search: {len(search['trials'])} trials, the best {search['best']} by {by}:")
            lines += [_trial_line(t, search["best"]) for t in search["trials"]]
        evaluation = state.get("evaluation")
        if evaluation:
            result["evaluation"] = {k: v for k, v in evaluation.items() if k != "withdraw"}
            lines += [
                f"Evaluation on {evaluation['prompts']} held-out prompts, base against custom:",
                evaluation["table"],
                *(f"Evaluation warning: {w}" for w in evaluation.get("warnings", [])),
            ]
        withdrawn = bool(evaluation and not evaluation["promoted"])
        deployment, throughput = result.get("deployment"), result.get("throughput")
        if withdrawn:
            served = "deployment" if deployment else "provisioned throughput"
            failed = state.get("withdraw_error")
            lines.append(
                f"Not promoted: the custom model did not beat its base model, so its {served} was "
                + (
                    f"to be deleted, but that failed ({failed.get('Cause')}); delete it by hand."
                    if failed
                    else "deleted."
                )
            )
            result["promoted"] = False
        elif deployment:
            lines.append(f"Deployed on demand: call Converse with modelId {deployment['CustomModelDeploymentArn']}")
        elif throughput:
            lines.append(f"Provisioned throughput: call Converse with modelId {throughput['ProvisionedModelArn']}")
        if "batch" in state.get("settings", {}):
            result["batch"] = _batch_outcome(state)
            lines.append(_batch_line(result["batch"]))
        if result.get("warnings"):
            lines.append("Warnings:\n" + "\n".join(f"- {w}" for w in result["warnings"]))
        result["message"] = "\n".join(lines)
        return {**state, "result": result}

    def _read_json(self, key: str) -> dict[str, Any] | None:
        head = self.reader.head(self.bucket, key)
        if head is None:
            return None
        data: dict[str, Any] = json.loads(self.reader.get(head))
        return data


def _loss(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.inf


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _trial_line(trial: Mapping[str, Any], best: str) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in trial["hyperparameters"].items())
    if trial["status"] != "Completed":
        return f"  {trial['trial']} ({settings}): {trial['status']}, {trial['reason']}"
    losses = f"validation loss {trial['validation_loss']}, training loss {trial['training_loss']}"
    fate = "best" if trial["trial"] == best else ("kept" if trial.get("kept") else "deleted")
    return f"  {trial['trial']} ({settings}): {losses}; {fate}"


def evaluation_name(job_name: str) -> str:
    """A job name as Bedrock's evaluation jobs (and S3 URIs they read) allow: lower-case letters,
    digits and single hyphens; the evaluation's folder and its judge jobs are named from it."""
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", job_name.lower())).strip("-")
    return cleaned[:48].rstrip("-") or "evaluation"


def _judge_failure(judged: Mapping[str, Any]) -> str:
    check = judged.get("check") or {}
    messages = check.get("FailureMessages") or []
    error = judged.get("error") or {}
    return "; ".join(messages) or (
        f"{error.get('Error')}: {error.get('Cause')}" if error else judged.get("status", "?")
    )


def _batch_outcome(state: Mapping[str, Any]) -> dict[str, Any]:
    """What became of the batch inference job: its status and output, or why it did not run."""
    dataset = state.get("dataset") or {}
    outcome: dict[str, Any] = {"records": dataset.get("batch_records"), "output_uri": dataset.get("batch_output_uri")}
    check, error = (state.get("batch_check") or {}).get("Detail") or {}, state.get("batch_error")
    job = (state.get("batch_job") or {}).get("JobArn")
    if error:
        reason = f"{error.get('Error')}: {error.get('Cause')}"
        if job:  # started, then a check failed: the job may well be running
            return outcome | {"status": "NotFollowed", "job_arn": job, "reason": reason}
        return outcome | {"status": "NotRun", "reason": reason}
    if not check:
        return outcome | {
            "status": "NotRun",
            "reason": "the custom model was withdrawn: no batch for a model that lost",
        }
    outcome |= {"status": check.get("Status"), "job_arn": job}
    return outcome | ({"message": check["Message"]} if check.get("Message") else {})


def _batch_line(batch: Mapping[str, Any]) -> str:
    if batch["status"] == "NotRun":
        return f"Batch inference did not run: {batch['reason']}"
    if batch["status"] == "NotFollowed":
        return f"Batch inference job {batch['job_arn']} started; it could not be followed ({batch['reason']})"
    message = f" ({batch['message']})" if batch.get("message") else ""
    where = f"output under {batch['output_uri']}"
    return f"Batch inference over {batch['records']} prompts: {batch['status']}{message}; {where}"

"""The fine-tune workflow's own steps (the Lambda tasks of statemachine/finetune.asl.json).

Each step takes the execution's state and returns it with its part added, so the state machine
passes one document along and a console user reads every decision in it: ``settings`` (the
validated input, what Bedrock said of the base model, the warnings), ``corpus_change`` (for
scheduled retraining), ``dataset`` (where the JSONL went, and the report with the training-token
estimate and the warnings), ``result`` (the custom model, the warnings). Everything that
could fail the Bedrock job for a reason in the data or the settings fails here first, before any
money is spent, with the problems named (line numbers included).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sluice.finetune.dataset import CorpusDocument, corpus_records, matches_filter, parse_jsonl, prepare
from sluice.finetune.families import family_for
from sluice.finetune.settings import FineTuneInputError, SupportLookup, client_token_for, validate_input
from sluice.pipeline.files import s3_uri, split_s3_uri, text_key
from sluice.registry import DocumentRecord, Status
from sluice.storage import ObjectHead, ObjectReader

PREFIX = "finetune/"
MAX_DATASET_BYTES = 1024**3  # Bedrock's training-file limit for most families (1 GB)
PAIR_KINDS = frozenset({"jsonl", "json", "csv"})  # documents whose original records can hold pairs


class DatasetSourceError(ValueError):
    """The dataset named in the input cannot be read (missing, too large, or outside the stack)."""


class Documents(Protocol):
    def records(self, status: Status | None = None) -> Iterator[DocumentRecord]: ...


class Writer(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> None: ...


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
        clock: Any = None,
    ) -> None:
        self.documents = documents
        self.reader = reader
        self.writer = writer
        self.bucket = processed_bucket
        self.readable = readable_buckets
        self.support = support  # Bedrock asked about the base model; None: the input alone is checked
        self.clock = clock or (lambda: datetime.now(UTC))

    def run(self, step: str, state: dict[str, Any], execution: str) -> dict[str, Any]:
        steps = {
            "validate-input": lambda: self.validate(state, execution),
            "corpus-change": lambda: self.corpus_change(state),
            "prepare-dataset": lambda: self.prepare_dataset(state),
            "record-model": lambda: self.record_model(state),
        }
        if step not in steps:
            raise FineTuneInputError([f"unknown step {step!r}; the steps are {', '.join(steps)}"])
        return steps[step]()

    # -- ValidateInput ----------------------------------------------------------------------------

    def validate(self, state: dict[str, Any], execution: str) -> dict[str, Any]:
        settings = validate_input(state, execution, support=self.support)
        # The model's lineage: scheduled retrains of one input compare against its own last model.
        settings["lineage"] = settings["custom_model_name"]
        if "retrain_when_changed" in settings:
            # A scheduled run makes a new model (and throughput) each time; Bedrock wants unique names.
            run = hashlib.sha256(execution.encode()).hexdigest()[:8]
            for name in ("custom_model_name", "throughput_name", "deployment_name"):
                if name in settings:
                    settings[name] = f"{settings[name][:54].rstrip('-_')}-{run}"
        if "throughput_name" in settings:
            settings["throughput_client_token"] = client_token_for(f"{execution}/throughput")
        if "deployment_name" in settings:
            settings["deployment_client_token"] = client_token_for(f"{execution}/deployment")
        return {"input": state, "settings": settings, "polls": {"count": 0}}

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
        base = f"{PREFIX}datasets/{settings['job_name']}/"
        report = {**prepared.report, **({"corpus": summary} if summary else {})}
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
        self.writer.put(f"{base}report.json", json.dumps(report, indent=2).encode(), "application/json")
        return {**state, "dataset": out}

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

    # -- RecordModel --------------------------------------------------------------------------------

    def record_model(self, state: dict[str, Any]) -> dict[str, Any]:
        model_arn = state["check"]["OutputModelArn"]
        latest = {
            "custom_model_arn": model_arn,
            "job_arn": state["job"]["JobArn"],
            "custom_model_name": state["settings"]["custom_model_name"],
            "corpus_key": state["dataset"]["corpus_key"],
            "recorded_at": self.clock().isoformat(timespec="seconds"),
        }
        self.writer.put(_latest_key(state["settings"]), json.dumps(latest, indent=2).encode(), "application/json")
        result = {
            "custom_model_arn": model_arn,
            "custom_model_name": state["settings"]["custom_model_name"],
            "job_arn": state["job"]["JobArn"],
            "dataset_report_uri": state["dataset"]["report_uri"],
            "training_records": state["dataset"]["report"].get("train_records"),
            "estimated_training_tokens": state["dataset"]["report"].get("estimated_training_tokens"),
            "warnings": state["settings"].get("warnings", []),
        }
        return {**state, "result": result}

    def _read_json(self, key: str) -> dict[str, Any] | None:
        head = self.reader.head(self.bucket, key)
        if head is None:
            return None
        data: dict[str, Any] = json.loads(self.reader.get(head))
        return data

"""`sluice verify`: the first-run proof that a stack works on its account, one step at a time.

Each step checks one thing Sluice relies on, against the services themselves (not against what
Sluice believes of them), and says how to fix it when it fails:

  models        the embedding and generation models can be called (access granted, not retired)
  resources     the knowledge base, its data source, the vector index and the buckets exist as built
  indexed       a canary document with a sidecar (an attribute and an access list), uploaded to
                RawBucket, is processed and indexed in the knowledge base (and Kendra) in time
  retrieve      Retrieve returns the canary with its sidecar attributes
  ask           RetrieveAndGenerate answers from the canary and cites it
  access        a principal outside the canary's access list does not see it; one it denies neither
  client-token  a repeated client token is accepted, as the sinks' retries assume
  deletion      the canary deleted from RawBucket is gone from every index in time
  cleanup       nothing the canary made is left (unless --keep)

The first failing step stops the run (the later ones depend on it); cleanup still runs. Exit 0 only
when every step passes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from botocore.exceptions import ClientError

from sluice.access import allow_filter, attribute_filter, combine, may_read
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.sink_states import state_key
from sluice.pipeline.files import DOCUMENT_PREFIX, chunk_prefix, chunk_uri, document_id, s3_uri
from sluice.registry import DocumentRecord, Status
from sluice.sinks.knowledge_base import client_token
from sluice_cli.ask import AskError, ask, resolve_model
from sluice_cli.search import retrieve

ClientFactory = Callable[[str], Any]
STEPS = ("models", "resources", "indexed", "retrieve", "ask", "access", "client-token", "deletion", "cleanup")
CANARY_PREFIX = "sluice-verify/"
NON_FILTERABLE = ("AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA")


@dataclass
class StepResult:
    step: str
    status: str  # pass | fail | skipped
    detail: str = ""
    fix: str = ""


class StepFailed(Exception):
    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


@dataclass(frozen=True)
class Canary:
    run: str
    bucket: str
    key: str
    group: str  # the principal the access list allows
    denied: str  # a user it denies (though in the group)
    outsider: str  # a user it does not name

    @property
    def source_uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    @property
    def doc_id(self) -> str:
        return document_id(self.source_uri)

    @property
    def selected(self) -> dict[str, Any]:
        """The retrieval filter that finds the canary and nothing else (its own attribute)."""
        return attribute_filter({"sluice_verify": self.run})[0]

    @property
    def question(self) -> str:
        return f"How many pebbles does the vermilion heron of canary {self.run} count?"

    def text(self) -> str:
        return (
            f"# Sluice verification canary {self.run}\n\n"
            f"The vermilion heron of canary {self.run} counts forty-two pebbles every morning. "
            "This document was written by sluice verify and is deleted when the check ends.\n"
        )

    def sidecar(self) -> dict[str, Any]:
        return {
            "metadataAttributes": {"sluice_verify": self.run},
            "accessControlList": [
                {"name": self.group, "type": "GROUP", "access": "ALLOW"},
                {"name": self.denied, "type": "USER", "access": "DENY"},
            ],
            "title": f"Sluice verification canary {self.run}",
        }


class Verifier:
    def __init__(
        self,
        outputs: dict[str, str],
        client: ClientFactory,
        *,
        timeout: float = 600.0,
        poll: float = 5.0,
        keep: bool = False,
        on_step: Callable[[StepResult], None] | None = None,
    ) -> None:
        self.outputs, self.client = outputs, client
        self.timeout, self.poll, self.keep = timeout, poll, keep
        self.on_step = on_step or (lambda result: None)
        run = uuid.uuid4().hex[:10]
        self.canary = Canary(
            run=run,
            bucket=outputs.get("RawBucketName", ""),
            key=f"{CANARY_PREFIX}{run}.md",
            group=f"sluice-verify-{run}",
            denied=f"denied-{run}@example.com",
            outsider=f"outsider-{run}@example.com",
        )
        self.chunks: list[str] = []  # the canary's chunk URIs once processed
        self.uploaded = False

    def run(self) -> list[StepResult]:
        results: list[StepResult] = []
        checks = {
            "models": self.models,
            "resources": self.resources,
            "indexed": self.indexed,
            "retrieve": self.retrieve,
            "ask": self.ask,
            "access": self.access,
            "client-token": self.repeated_token,
            "deletion": self.deletion,
        }
        failed = False
        for step, check in checks.items():
            if failed:
                results.append(self._report(StepResult(step, "skipped")))
                continue
            results.append(self._report(self._attempt(step, check)))
            failed = results[-1].status == "fail"
        if self.keep:
            results.append(self._report(StepResult("cleanup", "skipped", f"--keep: {self.canary.source_uri} stays")))
        else:
            results.append(self._report(self._attempt("cleanup", self.cleanup)))
        return results

    def _attempt(self, step: str, check: Callable[[], str]) -> StepResult:
        try:
            return StepResult(step, "pass", check())
        except StepFailed as exc:
            return StepResult(step, "fail", exc.detail, exc.fix)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return StepResult(step, "fail", f"{error.get('Code')}: {error.get('Message', '')}", _fix_for(error))

    def _report(self, result: StepResult) -> StepResult:
        self.on_step(result)
        return result

    # -- the steps -----------------------------------------------------------------------------------

    def models(self) -> str:
        embedding = self.outputs.get("EmbeddingModelArn", "").rsplit("/", 1)[-1] or self._embedding_model()
        generation = self.outputs.get("GenerationModelId", "")
        lines = []
        for role, model in (("embedding", embedding), ("generation", generation)):
            if not model:
                continue
            check = resolve_model(self.client, model)
            if not check.usable:
                raise StepFailed(f"{role} model {model}: " + "; ".join(check.problems), check.problems[0])
            lines.append(f"{role} {model}" + (f" via {check.invoke_id}" if check.invoke_id != model else ""))
            lines += [f"note: {w}" for w in check.warnings]
        return "; ".join(lines) or "no models named by the stack"

    def resources(self) -> str:
        kb_id = self._knowledge_base_id()
        agent = self.client("bedrock-agent")
        kb = agent.get_knowledge_base(knowledgeBaseId=kb_id)["knowledgeBase"]
        if kb["status"] != "ACTIVE":
            raise StepFailed(
                f"knowledge base {kb_id} is {kb['status']}", "see its failure reasons in Bedrock's console"
            )
        found = [f"knowledge base {kb_id} ACTIVE"]
        ds_id = self.outputs.get("KnowledgeBaseDataSourceId", "")
        if ds_id:
            ds = agent.get_data_source(knowledgeBaseId=kb_id, dataSourceId=ds_id)["dataSource"]
            if ds["status"] != "AVAILABLE":
                raise StepFailed(f"data source {ds_id} is {ds['status']}", "see it in the Bedrock console")
            found.append(f"data source {ds_id} AVAILABLE")
        if self.outputs.get("VectorIndexArn"):
            found.append(self._vector_index(kb))
        s3 = self.client("s3")
        for name in ("RawBucketName", "ProcessedBucketName"):
            if self.outputs.get(name):
                s3.head_bucket(Bucket=self.outputs[name])
        found.append("buckets")
        return "; ".join(found)

    def indexed(self) -> str:
        s3, canary = self.client("s3"), self.canary
        if not canary.bucket:
            raise StepFailed("the stack has no RawBucketName output", "deploy the stack from this template")
        sidecar = json.dumps(canary.sidecar()).encode()
        s3.put_object(Bucket=canary.bucket, Key=f"{canary.key}.metadata.json", Body=sidecar)
        s3.put_object(Bucket=canary.bucket, Key=canary.key, Body=canary.text().encode())
        self.uploaded = True
        started = time.monotonic()
        record = self._until("processed", lambda: self._record(processed=True))
        processed = self.outputs["ProcessedBucketName"]
        self.chunks = [chunk_uri(processed, canary.doc_id, h) for h in record.chunks]
        self._until("indexed in the knowledge base", lambda: self._kb_statuses() == {"INDEXED"})
        where = ["knowledge base"]
        if self.outputs.get("KendraIndexId"):
            self._until("indexed in Kendra", lambda: self._kendra_status() == "INDEXED")
            where.append("Kendra")
        return (
            f"s3://{canary.bucket}/{canary.key}: {len(self.chunks)} chunk(s) in the "
            f"{' and '.join(where)} after {time.monotonic() - started:.0f} s"
        )

    def retrieve(self) -> str:
        results = self._retrieve(self.canary.selected)
        if not results:
            raise StepFailed(
                "Retrieve filtered on the canary's attribute found nothing",
                "the vector store lost the sidecar's attributes: check the data source reads .metadata.json sidecars",
            )
        metadata = results[0].get("metadata") or {}
        wanted = {"sluice_verify": self.canary.run, "source_uri": self.canary.source_uri, "doc_id": self.canary.doc_id}
        missing = [k for k, v in wanted.items() if metadata.get(k) != v]
        if missing or f"group:{self.canary.group}" not in (metadata.get("acl_allow") or []):
            raise StepFailed(
                f"Retrieve returned the canary without {', '.join(missing) or 'acl_allow'} in its metadata",
                "the vector store drops sidecar attributes: check KnowledgeBaseVectorStore fits its metadata limits",
            )
        return f"the canary with {len(metadata)} metadata keys, its attribute and access list among them"

    def ask(self) -> str:
        try:
            answer = ask(
                self.outputs,
                self.client,
                self.canary.question,
                filters={"sluice_verify": self.canary.run},
            )
        except AskError as exc:
            raise StepFailed(str(exc), "see the message; `sluice ask --stack NAME` shows the same") from exc
        cited = {s.source for c in answer.citations for s in c.sources}
        if self.canary.source_uri not in cited:
            raise StepFailed(
                f"the answer cites {', '.join(sorted(cited)) or 'nothing'}, not the canary",
                "the generation model answered without citations: try another model (--model / GenerationModelId)",
            )
        return f"{answer.model} cited the canary: {answer.text[:80]!r}"

    def access(self) -> str:
        canary, same = self.canary, self.canary.selected
        seen = self._retrieve(combine([same, allow_filter([f"user:{canary.outsider}"])]))
        if seen:
            raise StepFailed(
                f"user:{canary.outsider}, outside the canary's access list, retrieved it",
                "the knowledge base ignored the acl_allow filter: do not rely on --as until this passes",
            )
        denied = [f"group:{canary.group}", f"user:{canary.denied}"]
        for result in self._retrieve(combine([same, allow_filter(denied)])):
            if may_read(result.get("metadata") or {}, denied):
                raise StepFailed(
                    f"user:{canary.denied} would read the canary, which denies them",
                    "the canary's acl_deny did not come back from Retrieve: check the sidecar fits the vector store",
                )
        try:
            answer = ask(
                self.outputs, self.client, canary.question, filters={"sluice_verify": canary.run}, principals=denied
            )
        except AskError as exc:
            raise StepFailed(str(exc), "do not rely on --as until this passes") from exc
        if any(s.source == canary.source_uri for c in answer.citations for s in c.sources):
            raise StepFailed(
                f"sluice ask --as user:{canary.denied} cited the canary", "report it: the deny check failed"
            )
        return (
            f"user:{canary.outsider} does not see it; user:{canary.denied} (denied, in the allowed group) "
            "neither, in Retrieve or in an answer"
        )

    def repeated_token(self) -> str:
        agent, ds = self.client("bedrock-agent"), self.outputs.get("KnowledgeBaseDataSourceId", "")
        if not ds or not self.chunks:
            return "not checked: the stack names no data source"
        token = client_token("sluice-verify", self.canary.run)
        documents = [
            {
                "content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": uri}}},
                "metadata": {"type": "S3_LOCATION", "s3Location": {"uri": f"{uri}.metadata.json"}},
            }
            for uri in self.chunks[:10]
        ]
        for attempt in ("first", "repeated"):
            try:
                agent.ingest_knowledge_base_documents(
                    knowledgeBaseId=self._knowledge_base_id(), dataSourceId=ds, clientToken=token, documents=documents
                )
            except ClientError as exc:
                raise StepFailed(
                    f"the {attempt} IngestKnowledgeBaseDocuments with one client token was refused: "
                    f"{exc.response.get('Error', {}).get('Code')}",
                    "the sinks retry with the same token; report this (the sink would dead-letter retried batches)",
                ) from exc
        self._until("indexed again", lambda: self._kb_statuses() == {"INDEXED"})
        return "the same request twice with one client token: accepted both times"

    def deletion(self) -> str:
        s3, canary = self.client("s3"), self.canary
        s3.delete_object(Bucket=canary.bucket, Key=canary.key)
        s3.delete_object(Bucket=canary.bucket, Key=f"{canary.key}.metadata.json")
        started = time.monotonic()
        self._until("deleted from the registry", lambda: self._record(processed=False))
        self._until("gone from the knowledge base", lambda: self._kb_statuses() <= {"NOT_FOUND"})
        if self._retrieve(canary.selected):
            raise StepFailed("Retrieve still returns the deleted canary", "run sluice reconcile; report it if it stays")
        where = ["knowledge base"]
        if self.outputs.get("KendraIndexId"):
            self._until("gone from Kendra", lambda: self._kendra_status() == "NOT_FOUND")
            where.append("Kendra")
        return f"gone from the {' and '.join(where)} after {time.monotonic() - started:.0f} s"

    def cleanup(self) -> str:
        s3, canary = self.client("s3"), self.canary
        if self.uploaded:
            for key in (canary.key, f"{canary.key}.metadata.json"):
                s3.delete_object(Bucket=canary.bucket, Key=key)
        processed = self.outputs.get("ProcessedBucketName", "")
        left: list[str] = []

        def nothing_left() -> bool:
            left[:] = [
                f"s3://{processed}/{o['Key']}"
                for prefix in (chunk_prefix(canary.doc_id), f"{DOCUMENT_PREFIX}{canary.doc_id}")
                for o in s3.list_objects_v2(Bucket=processed, Prefix=prefix).get("Contents", [])
            ]
            return not left

        if processed and self.uploaded:
            try:
                self._until("its processed files removed", nothing_left)
            except StepFailed as exc:
                raise StepFailed(f"left behind: {', '.join(left)}", "delete them; run sluice reconcile") from exc
        table = self.outputs.get("DocumentsTableName", "")
        if table and self.uploaded:
            dynamodb = self.client("dynamodb")
            keys = [{"doc_id": {"S": canary.doc_id}}, *(state_key(sink, canary.doc_id) for sink in ("kb", "kendra"))]
            for item_key in keys:
                dynamodb.delete_item(TableName=table, Key=item_key)
        return "the canary, its processed files and its registry entries are gone" if self.uploaded else "nothing made"

    # -- what the steps share ------------------------------------------------------------------------

    def _knowledge_base_id(self) -> str:
        kb_id = self.outputs.get("KnowledgeBaseId", "")
        if not kb_id:
            raise StepFailed("the stack has no knowledge base", "deploy with KnowledgeBaseMode=create (the default)")
        return kb_id

    def _embedding_model(self) -> str:
        try:
            kb = self.client("bedrock-agent").get_knowledge_base(knowledgeBaseId=self._knowledge_base_id())
        except (ClientError, StepFailed):
            return ""
        vector = kb["knowledgeBase"]["knowledgeBaseConfiguration"].get("vectorKnowledgeBaseConfiguration") or {}
        return str(vector.get("embeddingModelArn", "")).rsplit("/", 1)[-1]

    def _vector_index(self, kb: dict[str, Any]) -> str:
        index = self.client("s3vectors").get_index(indexArn=self.outputs["VectorIndexArn"])["index"]
        vector = kb["knowledgeBaseConfiguration"].get("vectorKnowledgeBaseConfiguration") or {}
        dimensions = (
            (vector.get("embeddingModelConfiguration") or {}).get("bedrockEmbeddingModelConfiguration") or {}
        ).get("dimensions")
        if dimensions is not None and int(dimensions) != int(index["dimension"]):
            raise StepFailed(
                f"the index has dimension {index['dimension']}, the embeddings {dimensions}",
                "redeploy with one EmbeddingDimensions (it sets both)",
            )
        keys = set((index.get("metadataConfiguration") or {}).get("nonFilterableMetadataKeys") or [])
        if not set(NON_FILTERABLE) <= keys:
            raise StepFailed(
                f"the index's non-filterable keys are {sorted(keys)}",
                "AMAZON_BEDROCK_TEXT and AMAZON_BEDROCK_METADATA must be non-filterable (a new index: redeploy)",
            )
        return f"vector index {index['indexName']} (dimension {index['dimension']}, {index['distanceMetric']})"

    def _record(self, *, processed: bool) -> DocumentRecord | bool | None:
        """The canary's registry record once processed; or (not processed) True once it is gone."""
        record = DynamoDBRegistry(self.client("dynamodb"), self.outputs["DocumentsTableName"]).get(self.canary.doc_id)
        status = record.status if record else None
        if not processed:
            return status in (None, Status.DELETED)
        if record is not None and status is Status.QUARANTINED:
            raise StepFailed(f"the canary was quarantined: {record.reason}", "see `sluice status` for the reason")
        return record if status is Status.PROCESSED else None

    def _kb_statuses(self) -> set[str]:
        response = self.client("bedrock-agent").get_knowledge_base_documents(
            knowledgeBaseId=self._knowledge_base_id(),
            dataSourceId=self.outputs.get("KnowledgeBaseDataSourceId", ""),
            documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}} for uri in self.chunks[:10]],
        )
        statuses = {d["status"] for d in response.get("documentDetails", [])}
        failed = [d for d in response.get("documentDetails", []) if d["status"] in ("FAILED", "METADATA_UPDATE_FAILED")]
        if failed:
            raise StepFailed(
                f"the knowledge base refused the canary: {failed[0].get('statusReason', failed[0]['status'])}",
                "see the reason; `sluice status` lists the sink's failures",
            )
        return statuses

    def _kendra_status(self) -> str:
        response = self.client("kendra").batch_get_document_status(
            IndexId=self.outputs["KendraIndexId"], DocumentInfoList=[{"DocumentId": self.canary.source_uri}]
        )
        statuses = response.get("DocumentStatusList") or [{}]
        return str(statuses[0].get("DocumentStatus", ""))

    def _retrieve(self, condition: dict[str, Any] | None) -> list[dict[str, Any]]:
        runtime = self.client("bedrock-agent-runtime")
        return retrieve(runtime, self._knowledge_base_id(), self.canary.question, 5, condition)

    def _until(self, what: str, done: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            result = done()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"the canary was not {what} within {self.timeout:.0f} s",
                    "see `sluice status` and the functions' logs; --timeout gives it longer",
                )
            time.sleep(self.poll)


def _fix_for(error: dict[str, Any]) -> str:
    code = str(error.get("Code", ""))
    if code == "AccessDeniedException":
        return "your credentials lack this permission (see the message)"
    if code in ("ResourceNotFoundException", "NotFoundException", "NoSuchBucket", "404"):
        return "the stack's resource is missing: redeploy, or check --stack names this stack"
    return "see the message"


def verify(outputs: dict[str, str], client: ClientFactory, **options: Any) -> list[StepResult]:
    return Verifier(outputs, client, **options).run()


def passed(results: list[StepResult]) -> bool:
    return all(r.status == "pass" or (r.step == "cleanup" and r.status == "skipped") for r in results)


def printer(out: TextIO) -> Callable[[StepResult], None]:
    """Each step's line as it ends (a deployed run takes minutes)."""

    def show(result: StepResult) -> None:
        mark = {"pass": "PASS", "fail": "FAIL", "skipped": "skip"}[result.status]
        out.write(f"  {mark}  {result.step:<13} {result.detail}\n")
        if result.fix:
            out.write(f"        {'':<13} fix: {result.fix}\n")
        out.flush()

    return show


def to_json(results: list[StepResult]) -> str:
    return json.dumps({"passed": passed(results), "steps": [asdict(r) for r in results]})

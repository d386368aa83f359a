"""`sluice ask QUESTION`: the knowledge base's answer, with the sources it cites.

Bedrock Agent Runtime ``RetrieveAndGenerate`` on the stack's knowledge base, with the generation
model the stack names (output GenerationModelId) or ``--model``, checked first with Bedrock itself
(``sluice.adapters.aws.models``): a model that takes no on-demand calls is called through this
region's inference profile, and a model without access granted is refused before anything is asked.
A custom model you deployed (a custom model deployment or provisioned throughput ARN) is called by
that ARN, which RetrieveAndGenerate's ``modelArn`` accepts, once it is Active / InService.

``--as PRINCIPAL`` keeps the answer to what those principals may read (``sluice.access``): the
allow half is a filter; the deny half is found by a Retrieve of the same question first, whose
denied documents are then excluded by ``doc_id``; every cited chunk is checked once more, and an
answer citing a denied chunk is withheld, never printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from sluice.access import allow_filter, attribute_filter, combine, may_read
from sluice.adapters.aws.models import ModelCheck, check_model
from sluice_cli.search import location_of, retrieve, source_of

ClientFactory = Callable[[str], Any]
DEFAULT_MODEL = "amazon.nova-2-lite-v1:0"
SCAN = 100  # chunks a --as pre-pass looks at: Retrieve's most


class AskError(Exception):
    """Why there is no answer; the message says what to do."""


@dataclass(frozen=True)
class Source:
    source: str  # the bucket key or the connector URL the document came from
    location: str  # the chunk Bedrock read (s3://...)
    title: str
    pages: str  # "3" or "3-4", empty when the document has no pages
    heading_path: str
    text: str


@dataclass(frozen=True)
class Citation:
    text: str  # the part of the answer this supports
    start: int
    end: int
    sources: list[Source]


@dataclass
class Answer:
    question: str
    text: str
    model: str
    citations: list[Citation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def cited(reference: dict[str, Any]) -> Source:
    """A cited chunk as a reader wants it named, from its sidecar attributes."""
    metadata = reference.get("metadata") or {}
    start, end = metadata.get("page_start"), metadata.get("page_end")
    pages = "" if start is None else f"{int(start)}" if end in (None, start) else f"{int(start)}-{int(end)}"
    return Source(
        source=source_of(reference),
        location=location_of(reference),
        title=str(metadata.get("title", "")),
        pages=pages,
        heading_path=str(metadata.get("heading_path", "")),
        text=str((reference.get("content") or {}).get("text", "")),
    )


def resolve_model(client: ClientFactory, model: str) -> ModelCheck:
    bedrock = client("bedrock")
    return check_model(bedrock, model, bedrock.meta.region_name)


def readable_filter(
    runtime: Any, knowledge_base_id: str, question: str, principals: list[str], clauses: list[dict[str, Any]]
) -> dict[str, Any]:
    """The filter admitting only what ``principals`` may read among the best matches of ``question``:
    allowed to one of them (or open), and not a document that denies one of them."""
    allowed = [allow_filter(principals), *clauses]
    denied = set()
    for result in retrieve(runtime, knowledge_base_id, question, SCAN, combine(allowed)):
        metadata = result.get("metadata") or {}
        if not may_read(metadata, principals):
            if not metadata.get("doc_id"):
                raise AskError(
                    "the knowledge base returned a chunk without its doc_id and access lists, so who may read it "
                    "cannot be told: re-ingest it (sluice reconcile)"
                )
            denied.add(str(metadata["doc_id"]))
    if denied:
        allowed.append({"notIn": {"key": "doc_id", "value": sorted(denied)}})
    condition = combine(allowed)
    assert condition is not None
    return condition


def ask(
    outputs: dict[str, str],
    client: ClientFactory,
    question: str,
    *,
    top_k: int = 5,
    filters: dict[str, str] | None = None,
    principals: list[str] | None = None,
    model: str | None = None,
) -> Answer:
    knowledge_base_id = outputs.get("KnowledgeBaseId")
    if not knowledge_base_id:
        raise AskError("this stack has no knowledge base (deploy with KnowledgeBaseMode=create)")
    check = resolve_model(client, model or outputs.get("GenerationModelId") or DEFAULT_MODEL)
    if not check.usable:
        raise AskError("; ".join(check.problems) or f"{check.identifier} cannot be called")
    runtime = client("bedrock-agent-runtime")
    clauses = attribute_filter(filters or {})
    condition = (
        readable_filter(runtime, knowledge_base_id, question, principals, clauses) if principals else combine(clauses)
    )
    search: dict[str, Any] = {"numberOfResults": top_k}
    if condition is not None:
        search["filter"] = condition
    response = runtime.retrieve_and_generate(
        input={"text": question},
        retrieveAndGenerateConfiguration={
            "type": "KNOWLEDGE_BASE",
            "knowledgeBaseConfiguration": {
                "knowledgeBaseId": knowledge_base_id,
                "modelArn": check.invoke_id,
                "retrievalConfiguration": {"vectorSearchConfiguration": search},
            },
        },
    )
    citations = []
    for citation in response.get("citations", []):
        references = citation.get("retrievedReferences", [])
        if principals and not all(may_read(r.get("metadata") or {}, principals) for r in references):
            raise AskError(
                "the answer cites a chunk denied to " + ", ".join(principals) + "; it is withheld "
                "(the knowledge base did not apply the access filter: run sluice verify)"
            )
        part = (citation.get("generatedResponsePart") or {}).get("textResponsePart") or {}
        span = part.get("span") or {}
        citations.append(
            Citation(
                text=str(part.get("text", "")),
                start=int(span.get("start", 0)),
                end=int(span.get("end", 0)),
                sources=[cited(r) for r in references],
            )
        )
    text = str((response.get("output") or {}).get("text", ""))
    return Answer(question, text, check.invoke_id, citations, check.warnings)


def parse_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r}: a filter is KEY=VALUE")
        filters[key.strip()] = value
    return filters


def render(answer: Answer, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(asdict(answer)) + "\n")
        return
    for warning in answer.warnings:
        out.write(f"note: {warning}\n")
    out.write(_marked(answer) + "\n")
    numbered = _numbered_sources(answer)
    if numbered:
        out.write("\nSources:\n")
        for n, source in enumerate(numbered, 1):
            where = ", ".join(
                part
                for part in (f"p. {source.pages}" if source.pages else "", source.heading_path.replace(" > ", " › "))
                if part
            )
            out.write(f"  [{n}] {source.source}" + (f"  ({where})" if where else "") + "\n")
    out.write(f"\n(model: {answer.model})\n")


def _numbered_sources(answer: Answer) -> list[Source]:
    """Each distinct source once, in the order the answer first cites it."""
    seen: dict[tuple[str, str, str], Source] = {}
    for citation in answer.citations:
        for source in citation.sources:
            seen.setdefault((source.source, source.pages, source.heading_path), source)
    return list(seen.values())


def _marked(answer: Answer) -> str:
    """The answer with [n] after each cited span."""
    keys = [(s.source, s.pages, s.heading_path) for s in _numbered_sources(answer)]
    text, shift = answer.text, 0
    for citation in sorted(answer.citations, key=lambda c: c.end):
        marks = "".join(
            f"[{keys.index((s.source, s.pages, s.heading_path)) + 1}]"
            for s in citation.sources
            if (s.source, s.pages, s.heading_path) in keys
        )
        at = min(len(text), citation.end + 1 + shift)
        text = text[:at] + marks + text[at:]
        shift += len(marks)
    return re.sub(r"[ \t]+\n", "\n", text)

"""`sluice search QUERY`: what the knowledge base and the Kendra index answer for a query.

The same Retrieve calls whether the stack is local (answered by the local stack's emulators from
what the sinks gave them) or deployed (Bedrock Agent Runtime ``Retrieve`` on the knowledge base,
Kendra ``Retrieve`` on the index). Each hit names its sink, its source (the bucket key or URL the
document came from), a score (Bedrock's relevance score; Kendra's confidence band) and its text.

``--as PRINCIPAL`` shows only what those principals may read: for the knowledge base, the allow
filter of ``sluice.access`` and a check of every hit's deny list; for Kendra, its own access check
(a UserContext with the user and groups).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from sluice.access import allow_filter, may_read

ClientFactory = Callable[[str], Any]


@dataclass(frozen=True)
class Hit:
    sink: str
    source: str
    score: str
    title: str
    text: str


def retrieve(
    runtime: Any, knowledge_base_id: str, query: str, top_k: int, condition: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Bedrock Agent Runtime ``Retrieve`` on a knowledge base: the top chunks passing ``condition``."""
    search: dict[str, Any] = {"numberOfResults": top_k} | ({"filter": condition} if condition else {})
    response = runtime.retrieve(
        knowledgeBaseId=knowledge_base_id,
        retrievalQuery={"text": query},
        retrievalConfiguration={"vectorSearchConfiguration": search},
    )
    return list(response.get("retrievalResults", []))


def location_of(result: dict[str, Any]) -> str:
    """The chunk a retrieved result (or a cited reference) was read from: its S3 URI."""
    return str(((result.get("location") or {}).get("s3Location") or {}).get("uri", ""))


def source_of(result: dict[str, Any]) -> str:
    """The document a retrieved chunk came from, as Sluice's sidecar names it (the bucket key or the
    connector's URL), else as Bedrock does."""
    metadata = result.get("metadata") or {}
    return str(metadata.get("source_uri") or metadata.get("x-amz-bedrock-kb-source-uri") or location_of(result))


def _knowledge_base(client: Any, knowledge_base_id: str, query: str, top_k: int, principals: list[str]) -> list[Hit]:
    if principals:  # more, since those denied to one of them are dropped here
        results = retrieve(client, knowledge_base_id, query, min(100, top_k * 4), allow_filter(principals))
    else:
        results = retrieve(client, knowledge_base_id, query, top_k)
    hits = []
    for result in results:
        metadata = result.get("metadata") or {}
        if principals and not may_read(metadata, principals):
            continue
        hits.append(
            Hit(
                sink="kb",
                source=source_of(result),
                score=f"{float(result.get('score', 0.0)):.3f}",
                title=str(metadata.get("title", "")),
                text=str((result.get("content") or {}).get("text", "")),
            )
        )
    return hits[:top_k]


def user_context(principals: list[str]) -> dict[str, Any]:
    """Kendra's UserContext for ``user:``/``group:`` principals (Kendra checks one user at a time)."""
    users = [p.split(":", 1)[1] for p in principals if p.startswith("user:")]
    if len(users) > 1:
        raise ValueError("Kendra checks one user at a time: give at most one --as user:NAME")
    context: dict[str, Any] = {"Groups": [p.split(":", 1)[1] for p in principals if p.startswith("group:")]}
    return context | ({"UserId": users[0]} if users else {})


def _kendra(client: Any, index_id: str, query: str, top_k: int, principals: list[str]) -> list[Hit]:
    extra = {"UserContext": user_context(principals)} if principals else {}
    response = client.retrieve(IndexId=index_id, QueryText=query, PageSize=top_k, **extra)
    return [
        Hit(
            sink="kendra",
            source=str(item.get("DocumentURI") or item.get("DocumentId", "")),
            score=str((item.get("ScoreAttributes") or {}).get("ScoreConfidence", "")).lower(),
            title=str(item.get("DocumentTitle", "")),
            text=str(item.get("Content", "")),
        )
        for item in response.get("ResultItems", [])[:top_k]
    ]


def search(
    outputs: dict[str, str],
    client: ClientFactory,
    query: str,
    top_k: int,
    *,
    principals: list[str] | None = None,
) -> list[Hit]:
    """Hits from every sink the stack has (its outputs say which), as ``principals`` may see them."""
    hits: list[Hit] = []
    who = principals or []
    if outputs.get("KnowledgeBaseId"):
        runtime = client("bedrock-agent-runtime")
        hits += _knowledge_base(runtime, outputs["KnowledgeBaseId"], query, top_k, who)
    if outputs.get("KendraIndexId"):
        hits += _kendra(client("kendra"), outputs["KendraIndexId"], query, top_k, who)
    return hits


def excerpt(text: str, query: str, width: int) -> str:
    """About ``width`` characters of ``text`` around the first word of ``query`` it contains."""
    flat = " ".join(text.split())
    lowered = flat.lower()
    found = [i for w in re.findall(r"\w+", query.lower()) if len(w) > 2 and (i := lowered.find(w)) >= 0]
    start = max(0, min(found) - width // 4) if found else 0
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def render(query: str, hits: list[Hit], out: TextIO, *, as_json: bool, width: int = 100) -> None:
    if as_json:
        out.write(json.dumps({"query": query, "hits": [asdict(h) for h in hits]}) + "\n")
        return
    if not hits:
        out.write(f"No hits for {query!r}.\n")
        return
    for sink in dict.fromkeys(h.sink for h in hits):
        out.write(f"{sink}\n")
        for n, hit in enumerate((h for h in hits if h.sink == sink), 1):
            out.write(f"  {n}. {hit.source}  (score {hit.score})\n")
            out.write(f"     {excerpt(hit.text, query, width)}\n")

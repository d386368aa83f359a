"""The prompts of a batch inference job, as Bedrock reads them: one JSON object per line,
``{"recordId": ..., "modelInput": ...}``, where ``modelInput`` is a Converse request body (the job
runs with ``modelInvocationType`` Converse, so one format serves every model family).

A line may already be such a record (its ``modelInput`` a Converse body, kept as it is), or a
prompt: ``{"prompt": "...", "system": "..."}`` (``system`` optional), or ``{"messages": [...]}`` in
Converse's own shape. Every bad line is named at once, before any job starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ANSWER_TOKENS = 1024
MAX_RECORDS = 50_000  # Bedrock's default quota of records per batch inference job (adjustable)
_RECORD_ID = re.compile(r"[a-zA-Z0-9]{1,64}")


@dataclass(frozen=True, slots=True)
class BatchInput:
    lines: bytes  # JSONL, one record per prompt
    records: int
    problems: list[str]


def _body(value: dict[str, Any]) -> dict[str, Any] | None:
    """A Converse request body from a line, or None when the line is none of the accepted shapes."""
    if isinstance(value.get("modelInput"), dict):
        return dict(value["modelInput"])
    if isinstance(value.get("messages"), list) and value["messages"]:
        body: dict[str, Any] = {"messages": value["messages"]}
    elif isinstance(value.get("prompt"), str) and value["prompt"].strip():
        body = {"messages": [{"role": "user", "content": [{"text": value["prompt"]}]}]}
    else:
        return None
    if isinstance(value.get("system"), str) and value["system"].strip():
        body["system"] = [{"text": value["system"]}]
    return body | {"inferenceConfig": {"maxTokens": ANSWER_TOKENS}}


def batch_input(data: bytes, origin: str) -> BatchInput:
    """The job's input file from a prompts file; ``problems`` names each line that is not a prompt."""
    records: list[bytes] = []
    problems: list[str] = []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            problems.append(f"{origin} line {number}: not valid JSON")
            continue
        body = _body(value) if isinstance(value, dict) else None
        if body is None:
            problems.append(
                f'{origin} line {number}: not a prompt: {{"prompt": "..."}}, {{"messages": [...]}} '
                'or {"recordId": ..., "modelInput": {...}}'
            )
            continue
        record_id = str(value.get("recordId") or f"r{number:09d}") if isinstance(value, dict) else ""
        if not _RECORD_ID.fullmatch(record_id):
            problems.append(f"{origin} line {number}: recordId must be 1 to 64 letters and digits, not {record_id!r}")
            continue
        records.append(json.dumps({"recordId": record_id, "modelInput": body}, ensure_ascii=False).encode())
    if not records and not problems:
        problems.append(f"{origin} holds no prompt")
    if len(records) > MAX_RECORDS:  # first: the one problem that is not about a line
        problems.insert(
            0, f"{origin} holds {len(records):,} prompts; a batch inference job takes at most {MAX_RECORDS:,}"
        )
    return BatchInput(b"".join(line + b"\n" for line in records), len(records), problems)

"""Record formats: CSV (rows under their header, repeated at the top of every chunk) and JSON /
JSONL (one record, or one top-level key, per unit; nested keys kept as ``path.to.key: value``).

Both are parsed strictly and with caps (docs/security.md): CSV in strict mode with a bounded field
size and column count; JSON with its nesting depth measured before parsing (``json`` recurses),
NaN and duplicate keys refused, and lone surrogates replaced so they cannot fail far downstream.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sluice.errors import QuarantineError, Reason
from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract.decode import decode

MAX_FIELD_CHARS = 131_072  # csv's own default; its error is also the best sign of a runaway quote
MAX_COLUMNS = 2_000
MAX_CELLS = 5_000_000
MAX_JSON_DEPTH = 64
ROWS_PER_BLOCK = 1_000  # rows are split into units by line anyway; this bounds a block's size


def _cell(value: str) -> str:
    return " ".join(value.split()).replace("|", "\\|")


def extract_csv(data: bytes, delimiter: str | None = None) -> ExtractedDocument:
    decoded = decode(data)
    text = decoded.text
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        rows = list(_rows(text, delimiter))
    finally:
        csv.field_size_limit(previous_limit)
    if not rows:
        raise QuarantineError(Reason.NO_TEXT, "the CSV has no rows")
    header, body = rows[0], rows[1:]
    head = f"| {' | '.join(_cell(h) for h in header)} |\n|{'---|' * len(header)}"
    blocks = []
    for i in range(0, max(len(body), 1), ROWS_PER_BLOCK):
        lines = [f"| {' | '.join(_cell(v) for v in row)} |" for row in body[i : i + ROWS_PER_BLOCK]]
        blocks.append(Block(BlockKind.PREFORMATTED, "\n".join([head, *lines]), context=head))
    notes = {**decoded.notes(), "rows": str(len(body)), "columns": str(len(header))}
    return ExtractedDocument(Kind.CSV, None, blocks, parser="sluice-csv", notes=notes)


def _rows(text: str, delimiter: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    cells = 0
    try:
        for row in reader:
            if len(row) > MAX_COLUMNS:
                raise QuarantineError(
                    Reason.CSV_MALFORMED, f"row {reader.line_num} has {len(row)} columns; the limit is {MAX_COLUMNS}"
                )
            if not any(cell.strip() for cell in row):
                continue
            cells += len(row)
            if cells > MAX_CELLS:
                raise QuarantineError(Reason.CSV_MALFORMED, f"more than {MAX_CELLS} cells")
            yield row
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise QuarantineError(
                Reason.CSV_FIELD_TOO_LARGE,
                f"a field near line {reader.line_num} is longer than {MAX_FIELD_CHARS} characters (an unclosed quote?)",
            ) from exc
        raise QuarantineError(Reason.CSV_MALFORMED, f"line {reader.line_num}: {exc}") from exc


# -- JSON ---------------------------------------------------------------------------------------------


def _depth(text: str) -> int:
    """Deepest bracket nesting, skipping strings: measured before json.loads, which recurses."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _loads(text: str, where: str) -> Any:
    if _depth(text) > MAX_JSON_DEPTH:
        raise QuarantineError(Reason.JSON_TOO_DEEP, f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except RecursionError as exc:
        raise QuarantineError(Reason.JSON_TOO_DEEP, f"{where} nests too deeply") from exc
    except ValueError as exc:
        if "Exceeds the limit" in str(exc) and "digits" in str(exc):
            raise QuarantineError(Reason.JSON_NUMBER_TOO_LARGE, f"{where}: {exc}") from exc
        raise QuarantineError(Reason.MALFORMED, f"{where}: {exc}") from exc


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        # A lone surrogate parses, then fails when the text is encoded far downstream: replace it now.
        return value.encode("utf-8", "replace").decode("utf-8")
    return json.dumps(value, ensure_ascii=False)


def _flatten(value: Any, path: str, out: list[str]) -> None:
    """``path: value`` lines for every scalar; lists of scalars stay on one line."""
    if isinstance(value, dict):
        if not value:
            out.append(f"{path}: {{}}")
        for key, item in value.items():
            _flatten(item, f"{path}.{_scalar(key)}" if path else _scalar(key), out)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            out.append(f"{path}: {', '.join(_scalar(v) for v in value)}")
        else:
            for item in value:
                _flatten(item, f"{path}[]", out)
    else:
        out.append(f"{path}: {_scalar(value)}" if path else _scalar(value))


def _record(value: Any) -> Block | None:
    lines: list[str] = []
    _flatten(value, "", lines)
    text = "\n".join(lines).strip()
    return Block(BlockKind.PREFORMATTED, text) if text else None


def extract_json(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    value = _loads(decoded.text, "the document")
    blocks: list[Block] = []
    if isinstance(value, list):  # records: one unit each (no index, so an insertion moves nothing)
        blocks = [b for item in value if (b := _record(item)) is not None]
    elif isinstance(value, dict):  # one section per top-level key
        for key, item in value.items():
            blocks.append(Block(BlockKind.HEADING, _scalar(key), level=2))
            if (b := _record(item)) is not None:
                blocks.append(b)
    elif (b := _record(value)) is not None:
        blocks = [b]
    title = value.get("title") if isinstance(value, dict) and isinstance(value.get("title"), str) else None
    return ExtractedDocument(Kind.JSON, title, blocks, parser="sluice-json", notes=decoded.notes())


def extract_jsonl(data: bytes) -> ExtractedDocument:
    decoded = decode(data)
    blocks = []
    for number, line in enumerate(decoded.text.splitlines(), start=1):
        if line.strip() and (b := _record(_loads(line, f"line {number}"))) is not None:
            blocks.append(b)
    notes = {**decoded.notes(), "records": str(len(blocks))}
    return ExtractedDocument(Kind.JSONL, None, blocks, parser="sluice-json", notes=notes)

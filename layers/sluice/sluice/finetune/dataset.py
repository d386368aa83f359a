"""Training data: read in any of the JSONL shapes Bedrock documents, written in the one the base
model's family expects, checked against the family's limits and split into training and
validation files.

Records are read into one neutral form (an ``Example``: an optional system prompt and alternating
user/assistant turns; or a ``TextRecord`` for continued pre-training), so a dataset prepared for
Claude trains Nova or Llama as well. Every check names the record it is about ("line 12",
"s3://raw/faq.jsonl line 3", "s3://raw/tickets.csv row 4") and every problem is collected: a user
fixes the whole file once, instead of learning one mistake per hour-long job.

Tokens are counted with cl100k_base. Bedrock counts with each model's own tokenizer, which no
Lambda can load; cl100k_base is an estimate that is close for English text, and the report says so.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.finetune.families import (
    CLAUDE_MESSAGES,
    CONTINUED_PRE_TRAINING,
    CONVERSE,
    FINE_TUNING,
    PROMPT_COMPLETION,
    Family,
)
from sluice.finetune.settings import shorten
from sluice.pipeline.tokens import count_tokens, tokenizer

MAX_LINES = 100_000
MAX_LINE_BYTES = 1_000_000
SHOWN = 20  # problems in an error message, warnings in a report
MAX_SKIPPED = 50
CONVERSE_SCHEMA = "bedrock-conversation-2024"
# Nova reads these as turn and media markers; in the text of a record they confuse training.
RESERVED_KEYWORDS = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
# Continued pre-training records fill this share of the family's token limit: cl100k_base only
# estimates the model's tokenizer, and the headroom absorbs the difference.
PRETRAINING_SHARE = 0.9
PAIRS = (("prompt", "completion"), ("question", "answer"), ("input", "output"))
ROLE_LABELS = {"user": "User", "assistant": "Assistant"}
TOKENIZER_NOTE = "cl100k_base estimate"
_PARAGRAPH_BREAK = re.compile(r"(\n[^\S\n]*\n\s*)")


class DatasetInvalidError(ValueError):
    """The training data cannot train the model; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        shown = f" (the first {SHOWN} shown)" if count > SHOWN else ""
        lines = "\n".join(f"- {shorten(p)}" for p in self.problems[:SHOWN])
        super().__init__(f"The dataset has {count} problem{'' if count == 1 else 's'}{shown}:\n{lines}")


@dataclass(frozen=True, slots=True)
class Example:
    """A fine-tuning record: a conversation that starts with the user and ends with the assistant."""

    source: str  # "line 12" or "s3://raw/faq.jsonl line 3"
    system: str | None
    turns: tuple[tuple[str, str], ...]  # ("user" | "assistant", text), alternating


@dataclass(frozen=True, slots=True)
class TextRecord:
    """A continued pre-training record: plain text."""

    source: str
    text: str


Record = Example | TextRecord


@dataclass(frozen=True, slots=True)
class PreparedDataset:
    train: bytes  # JSONL
    validation: bytes  # JSONL; empty when the split is 0
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CorpusDocument:
    """A document of the ingested corpus, as the fine-tune function reads it from the stores."""

    source: str  # its S3 URI in RawBucket
    kind: str  # a sluice.model.Kind value
    text: str  # the cleaned text
    raw: bytes | None  # the original bytes, for jsonl/json/csv documents
    attributes: Mapping[str, Any] = field(default_factory=dict)


class _RecordError(ValueError):
    """One record's problem; the reader adds where the record came from."""


# Reading ----------------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _RecordError(f"{what} must be a string, not {_json_type(value)}")
    if not value.strip():
        raise _RecordError(f"{what} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _RecordError(f"{what} holds an unpaired surrogate ({exc.object[exc.start]!r})") from exc
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _system(value: Any) -> str | None:
    """A Claude system string or a Converse list of ``{"text"}`` blocks; None when absent or blank."""
    if value is None:
        return None
    usage = 'system must be a string or a list of {"text": ...} blocks'
    if isinstance(value, list):
        if not all(isinstance(block, dict) and isinstance(block.get("text"), str) for block in value):
            raise _RecordError(usage)
        value = "\n".join(block["text"] for block in value)
    if not isinstance(value, str):
        raise _RecordError(usage)
    return _text(value, "system") if value.strip() else None


def _content(value: Any, number: int, role: str) -> str:
    """A message's text: a Claude string, or Converse (or Claude API) text blocks joined by newlines."""
    what = f"message {number} ({role})"
    if isinstance(value, list):
        texts = []
        for block in value:
            if not isinstance(block, dict) or not isinstance(block.get("text"), str):
                other = next(iter(block), "?") if isinstance(block, dict) and block else _json_type(block)
                raise _RecordError(f"{what} holds {other} content; only text is supported")
            texts.append(block["text"])
        value = "\n".join(texts)
    return _text(value, what)


def _conversation(record: Mapping[str, Any]) -> Example:
    if "schemaVersion" in record and record["schemaVersion"] != CONVERSE_SCHEMA:
        raise _RecordError(f"schemaVersion must be {CONVERSE_SCHEMA!r}, not {record['schemaVersion']!r}")
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise _RecordError("messages must be a non-empty list")
    turns = []
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise _RecordError(f"message {number} must be an object with role and content")
        role = message.get("role")
        if role not in ROLE_LABELS:
            raise _RecordError(f"message {number} has role {role!r}; the roles are user and assistant")
        turns.append((str(role), _content(message.get("content"), number, str(role))))
    if turns[0][0] != "user":
        raise _RecordError("the conversation must start with a user message")
    for number in range(1, len(turns)):
        if turns[number][0] == turns[number - 1][0]:
            raise _RecordError(
                f"messages {number} and {number + 1} are both {turns[number][0]}; user and assistant must alternate"
            )
    if turns[-1][0] != "assistant":
        raise _RecordError("the conversation must end with an assistant message")
    return Example("", _system(record.get("system")), tuple(turns))


def _example(record: Mapping[str, Any]) -> Example | None:
    if "messages" in record:
        return _conversation(record)
    for ask, reply in PAIRS:
        if ask in record and reply in record:
            turns = (("user", _text(record[ask], ask)), ("assistant", _text(record[reply], reply)))
            return Example("", _system(record.get("system")), turns)  # a system key as in a CSV's column
    return None


def _joined(example: Example) -> str:
    """An example as plain text, for continued pre-training."""
    return "\n\n".join([*([example.system] if example.system else []), *(text for _, text in example.turns)])


def record_from(value: Any, source: str, customization_type: str) -> Record:
    """One record from a parsed JSON value, in any accepted shape; ValueError says why not."""
    if not isinstance(value, dict):
        raise _RecordError(f"a record is a JSON object, not {_json_type(value)}")
    pretraining = customization_type == CONTINUED_PRE_TRAINING
    example = _example(value)
    if example is not None:
        return TextRecord(source, _joined(example)) if pretraining else Example(source, example.system, example.turns)
    single = next((key for key in ("input", "text") if key in value), None)
    if single is not None and pretraining:
        return TextRecord(source, _text(value[single], single))
    if single is not None:
        raise _RecordError(
            f'a record with "{single}" alone is for continued pre-training; fine-tuning needs prompt/completion, '
            "question/answer, input/output or messages"
        )
    keys = ", ".join(map(str, value)) or "none"
    expected = "prompt/completion, question/answer, input/output or messages"
    if pretraining:
        expected = f"input or text (or {expected})"
    raise _RecordError(f"not a recognised record (keys: {keys}); expected {expected}")


def _read_lines(data: bytes, customization_type: str, origin: str) -> tuple[list[Record], list[tuple[str, str]]]:
    """Records and (source, problem) pairs, one JSON value per line."""
    records: list[Record] = []
    problems: list[tuple[str, str]] = []
    where = f"{origin} line" if origin else "line"
    data = data.removeprefix(codecs.BOM_UTF8)
    for number, line in enumerate(data.split(b"\n"), 1):
        source = f"{where} {number}"
        if not line.strip():
            continue
        if number > MAX_LINES:
            problems.append((source, f"the file has more than {MAX_LINES:,} lines, the most one dataset may hold"))
            break
        if len(line) > MAX_LINE_BYTES:
            problems.append((source, f"the line is {len(line):,} bytes; the limit is {MAX_LINE_BYTES:,}"))
            break
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append((source, f"not valid UTF-8 (byte {exc.start + 1} of the line)"))
            continue
        except json.JSONDecodeError as exc:
            problems.append((source, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except (ValueError, RecursionError) as exc:
            problems.append((source, f"not valid JSON ({exc})"))
            continue
        try:
            records.append(record_from(value, source, customization_type))
        except _RecordError as exc:
            problems.append((source, str(exc)))
    return records, problems


def parse_jsonl(data: bytes, *, customization_type: str, origin: str = "") -> tuple[list[Record], list[str]]:
    """The records of a JSONL file and a problem for each line that is not one (a bad line does not
    stop the reading: the user sees every bad line at once). ``origin`` prefixes the sources."""
    records, problems = _read_lines(data, customization_type, origin)
    return records, [f"{source}: {problem}" for source, problem in problems]


# Writing ----------------------------------------------------------------------------------------


def _prompt(example: Example) -> tuple[str, str]:
    """The prompt and completion of an example: a single turn as it is; earlier turns flattened
    into the prompt as "User: ...\\nAssistant: ..." lines, the last assistant turn the completion."""
    *history, (_, completion) = example.turns
    flattened = (f"{ROLE_LABELS[role]}: {text}" for role, text in history)
    prompt = history[0][1] if len(history) == 1 else "\n".join(flattened)
    if example.system:
        prompt = f"{example.system}\n\n{prompt}"
    return prompt, completion


def render(record: Record, family: Family, customization_type: str) -> dict[str, Any]:
    """The record as one JSONL object in the format the family trains on."""
    if customization_type == CONTINUED_PRE_TRAINING:
        return {"input": record.text if isinstance(record, TextRecord) else _joined(record)}
    if isinstance(record, TextRecord):
        raise TypeError(f"{record.source}: plain text cannot fine-tune {family.label}; it needs conversations")
    if family.fine_tuning_format == PROMPT_COMPLETION:
        prompt, completion = _prompt(record)
        return {"prompt": prompt, "completion": completion}
    if family.fine_tuning_format == CLAUDE_MESSAGES:
        messages = [{"role": role, "content": text} for role, text in record.turns]
        return {"system": record.system, "messages": messages} if record.system else {"messages": messages}
    if family.fine_tuning_format == CONVERSE:
        rendered: dict[str, Any] = {"schemaVersion": CONVERSE_SCHEMA}
        if record.system:
            rendered["system"] = [{"text": record.system}]
        rendered["messages"] = [{"role": role, "content": [{"text": text}]} for role, text in record.turns]
        return rendered
    raise ValueError(f"{family.label} has an unknown format {family.fine_tuning_format!r}")


def _texts(value: Any) -> Iterable[str]:
    """The texts of a rendered record, the only part a tokenizer sees."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("role", "schemaVersion"):
                yield from _texts(item)


def record_tokens(rendered: Mapping[str, Any]) -> int:
    """The record's tokens (input and output together) as cl100k_base counts them."""
    return sum(count_tokens(text) for text in _texts(rendered))


def _reserved(record: Record) -> list[str]:
    texts = [record.text] if isinstance(record, TextRecord) else [record.system or "", *(t for _, t in record.turns)]
    return [keyword for keyword in RESERVED_KEYWORDS if any(keyword in text for text in texts)]


@dataclass(frozen=True, slots=True)
class _Line:
    data: bytes
    tokens: int
    share: float  # where the line's hash falls in [0, 1): below the split, it validates


def prepare(
    records: Sequence[Record], settings: Mapping[str, Any], family: Family, problems: Sequence[str] = ()
) -> PreparedDataset:
    """The training and validation JSONL for ``settings`` (the dict validate_input returns), or
    DatasetInvalidError listing every problem, those found while parsing (``problems``) included.

    The split is decided by each record's content hash, so the same data always splits the same
    way (a rerun trains on the same files, and a changed record moves only itself)."""
    customization_type = str(settings["customization_type"])
    pretraining = customization_type == CONTINUED_PRE_TRAINING
    split = float(settings.get("validation_split", 0.0))
    max_tokens = int(settings.get("max_record_tokens", family.max_record_tokens))
    found = list(problems)
    warnings: list[str] = []
    lines: list[_Line] = []
    for record in records:
        if not pretraining and isinstance(record, TextRecord):
            found.append(f"{record.source}: plain text cannot fine-tune {family.label}; it needs conversations")
            continue
        rendered = render(record, family, customization_type)
        tokens = record_tokens(rendered)
        if tokens > max_tokens:
            found.append(f"{record.source}: {tokens:,} tokens; {family.label} takes at most {max_tokens:,} per record")
        if not pretraining and family.fine_tuning_format == CONVERSE:
            warnings.extend(
                f"{record.source}: holds {keyword!r}, a keyword the converse format (Nova) reserves"
                for keyword in _reserved(record)
            )
        try:
            data = json.dumps(rendered, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            found.append(f"{record.source}: the text holds an unpaired surrogate")
            continue
        lines.append(_Line(data, tokens, int(hashlib.sha256(data).hexdigest()[:8], 16) / 2**32))

    shares = [line.share for line in lines]
    validates = [share < split for share in shares]
    if lines and all(validates):  # training needs a record
        validates[shares.index(max(shares))] = False
    if split > 0 and len(lines) >= 2 and not any(validates):  # so does validation, when asked for
        validates[shares.index(min(shares))] = True
    train = [line for line, v in zip(lines, validates, strict=True) if not v]
    validation = [line for line, v in zip(lines, validates, strict=True) if v]

    minimum = int(settings.get("min_records", family.min_records))
    maximum = int(settings.get("max_records", family.record_limit(customization_type)))
    max_validation = settings.get("max_validation_records", family.max_validation_records)
    if not lines and not found:
        found.append("the dataset has no records")
    elif len(lines) < minimum:
        found.append(f"the dataset has {len(lines):,} records; {family.label} needs at least {minimum:,}")
    if len(lines) > maximum:
        found.append(
            f"the dataset has {len(lines):,} records; {family.label} takes at most {maximum:,} "
            "(training and validation together)"
        )
    if max_validation is not None and len(validation) > int(max_validation):
        found.append(
            f"the validation split holds {len(validation):,} records; {family.label} takes at most "
            f"{int(max_validation):,}: lower validation_split"
        )
    if found:
        raise DatasetInvalidError(found)

    epochs = int(settings.get("epochs", 1))
    train_tokens = sum(line.tokens for line in train)
    report = {
        "records": len(lines),
        "train_records": len(train),
        "validation_records": len(validation),
        "train_tokens": train_tokens,
        "validation_tokens": sum(line.tokens for line in validation),
        "max_record_tokens_seen": max((line.tokens for line in lines), default=0),
        "epochs": epochs,
        "estimated_training_tokens": train_tokens * epochs,  # what the job is billed by
        "tokenizer": TOKENIZER_NOTE,
        "format": "continued_pretraining" if pretraining else family.fine_tuning_format,
        "warnings": warnings[:SHOWN],
        "warnings_total": len(warnings),
    }
    return PreparedDataset(
        train=b"".join(line.data + b"\n" for line in train),
        validation=b"".join(line.data + b"\n" for line in validation),
        report=report,
    )


# The corpus -------------------------------------------------------------------------------------


def matches_filter(document: CorpusDocument, corpus_filter: Mapping[str, Any]) -> bool:
    """Whether a document passes the dataset's filter (the normalised one validate_input returns):
    its kind among ``kinds`` (any, when empty) and every attribute equal to the wanted value, or,
    for a list attribute, holding it."""
    kinds = corpus_filter.get("kinds") or []
    if kinds and document.kind not in kinds:
        return False
    for name, wanted in (corpus_filter.get("attributes") or {}).items():
        value = document.attributes.get(name)
        if not (value == wanted or (isinstance(value, list) and wanted in value)):
            return False
    return True


def _slices(paragraph: str, budget: int) -> list[str]:
    """A paragraph longer than the budget, cut at token boundaries that are also character
    boundaries. Re-encoding a slice can count a token or two more than its share of the whole, so
    each slice is counted again and shortened until it fits."""
    data = paragraph.encode("utf-8", "surrogatepass")
    ends = tokenizer().byte_ends(paragraph)

    def inside_character(token: int) -> bool:
        return ends[token] < len(data) and data[ends[token]] & 0xC0 == 0x80

    pieces: list[str] = []
    first, start = 0, 0  # the slice's first token, and the byte it starts at
    while first < len(ends):
        take = budget
        while True:
            last = min(first + take, len(ends)) - 1
            while last > first and inside_character(last):
                last -= 1  # a token that ends inside a character: cut before it
            while inside_character(last):
                last += 1  # or, if the slice's one token does, after the character
            piece = data[start : ends[last]].decode("utf-8", "surrogatepass")
            excess = count_tokens(piece) - budget
            if excess <= 0 or last == first or take == 1:
                break  # fits, or cannot shrink: one character may take more tokens than the budget
            take = max(1, min(take, last - first + 1) - excess)
        pieces.append(piece)
        first, start = last + 1, ends[last]
    return pieces


def pack_text(text: str, budget: int) -> list[str]:
    """The text cut into pieces of at most ``budget`` tokens: whole paragraphs (split on blank
    lines) packed together, a paragraph longer than the budget cut at token boundaries. Only the
    white space between two pieces is dropped."""
    parts = _PARAGRAPH_BREAK.split(text.strip())
    units: list[tuple[str, str, int]] = []  # separator before, text, tokens of both
    separator = ""
    for index, part in enumerate(parts):
        if index % 2:
            separator = part
            continue
        if not part:
            continue
        if count_tokens(part) <= budget:
            units.append((separator, part, count_tokens(separator + part)))
        else:
            units.extend((separator if i == 0 else "", piece, count_tokens(piece))
                         for i, piece in enumerate(_slices(part, budget)))  # fmt: skip
    pieces = []
    first = 0
    while first < len(units):
        end, total = first + 1, units[first][2] - count_tokens(units[first][0])
        while end < len(units) and total + units[end][2] <= budget:
            total += units[end][2]
            end += 1
        # Counting the units one by one only estimates the count of their join: check it.
        while True:
            piece = units[first][1] + "".join(sep + unit for sep, unit, _ in units[first + 1 : end])
            if end - first == 1 or count_tokens(piece) <= budget:
                break
            end -= 1
        pieces.append(piece)
        first = end
    return pieces


def _skip(skipped: list[dict[str, str]], source: str, reason: str) -> None:
    skipped.append({"source": source, "reason": reason})


def _json_records(document: CorpusDocument, data: bytes) -> tuple[list[Record], list[tuple[str, str]]]:
    """The pairs of a JSON document: a list of records, or one record. A file that is not one JSON
    value is read as JSON lines (a .json name on a JSONL file is common)."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return _read_lines(data, FINE_TUNING, document.source)
    items = value if isinstance(value, list) else [value]
    records: list[Record] = []
    problems: list[tuple[str, str]] = []
    for number, item in enumerate(items[:MAX_LINES], 1):
        source = f"{document.source} item {number}" if isinstance(value, list) else document.source
        try:
            records.append(record_from(item, source, FINE_TUNING))
        except _RecordError as exc:
            problems.append((source, str(exc)))
    return records, problems


def _csv_records(document: CorpusDocument, data: bytes) -> tuple[list[Record], list[tuple[str, str]], str | None]:
    """The pairs of a CSV document whose header names a pair of columns; rows are numbered as a
    spreadsheet shows them (the header is row 1)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [], "not UTF-8"
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    records: list[Record] = []
    problems: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        pair = next(((ask, reply) for ask, reply in PAIRS if ask in header and reply in header), None)
        if pair is None:
            return [], [], "the header has no prompt/completion, question/answer or input/output columns"
        ask, reply = header.index(pair[0]), header.index(pair[1])
        system = header.index("system") if "system" in header else None
        for number, row in enumerate(reader, 2):
            source = f"{document.source} row {number}"
            if number > MAX_LINES:
                problems.append((source, f"more than {MAX_LINES:,} rows; the rest were not read"))
                break
            if not any(cell.strip() for cell in row):
                continue
            cells = row + [""] * (len(header) - len(row))
            try:
                turns = (("user", _text(cells[ask], pair[0])), ("assistant", _text(cells[reply], pair[1])))
            except _RecordError as exc:
                problems.append((source, str(exc)))
                continue
            system_prompt = cells[system].strip() if system is not None else ""
            records.append(Example(source, system_prompt or None, turns))
    except csv.Error as exc:
        return records, problems, f"malformed CSV near line {reader.line_num}: {exc}"
    return records, problems, None


def _pairs(document: CorpusDocument) -> tuple[list[Record], list[tuple[str, str]], str | None]:
    """A document's examples, the records it holds that are not examples, and the reason it holds
    none at all (None when it holds some)."""
    kind = document.kind.lower()
    if kind not in ("jsonl", "json", "csv"):
        return [], [], f"a {kind} document holds no prompt/completion pairs"
    if document.raw is None:
        return [], [], "the document's original bytes were not read"
    if kind == "csv":
        records, problems, reason = _csv_records(document, document.raw)
    elif kind == "json":
        records, problems = _json_records(document, document.raw)
        reason = None
    else:
        records, problems = _read_lines(document.raw, FINE_TUNING, document.source)
        reason = None
    if not records and reason is None:
        reason = "no prompt/completion pairs" + (f" ({problems[0][0]}: {problems[0][1]})" if problems else "")
    return records, problems, reason


def corpus_records(
    documents: Iterable[CorpusDocument], *, customization_type: str, max_record_tokens: int
) -> tuple[list[Record], dict[str, Any]]:
    """Training records from corpus documents, and a summary of what was used and skipped.

    Continued pre-training uses every document's cleaned text, cut into records of at most 90% of
    the family's token limit. Fine-tuning needs pairs, so it uses only JSONL/JSON documents of
    accepted record shapes and CSV documents with a pair of columns (prompt/completion,
    question/answer or input/output; a ``system`` column is used when present); a record in them
    that is not a pair is skipped and listed."""
    budget = max(int(max_record_tokens * PRETRAINING_SHARE), 16)
    records: list[Record] = []
    skipped: list[dict[str, str]] = []
    used = 0
    for document in documents:
        if customization_type == CONTINUED_PRE_TRAINING:
            pieces = pack_text(document.text, budget) if document.text.strip() else []
            if not pieces:
                _skip(skipped, document.source, "no text")
                continue
            records.extend(TextRecord(f"{document.source} part {n}", piece) for n, piece in enumerate(pieces, 1))
            used += 1
            continue
        examples, problems, reason = _pairs(document)
        if reason is not None and not examples:
            _skip(skipped, document.source, reason)
            continue
        records.extend(examples)
        for source, problem in problems:
            _skip(skipped, source, problem)
        if reason is not None:
            _skip(skipped, document.source, reason)
        used += 1
    summary = {
        "documents": used,
        "skipped": skipped[:MAX_SKIPPED],
        "skipped_total": len(skipped),
        "records": len(records),
    }
    return records, summary

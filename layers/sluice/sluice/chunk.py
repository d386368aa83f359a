"""Structure-aware chunking measured in cl100k_base tokens.

The document becomes a sequence of units: headings, paragraphs, and (only where a paragraph is too
long for a chunk) its sentences, words or, for a single run longer than a chunk, token-sized slices.
Units are packed in order. A chunk ends
- before a heading, once the section ending there holds ``min_tokens``;
- after an *anchor* unit, once the units since the previous anchor hold ``min_tokens``. Anchors are
  chosen by a hash of the unit's text, so boundaries depend on content, not on position: an edit
  moves at most the boundaries next to it, and the chunks after it come out identical (the
  stability the sinks' diffs rely on: one edited paragraph changes at most three chunks);
- when the next unit would not fit (forced).
Each chunk after the first may start with up to ``overlap_tokens`` of the previous chunk's tail
(never across a heading). Every chunk's token count is measured on its final text with
``encode_ordinary``, and it never exceeds ``max_tokens``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sluice.model import Block, BlockKind, Chunk

Counter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*(\s+)(?=\S)")
_WHITESPACE = re.compile(r"\s+")
TARGET_SHARE = 0.4  # anchors fall about every 0.4 x max_tokens tokens


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    max_tokens: int = 512
    # Tokens of the previous chunk repeated at the start of the next. Default: max_tokens / 8.
    overlap_tokens: int = -1
    # No chunk is cut off smaller than this (a document's last chunk, or a short document, may be);
    # a section shorter than this shares a chunk with the next. Default: max_tokens / 4.
    min_tokens: int = -1

    def __post_init__(self) -> None:
        if self.overlap_tokens == -1:
            object.__setattr__(self, "overlap_tokens", self.max_tokens // 8)
        if self.min_tokens == -1:
            object.__setattr__(self, "min_tokens", self.max_tokens // 4)
        if not 32 <= self.max_tokens <= 8192:
            raise ValueError(f"max_tokens must be between 32 and 8192, not {self.max_tokens}")
        if not 0 <= self.overlap_tokens <= self.max_tokens // 4:
            raise ValueError(f"overlap_tokens must be between 0 and max_tokens/4 ({self.max_tokens // 4})")
        if not 0 <= self.min_tokens <= self.max_tokens // 2:
            raise ValueError(f"min_tokens must be between 0 and max_tokens/2 ({self.max_tokens // 2})")


@dataclass(slots=True)
class _Unit:
    sep: str  # the document text between the previous unit and this one
    start: int  # offsets of this unit's text in the document text
    end: int
    tokens: int
    page: int | None
    path: tuple[str, ...]
    heading: bool
    weight: float  # the unit's text hash as a fraction in [0, 1): decides whether it is an anchor


def render(block: Block) -> str:
    """A block as it appears in the cleaned document text: headings in Markdown form."""
    if block.kind is BlockKind.HEADING:
        return f"{'#' * block.level} {block.text}"
    return block.text


def _split_long(text: str, capacity: int, count: Counter, preformatted: bool) -> list[tuple[str, str, int]]:
    """(separator, piece, tokens) triples whose separators and pieces concatenate back to ``text``,
    each piece within ``capacity``: sentences (lines, for preformatted text), then runs of whole
    words, then token-sized slices of a single run longer than that."""
    pattern = re.compile(r"(\n+)(?=\S)") if preformatted else _SENTENCE_END
    out: list[tuple[str, str, int]] = []
    for sep, piece in _split_keep(text, pattern):
        tokens = count(piece)
        if tokens <= capacity:
            out.append((sep, piece, tokens))
            continue
        for i, (run_sep, run) in enumerate(_pack_words(piece, capacity, count)):
            lead = sep if i == 0 else run_sep
            tokens = count(run)
            if tokens <= capacity:
                out.append((lead, run, tokens))
            else:  # word sizes summed to fit, the exact count says otherwise: slice it
                out.extend(
                    (lead if k == 0 else "", s, count(s)) for k, s in enumerate(_slice_tokens(run, capacity, count))
                )
    return out


def _split_keep(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    pieces: list[tuple[str, str]] = []
    pos = 0
    sep = ""
    for match in pattern.finditer(text):
        cut = match.start(1)
        if cut > pos:
            pieces.append((sep, text[pos:cut]))
            sep, pos = match.group(1), match.end(1)
    pieces.append((sep, text[pos:]))
    return pieces


def _pack_words(text: str, capacity: int, count: Counter) -> list[tuple[str, str]]:
    """Greedy runs of whole words within ``capacity``; a word longer than that is sliced. Sizes are
    summed per word (with its leading space, which is how the tokenizer splits them); the packer
    measures the final text exactly."""
    out: list[tuple[str, str]] = []
    run_sep, run, run_tokens = "", "", 0
    for sep, word in _split_keep(text, re.compile(r"(\s+)(?=\S)")):
        tokens = count(f"{sep}{word}")
        if tokens > capacity and count(word) > capacity:
            if run:
                out.append((run_sep, run))
                run = ""
            out.extend((sep if k == 0 else "", piece) for k, piece in enumerate(_slice_tokens(word, capacity, count)))
            continue
        if run and run_tokens + tokens > capacity:
            out.append((run_sep, run))
            run = ""
        if run:
            run, run_tokens = f"{run}{sep}{word}", run_tokens + tokens
        else:
            run_sep, run, run_tokens = sep, word, tokens
    if run:
        out.append((run_sep, run))
    return out


def _slice_tokens(word: str, capacity: int, count: Counter) -> list[str]:
    """Prefixes within ``capacity`` tokens, found by bisection on characters (searching no further
    than a generous characters-per-token bound, so a huge run costs linear time)."""
    pieces = []
    rest = word
    while rest:
        lo, hi = 1, min(len(rest), capacity * 8)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(rest[:mid]) <= capacity:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(rest[:lo])
        rest = rest[lo:]
    return pieces


def _units(blocks: Sequence[Block], capacity: int, count: Counter) -> tuple[str, list[_Unit]]:
    parts: list[str] = []
    units: list[_Unit] = []
    pos = 0
    path: list[tuple[int, str]] = []
    for block in blocks:
        heading = block.kind is BlockKind.HEADING
        if heading:
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, block.text))
        text = render(block)
        tokens = count(text)
        if tokens <= capacity:
            pieces = [("", text, tokens)]
        else:
            pieces = _split_long(text, capacity, count, block.kind is BlockKind.PREFORMATTED)
        for i, (inner_sep, piece, size) in enumerate(pieces):
            sep = ("\n\n" if parts else "") if i == 0 else inner_sep
            parts.append(sep)
            pos += len(sep)
            parts.append(piece)
            weight = zlib.crc32(piece.encode("utf-8", "surrogatepass")) / 2**32
            units.append(
                _Unit(sep, pos, pos + len(piece), size, block.page, tuple(t for _, t in path), heading, weight)
            )
            pos += len(piece)
    return "".join(parts), units


def _sep_cost(sep: str) -> int:
    return 0 if sep in ("", " ") else 1


def _overlap(text: str, units: list[_Unit], first: int, last: int, budget: int, count: Counter) -> str:
    """The tail of units[first..last] within ``budget`` tokens: whole units where they fit, else the
    last unit's trailing words."""
    if budget <= 0:
        return ""
    i, total = last, units[last].tokens
    while i > first and total + 1 + units[i - 1].tokens <= budget:
        i -= 1
        total += 1 + units[i].tokens
    while True:  # the sum is an estimate; the exact count decides
        span = text[units[i].start : units[last].end]
        if count(span) <= budget:
            return span
        if i == last:
            break
        i += 1
    words = span.split(" ")
    lo, hi = 0, len(words) - 1  # number of trailing words kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[-mid:])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[-lo:]) if lo else ""


def _cut_points(units: list[_Unit], settings: ChunkSettings) -> set[int]:
    """Indices after which a chunk may end, decided by content alone: before a heading (once the
    section ending there holds ``min_tokens``), and after an anchor unit (once the units since the
    previous anchor hold ``min_tokens``). A unit is an anchor with probability proportional to its
    size (its hash against tokens/target), so anchors fall about every ``target`` tokens whatever
    the paragraph lengths. Each decision looks only at the units since the previous heading or
    anchor, which is what keeps an edit's effect on the boundaries local."""
    target = settings.max_tokens * TARGET_SHARE
    cuts: set[int] = set()
    gap = section = 0
    for i in range(len(units) - 1):
        unit, nxt = units[i], units[i + 1]
        gap += unit.tokens
        section += unit.tokens
        if unit.heading:
            continue  # a heading stays with what follows it
        if nxt.heading:
            if section >= settings.min_tokens:
                cuts.add(i)
            gap = section = 0
        elif unit.weight < unit.tokens / target:
            if gap >= settings.min_tokens:
                cuts.add(i)
            gap = 0
    return cuts


def chunk_blocks(blocks: Sequence[Block], settings: ChunkSettings, count: Counter) -> tuple[str, list[Chunk]]:
    """The cleaned document text and its chunks."""
    capacity = settings.max_tokens - settings.overlap_tokens - 2
    text, units = _units(blocks, capacity, count)
    cuts = _cut_points(units, settings)
    chunks: list[Chunk] = []
    i = 0
    previous: tuple[int, int] | None = None  # unit range of the previous chunk
    while i < len(units):
        prefix = ""
        if previous is not None and not units[i].heading:
            prefix = _overlap(text, units, previous[0], previous[1], settings.overlap_tokens, count)
        budget = settings.max_tokens - (count(prefix) + 1 if prefix else 0)
        j = i
        size = units[i].tokens
        while j not in cuts and j + 1 < len(units):
            grown = size + _sep_cost(units[j + 1].sep) + units[j + 1].tokens
            if grown > budget:
                break  # forced: the run between two cut points is longer than a chunk
            size = grown
            j += 1
        while True:
            body = text[units[i].start : units[j].end]
            chunk_text = f"{prefix}{units[i].sep or ' '}{body}" if prefix else body
            tokens = count(chunk_text)
            if tokens <= settings.max_tokens:
                break
            if j > i:
                j -= 1  # token counts are not quite additive across joins: give back a unit
            elif prefix:
                prefix = ""
            else:  # unreachable: a unit alone is within capacity
                raise AssertionError("a single unit exceeds max_tokens")
        pages = tuple(sorted({u.page for u in units[i : j + 1] if u.page is not None}))
        chunks.append(
            Chunk(
                text=chunk_text,
                tokens=tokens,
                pages=pages,
                headings=units[i].path,
                start=units[i].start,
                end=units[j].end,
                overlap=len(chunk_text) - len(body),
            )
        )
        previous = (i, j)
        i = j + 1
    return text, chunks

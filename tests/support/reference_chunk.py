"""The chunker as it stood before it was made faster (sluice.pipeline.chunk at bfb671d), kept on
purpose, unchanged but for this docstring, the imports it shares with the layer (below) and one
deliberate change made in both (anchors every half chunk when there is no overlap,
TARGET_SHARE_NO_OVERLAP): it encodes each candidate chunk's edges again, scans for safe points
character by character, and builds its units one by one.

This is a reference, not code the layer runs: tests/unit/test_chunk_reference.py holds the layer's
chunker to it, chunk for chunk and field for field, on generated documents (tests/support/varied.py)
and on Hypothesis inputs. The layer's code may take any shortcut that gives the same chunks; a
deliberate change of where chunks start and end changes both, this module first.

What the layer's code and this module share (the data model, the chunk settings with their defaults
and checks, the rendering of a block, and the tokenizer) is imported, so that only the ways of
computing differ.
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sluice.model import Block, BlockKind, Chunk
from sluice.pipeline.chunk import ChunkSettings, render
from sluice.pipeline.tokens import Tokenizer

_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*(\s+)(?=\S)")
_LINE_BREAK = re.compile(r"(\n+)(?=\S)")
_WORD_GAP = re.compile(r"(\s+)(?=\S)")
# Anchors fall about every TARGET_SHARE x max_tokens tokens; without overlap, every half chunk: an
# edit then reaches no chunk through a copied tail, and fuller chunks retrieve more (docs/quality.md).
TARGET_SHARE = 0.4
TARGET_SHARE_NO_OVERLAP = 0.5
MARGIN = 2  # a chunk whose count comes this close to max_tokens is encoded whole, to be sure
BREADCRUMB_SEPARATOR = " > "


@dataclass(slots=True)
class _Unit:
    sep: str  # the document text between the previous unit and this one
    start: int  # character offsets of this unit in the document text
    end: int
    bstart: int  # the same, in bytes of the document's UTF-8 encoding
    bend: int
    tokens: int  # document tokens ending inside the unit (exact but for its edges)
    page: int | None
    path: tuple[str, ...]
    heading: bool
    weight: float  # the unit's text hash as a fraction in [0, 1): decides whether it is an anchor
    context: str | None = None  # repeated first in a chunk that starts here, mid-block (a table header)
    prose: bool = True  # a paragraph (or a piece of one): an overlap may start between its words


class _Document:
    """The document text, encoded once."""

    def __init__(self, text: str, data: bytes, tokenizer: Tokenizer) -> None:
        self.text = text
        self.data = data
        self.tokenizer = tokenizer
        self.ends = tokenizer.byte_ends(text)
        self.ascii = len(data) == len(text)

    def tokens(self, bstart: int, bend: int) -> int:
        """Tokens ending in the byte span (bstart, bend]."""
        return bisect_right(self.ends, bend) - bisect_right(self.ends, bstart)

    def byte_at(self, units: list[_Unit], position: int, unit: _Unit | None = None) -> int:
        """The byte offset of a character offset (``unit``, if given, is the unit holding it)."""
        if self.ascii:
            return position
        unit = unit or _unit_at(units, position)
        return unit.bstart + len(self.text[unit.start : position].encode("utf-8", "surrogatepass"))

    def exact(self, start: int, end: int, units: list[_Unit], limit: int, prefix: str = "") -> int:
        """``len(encode_ordinary(prefix + text[start:end]))`` without encoding the span again.

        Tokens are counted from the document's own encoding between two points where a tokenizer
        pre-token must end whatever surrounds the span: after a newline (or at the document start)
        and at a safe word end (a letter or digit followed by anything else). Only the few
        characters before the first such point and after the last are encoded again. Near
        ``limit`` a non-ASCII span is encoded whole: Python's and the tokenizer's Unicode tables
        could disagree about a new character."""
        text, count = self.text, self.tokenizer.count
        m = start if start == 0 or text[start - 1] == "\n" else _safe_after(text, start, end)
        n = end if _is_safe(text, end) else _safe_before(text, end, m)
        if m is None or n is None or n < m:
            return count(prefix + text[start:end])
        tokens = count(prefix + text[start:m]) if prefix or m > start else 0
        tokens += self.tokens(self.byte_at(units, m), self.byte_at(units, n))
        if n < end:
            tokens += count(text[n:end])
        if self.ascii or tokens < limit - MARGIN:
            return tokens
        return count(prefix + text[start:end])


def _is_safe(text: str, p: int) -> bool:
    """A pre-token ends at p whatever follows: a letter or digit, then anything else (or the end)."""
    return text[p - 1].isalnum() and (p == len(text) or not text[p].isalnum())


def _safe_after(text: str, start: int, end: int) -> int | None:
    for p in range(start + 1, end + 1):
        if _is_safe(text, p):
            return p
    return None


def _safe_before(text: str, end: int, floor: int | None) -> int | None:
    lowest = floor if floor is not None else 0
    for p in range(end - 1, lowest, -1):
        if _is_safe(text, p):
            return p
    return None


def _unit_at(units: list[_Unit], position: int) -> _Unit:
    lo, hi = 0, len(units) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if units[mid].start <= position:
            lo = mid
        else:
            hi = mid - 1
    return units[lo]


# page, heading path, heading?, context, prose?
_Context = tuple[int | None, tuple[str, ...], bool, str | None, bool]


class _Builder:
    """Turns rendered blocks into units, splitting the ones too long for a chunk."""

    def __init__(self, doc: _Document, capacity: int) -> None:
        self.doc = doc
        self.capacity = capacity
        self.units: list[_Unit] = []
        self.data = doc.data
        self.block_start = 0

    def _bytes(self, start: int, end: int) -> int:
        return end - start if self.doc.ascii else len(self.doc.text[start:end].encode("utf-8", "surrogatepass"))

    def add(self, placed: _Placement, first: bool) -> None:
        block, start, bstart = placed.block, placed.start, placed.bstart
        self.block_start = start
        end, bend = start + placed.length, bstart + placed.blength
        lead = "" if first else "\n\n"
        ctx = (
            block.page,
            placed.path,
            block.kind is BlockKind.HEADING,
            placed.context,
            block.kind is BlockKind.PARAGRAPH,
        )
        tokens = self.doc.tokens(bstart, bend)
        if tokens <= self.capacity:
            self._unit(lead, start, end, bstart, bend, tokens, ctx)
            return
        pattern = _LINE_BREAK if block.kind is BlockKind.PREFORMATTED else _SENTENCE_END
        for piece_sep, s, e, bs, be in self._spans(start, end, bstart, pattern):
            tokens = self.doc.tokens(bs, be)
            sep = lead if s == start else piece_sep
            if tokens <= self.capacity:
                self._unit(sep, s, e, bs, be, tokens, ctx)
            else:
                self._words(sep, s, e, bs, ctx)

    def _spans(
        self, start: int, end: int, bstart: int, pattern: re.Pattern[str]
    ) -> list[tuple[str, int, int, int, int]]:
        """(separator, start, end, byte start, byte end) of the pieces of text[start:end] between the
        pattern's separators (group 1)."""
        spans = []
        pos, bpos, sep = start, bstart, ""
        for match in pattern.finditer(self.doc.text, start, end):
            cut = match.start(1)
            if cut > pos:
                bcut = bpos + self._bytes(pos, cut)
                spans.append((sep, pos, cut, bpos, bcut))
                sep, pos, bpos = match.group(1), match.end(1), bcut + self._bytes(cut, match.end(1))
        spans.append((sep, pos, end, bpos, bpos + self._bytes(pos, end)))
        return spans

    def _words(self, sep: str, start: int, end: int, bstart: int, ctx: _Context) -> None:
        """Runs of whole words within capacity; a single word longer than that is sliced."""
        run: tuple[str, int, int, int, int] | None = None  # separator, start, end, byte start, byte end
        for wsep, ws, we, wbs, wbe in self._spans(start, end, bstart, _WORD_GAP):
            lead = sep if ws == start else wsep
            if run is not None and self.doc.tokens(run[3], wbe) <= self.capacity:
                run = (run[0], run[1], we, run[3], wbe)
                continue
            if run is not None:
                self._unit(*run, self.doc.tokens(run[3], run[4]), ctx)
                run = None
            if self.doc.tokens(wbs, wbe) > self.capacity:
                self._slice(lead, ws, wbs, wbe, ctx)
            else:
                run = (lead, ws, we, wbs, wbe)
        if run is not None:
            self._unit(*run, self.doc.tokens(run[3], run[4]), ctx)

    def _slice(self, sep: str, start: int, bstart: int, bend: int, ctx: _Context) -> None:
        """Cut a run with no white space at token boundaries that are also character boundaries."""
        ends = self.doc.ends
        pos, cut_from, count = start, bstart, 0
        for k in range(bisect_right(ends, bstart), len(ends)):
            b = min(ends[k], bend)
            count += 1
            at_char = b >= len(self.data) or (self.data[b] & 0xC0) != 0x80
            # A character is at most 4 bytes, so cutting a little early always finds a boundary.
            if at_char and (count >= self.capacity - 4 or b >= bend):
                chars = b - cut_from if self.doc.ascii else len(self.data[cut_from:b].decode("utf-8", "surrogatepass"))
                self._unit(sep if pos == start else "", pos, pos + chars, cut_from, b, count, ctx)
                pos, cut_from, count = pos + chars, b, 0
            if b >= bend:
                return

    def _unit(self, sep: str, start: int, end: int, bstart: int, bend: int, tokens: int,
              ctx: _Context) -> None:  # fmt: skip
        page, path, heading, context, prose = ctx
        weight = zlib.crc32(self.data[bstart:bend]) / 2**32
        # The block's first unit holds the context itself; later ones repeat it when they start a chunk.
        repeat = context if context and start != self.block_start else None
        self.units.append(_Unit(sep, start, end, bstart, bend, tokens, page, path, heading, weight, repeat, prose))


def _cut_points(units: list[_Unit], settings: ChunkSettings) -> set[int]:
    """Indices after which a chunk may end, decided by content alone: before a heading (once the
    section ending there holds ``min_tokens``), and after an anchor unit (once the units since the
    previous anchor hold ``min_tokens``). A unit is an anchor with probability proportional to its
    size (its hash against tokens/target), so anchors fall about every ``target`` tokens whatever
    the paragraph lengths. Each decision looks only at the units since the previous heading or
    anchor, which is what keeps an edit's effect on the boundaries local."""
    target = settings.max_tokens * (TARGET_SHARE if settings.overlap_tokens else TARGET_SHARE_NO_OVERLAP)
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


@dataclass(frozen=True, slots=True)
class _Placement:
    block: Block
    start: int  # character offset of the rendered block in the document text
    bstart: int  # byte offset of the same
    length: int  # characters
    blength: int  # bytes
    path: tuple[str, ...]
    context: str | None


def _lay_out(blocks: Sequence[Block]) -> tuple[str, bytes, list[_Placement]]:
    """The document text (blocks rendered, separated by blank lines), its UTF-8 bytes, and where
    each block sits in both."""
    placed = []
    rendered: list[str] = []
    pos = bpos = 0
    path: list[tuple[int, str]] = []
    titles: tuple[str, ...] = ()
    for block in blocks:
        if block.kind is BlockKind.HEADING:
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, block.text))
            titles = tuple(t for _, t in path)
        if rendered:
            pos, bpos = pos + 2, bpos + 2  # "\n\n"
        text = render(block)
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        placed.append(_Placement(block, pos, bpos, len(text), size, titles, block.context))
        rendered.append(text)
        pos, bpos = pos + len(text), bpos + size
    document = "\n\n".join(rendered)
    return document, document.encode("utf-8", "surrogatepass"), placed


@dataclass(slots=True)
class _Placed:
    """A chunk's units (first..last) and where its text starts (before the first unit when it
    carries an overlap)."""

    first: int
    last: int
    start: int
    prefix: str
    tokens: int = 0  # exact, once fitted


class _Packer:
    def __init__(self, doc: _Document, units: list[_Unit], settings: ChunkSettings, crumbs: dict[tuple[str, ...], str]):
        self.doc = doc
        self.units = units
        self.settings = settings
        self.crumbs = crumbs
        self.cuts = _cut_points(units, settings)

    def span(self, i: int, j: int) -> int:
        """Tokens of units i..j and the separators between them."""
        return self.doc.tokens(self.units[i].bstart, self.units[j].bend)

    def overlap_start(self, first: int, last: int) -> int | None:
        """Where the overlap copied from units[first..last] starts: whole units while they fit the
        overlap budget, else the longest tail of the last unit's words that does."""
        budget, units = self.settings.overlap_tokens, self.units
        if budget <= 0:
            return None
        if self.span(last, last) <= budget:
            k = last
            while k > first and self.span(k - 1, last) <= budget:
                k -= 1
            return units[k].start
        unit, doc = units[last], self.doc
        if not unit.prose:
            return None  # a table row, a record or a line of code is repeated whole or not at all
        # The tail of `budget` tokens starts after the token `budget` back from the unit's end; the
        # first word that starts at or after it begins the overlap.
        tail_token = bisect_right(doc.ends, unit.bend) - budget
        if tail_token <= bisect_right(doc.ends, unit.bstart):
            return None
        cut = doc.ends[tail_token - 1]
        position = cut if doc.ascii else unit.start + len(doc.data[unit.bstart : cut].decode("utf-8", "ignore"))
        gap = _WORD_GAP.search(doc.text, max(position - 1, unit.start), unit.end)
        return gap.end() if gap is not None else None

    def crumb(self, i: int) -> str:
        """What a chunk starting at unit i begins with: the heading breadcrumb (when asked for) and
        the unit's context (a table header that a chunk of rows repeats)."""
        unit = self.units[i]
        crumb = self.crumbs.get(unit.path[:-1] if unit.heading else unit.path, "")
        return f"{crumb}{unit.context}\n" if unit.context else crumb

    def pack(self) -> list[Chunk]:
        units, settings, doc = self.units, self.settings, self.doc
        placed: list[_Placed] = []
        i = 0
        while i < len(units):
            prefix = self.crumb(i)
            overlap = None
            if placed and not units[i].heading:
                overlap = self.overlap_start(placed[-1].first, placed[-1].last)
            reserve = doc.tokenizer.count(prefix) if prefix else 0
            if overlap is not None:
                reserve += doc.tokens(doc.byte_at(units, overlap), units[i].bstart)
            j = i
            while j not in self.cuts and j + 1 < len(units) and self.span(i, j + 1) <= settings.max_tokens - reserve:
                j += 1
            placed.append(self._fit(_Placed(i, j, units[i].start if overlap is None else overlap, prefix)))
            i = placed[-1].last + 1
        self._merge_tail(placed)
        return [self._chunk(p) for p in placed]

    def _fit(self, p: _Placed) -> _Placed:
        """Shrink until the exact count is within max_tokens (the span counts are estimates at the
        edges): give back units, then the overlap, then the breadcrumb."""
        while (tokens := self._tokens(p)) > self.settings.max_tokens:
            if p.last > p.first:
                p.last -= 1
            elif p.start != self.units[p.first].start:
                p.start = self.units[p.first].start
            elif p.prefix:
                p.prefix = ""
            else:  # unreachable: a unit alone is within capacity
                raise AssertionError("a single unit exceeds max_tokens")
        p.tokens = tokens
        return p

    def _tokens(self, p: _Placed) -> int:
        return self.doc.exact(p.start, self.units[p.last].end, self.units, self.settings.max_tokens, p.prefix)

    def _chunk(self, p: _Placed) -> Chunk:
        units = self.units
        pages = tuple(sorted({u.page for u in units[p.first : p.last + 1] if u.page is not None}))
        return Chunk(
            text=p.prefix + self.doc.text[p.start : units[p.last].end],
            tokens=p.tokens,
            pages=pages,
            headings=units[p.first].path,
            start=units[p.first].start,
            end=units[p.last].end,
            overlap=len(p.prefix) + units[p.first].start - p.start,
        )

    def _merge_tail(self, placed: list[_Placed]) -> None:
        """A last chunk smaller than ``min_tokens`` joins the one before it when they fit together."""
        if len(placed) < 2:
            return
        before, tail = placed[-2], placed[-1]
        if self.units[tail.first].heading or self.span(tail.first, tail.last) >= self.settings.min_tokens:
            return
        merged = _Placed(before.first, tail.last, before.start, before.prefix)
        merged.tokens = self._tokens(merged)
        if merged.tokens <= self.settings.max_tokens:
            placed[-2:] = [merged]


def _crumbs(paths: set[tuple[str, ...]], settings: ChunkSettings, tokenizer: Tokenizer) -> dict[tuple[str, ...], str]:
    """The breadcrumb for each heading path, shortened from the left to fit max_tokens / 8."""
    if not settings.breadcrumb:
        return {}
    crumbs = {}
    for path in paths:
        for k in range(len(path)):
            crumb = f"{BREADCRUMB_SEPARATOR.join(path[k:])}\n\n"
            if tokenizer.count(crumb) <= settings.max_tokens // 8:
                crumbs[path] = crumb
                break
    return crumbs


def chunk_blocks(blocks: Sequence[Block], settings: ChunkSettings, tokenizer: Tokenizer) -> tuple[str, list[Chunk]]:
    """The cleaned document text and its chunks."""
    text, data, placed = _lay_out(blocks)
    if not placed:
        return text, []
    doc = _Document(text, data, tokenizer)
    paths = {p.path for p in placed} | {p.path[:-1] for p in placed}
    crumbs = _crumbs(paths, settings, tokenizer)
    # A unit must fit a chunk with a full overlap, the longest breadcrumb and its context before it.
    reserve = max((tokenizer.count(c) for c in crumbs.values()), default=0)
    contexts = {p.context: tokenizer.count(p.context) + 1 for p in placed if p.context}
    if any(n > settings.max_tokens // 4 for n in contexts.values()):  # too long to repeat: do not
        placed = [
            replace(p, context=None) if p.context and contexts[p.context] > settings.max_tokens // 4 else p
            for p in placed
        ]
        contexts = {c: n for c, n in contexts.items() if n <= settings.max_tokens // 4}
    reserve += max(contexts.values(), default=0)
    builder = _Builder(doc, settings.max_tokens - settings.overlap_tokens - reserve - 2)
    for n, placement in enumerate(placed):
        builder.add(placement, first=n == 0)
    return text, _Packer(doc, builder.units, settings, crumbs).pack()

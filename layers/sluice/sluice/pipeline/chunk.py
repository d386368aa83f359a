"""Structure-aware chunking measured in cl100k_base tokens.

The document becomes a sequence of units: headings, paragraphs, and (only where a paragraph is too
long for a chunk) its sentences, lines, runs of whole words or, for a single run longer than a
chunk, token-sized slices. A chunk may end
- before a heading, once the section ending there holds ``min_tokens``;
- after an *anchor* unit, once the units since the previous anchor hold ``min_tokens``. Anchors are
  chosen by a hash of the unit's text, so boundaries depend on content, not on position: an edit
  moves at most the boundaries next to it, and the chunks after it come out identical (the
  stability the sinks' diffs rely on: one edited paragraph changes at most three chunks);
- when the next unit would not fit (forced).
Each chunk after the first may start with up to ``overlap_tokens`` of the previous chunk's tail
(never across a heading), so every chunk is one contiguous span of the document text, optionally
after a heading breadcrumb.

Speed: the document is encoded once, in pieces whose tokens are the whole text's (see
``_Document``). A unit's span of tokens is known from where it starts and ends in them, which sizes
units and packs chunks without counting again. A chunk's exact count (``len(encode_ordinary(text))``,
which never exceeds ``max_tokens``) is its span count corrected at the chunk's two ends, where only a
few characters are encoded again (see ``_Packer.exact``).
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from sluice.model import Block, BlockKind, Chunk
from sluice.pipeline.tokens import Tokenizer

# Group 1 of each is the separator. The sentence's full stop is matched, not looked behind for: the
# same separators, found several times faster (the regex engine skips to a candidate character).
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*(\s+)(?=\S)")
_LINE_BREAK = re.compile(r"(\n+)(?=\S)")
_WORD_GAP = re.compile(r"(\s+)(?=\S)")
_WORD = re.compile(r"\S+")
_INK_OR_LINE_END = re.compile(r"\S|[\r\n]")
# Anchors fall about every TARGET_SHARE x max_tokens tokens; without overlap, every half chunk: an
# edit then reaches no chunk through a copied tail, and fuller chunks retrieve more (docs/quality.md).
TARGET_SHARE = 0.4
TARGET_SHARE_NO_OVERLAP = 0.5
MARGIN = 2  # a chunk whose count comes this close to max_tokens is encoded whole, to be sure
BREADCRUMB_SEPARATOR = " > "
NEAR_END = 16  # bytes: a position this close to its piece's end is found among the piece's last tokens


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    max_tokens: int = 512
    # Tokens of the previous chunk repeated at the start of the next, at most max_tokens / 2.
    # Default: max_tokens / 8.
    overlap_tokens: int = -1
    # No chunk is cut off smaller than this (a short document may be); a section shorter than this
    # shares a chunk with the next, and a short tail joins the chunk before it. Default: max_tokens / 4.
    min_tokens: int = -1
    # Start each chunk with its heading path ("Guide > Install") when it does not begin with the
    # heading itself. The path is always in the chunk's metadata.
    breadcrumb: bool = False

    def __post_init__(self) -> None:
        if self.overlap_tokens == -1:
            object.__setattr__(self, "overlap_tokens", self.max_tokens // 8)
        if self.min_tokens == -1:
            object.__setattr__(self, "min_tokens", self.max_tokens // 4)
        if not 32 <= self.max_tokens <= 8192:
            raise ValueError(f"max_tokens must be between 32 and 8192, not {self.max_tokens}")
        if not 0 <= self.overlap_tokens <= self.max_tokens // 2:
            raise ValueError(f"overlap_tokens must be between 0 and max_tokens/2 ({self.max_tokens // 2})")
        if not 0 <= self.min_tokens <= self.max_tokens // 2:
            raise ValueError(f"min_tokens must be between 0 and max_tokens/2 ({self.max_tokens // 2})")


@dataclass(slots=True)
class _Unit:
    start: int  # character offsets of this unit in the document text
    end: int
    bstart: int  # the same, in bytes of the document's UTF-8 encoding
    bend: int
    first: int  # document tokens ending at or before bstart: a span's count is `last - first`
    last: int  # document tokens ending at or before bend
    piece: int  # the piece of the document's encoding that holds the unit (see _Document)
    tokens: int  # document tokens ending inside the unit (exact but for its edges)
    page: int | None
    path: tuple[str, ...]
    heading: bool
    weight: float  # the unit's text hash as a fraction in [0, 1): decides whether it is an anchor
    context: str | None = None  # repeated first in a chunk that starts here, mid-block (a table header)
    prose: bool = True  # a paragraph (or a piece of one): an overlap may start between its words


def render(block: Block) -> str:
    """A block as it appears in the cleaned document text: headings in Markdown form."""
    if block.kind is BlockKind.HEADING:
        return f"{'#' * block.level} {block.text}"
    return block.text


def _starts_piece(rendered: str) -> bool:
    """Whether a block, after the blank line before it, starts a piece of the document (see
    ``_Document``): white space other than a line end at most, then anything but white space."""
    first = _INK_OR_LINE_END.search(rendered)
    return first is not None and first.group() not in "\r\n"


@dataclass(slots=True)
class _Layout:
    """Where each block sits in the document text and in its UTF-8 bytes, its heading path and
    context; and where the document's pieces start."""

    starts: list[int]
    ends: list[int]
    bstarts: list[int]
    bends: list[int]
    paths: list[tuple[str, ...]]
    contexts: list[str | None]
    pieces: list[int]  # character offsets
    bpieces: list[int]  # byte offsets
    piece_of: list[int]  # the piece each block is in


def _lay_out(blocks: Sequence[Block]) -> tuple[str, bytes, _Layout]:
    """The document text (blocks rendered, separated by blank lines), its UTF-8 bytes, and where
    each block sits in both."""
    layout = _Layout([], [], [], [], [], [], [], [], [])
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
        text = render(block)
        if rendered:
            pos, bpos = pos + 2, bpos + 2  # "\n\n"
        if not rendered or "!" <= text[:1] <= "~" or _starts_piece(text):  # most blocks: printable ASCII
            layout.pieces.append(pos)
            layout.bpieces.append(bpos)
        layout.starts.append(pos)
        layout.bstarts.append(bpos)
        pos += len(text)
        bpos += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        layout.ends.append(pos)
        layout.bends.append(bpos)
        layout.paths.append(titles)
        layout.contexts.append(block.context)
        layout.piece_of.append(len(layout.pieces) - 1)
        rendered.append(text)
    document = "\n\n".join(rendered)
    return document, document.encode("utf-8", "surrogatepass"), layout


class _Document:
    """The document text, its UTF-8 bytes, and its tokens.

    The text is encoded in pieces, each starting at a block whose first character after the blank
    line before it (and any white space other than a line end) is not white space. cl100k_base's
    split pattern (``tokens.CL100K_PATTERN``) splits the text before such a point alone as it
    splits the whole, and the text after it too: only white space and punctuation's trailing
    ``[\\r\\n]*+`` take a newline, and in the whole text both end at the last newline before that
    character (``\\s*[\\r\\n]`` gives back the white space after it), where the text before the
    point ends (and ``\\s++$`` takes the same run); what follows is split alike, as the pattern
    looks ahead, never behind; the pattern's ``\\s`` is Unicode's White_Space, all of which Python
    counts as white space. So the pieces' tokens, one after the other, are the whole text's (tests
    check both), and each piece's count comes with no pass over its tokens. Where a piece's tokens
    end is worked out only when a position inside it is asked for (a long block cut, an overlap, a
    chunk's edge)."""

    def __init__(self, text: str, data: bytes, layout: _Layout, tokenizer: Tokenizer) -> None:
        self.text = text
        self.data = data
        self.tokenizer = tokenizer
        self.ascii = len(data) == len(text)
        self.sizes = tokenizer.token_bytes
        self.starts = layout.bpieces
        self.stops = [*layout.bpieces[1:], len(data)]
        stops = [*layout.pieces[1:], len(text)]
        self.pieces = [tokenizer.encode(text[a:b]) for a, b in zip(layout.pieces, stops, strict=True)]
        self.before = list(accumulate(map(len, self.pieces), initial=0))  # tokens before each piece
        self._ends: dict[int, tuple[int, list[int]]] = {}  # see ends()

    def rank_in(self, k: int, b: int) -> int:
        """Tokens of the document ending at or before byte b, which is in piece k."""
        if b == self.starts[k]:
            return self.before[k]
        known = self._ends.get(k)
        if known is not None and b >= known[1][0]:
            first, ends = known
            return self.before[k] + first + bisect_right(ends, b) - 1
        tokens, stop = self.pieces[k], self.stops[k]
        if stop - b <= NEAR_END:  # a block's end, before the blank line: step back from the piece's end
            i, sizes = len(tokens), self.sizes
            while stop > b:
                i -= 1
                stop -= sizes[tokens[i]]
            return self.before[k] + i
        return self.before[k] + bisect_right(self.ends(k)[1], b) - 1

    def ends(self, k: int, first: int = 0) -> tuple[int, list[int]]:
        """Where piece k's tokens end, from its token number ``first`` on: ``first`` (or a lower
        number), and a list of where that token starts, then where each token from it ends (byte
        offsets). An overlap needs only the last few tokens of a long block."""
        known = self._ends.get(k)
        if known is None or known[0] > first:
            tokens, sizes = self.pieces[k], self.sizes.__getitem__
            tail = tokens[first:] if first else tokens
            start = self.stops[k] - sum(map(sizes, tail)) if first else self.starts[k]
            known = self._ends[k] = (first, list(accumulate(map(sizes, tail), initial=start)))
        return known


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


class _Builder:
    """Turns the laid-out blocks into units, splitting the ones too long for a chunk."""

    def __init__(self, doc: _Document, blocks: Sequence[Block], layout: _Layout, capacity: int) -> None:
        self.doc = doc
        self.blocks = blocks
        self.layout = layout
        self.capacity = capacity
        self.units: list[_Unit] = []
        self.data = doc.data
        self.block_start = 0
        self.ascii = True  # the block being split is ASCII: its byte offsets follow from its character offsets
        self.piece = 0  # the piece the block being split is in
        # page, heading path, heading?, context, prose? of the block being split
        self.context: tuple[int | None, tuple[str, ...], bool, str | None, bool] = (None, (), False, None, True)

    def _rank(self, b: int) -> int:
        """``_Document.rank`` of a byte in the block being split."""
        return self.doc.rank_in(self.piece, b)

    def _bytes(self, start: int, end: int) -> int:
        if self.ascii:
            return end - start
        span = self.doc.text[start:end]
        return len(span) if span.isascii() else len(span.encode("utf-8", "surrogatepass"))

    def add(self, k: int) -> None:
        """Block number k."""
        block, layout, rank_in, piece = self.blocks[k], self.layout, self.doc.rank_in, self.layout.piece_of[k]
        start, end, bstart, bend = layout.starts[k], layout.ends[k], layout.bstarts[k], layout.bends[k]
        first = self.doc.before[piece] if bstart == self.doc.starts[piece] else rank_in(piece, bstart)
        last = rank_in(piece, bend)
        if last - first <= self.capacity:  # most blocks: one unit, which holds the block's context itself
            kind = block.kind
            weight = zlib.crc32(self.data[bstart:bend]) / 2**32
            self.units.append(
                _Unit(start, end, bstart, bend, first, last, piece, last - first, block.page, layout.paths[k],
                      kind is BlockKind.HEADING, weight, None, kind is BlockKind.PARAGRAPH)
            )  # fmt: skip
            return
        self.block_start = start
        self.context = (
            block.page,
            layout.paths[k],
            block.kind is BlockKind.HEADING,
            layout.contexts[k],
            block.kind is BlockKind.PARAGRAPH,
        )
        self.ascii = bend - bstart == end - start
        self.piece = piece
        pattern = _LINE_BREAK if block.kind is BlockKind.PREFORMATTED else _SENTENCE_END
        for s, e, bs, be in self._spans(start, end, bstart, pattern):
            first, last = rank_in(piece, bs), rank_in(piece, be)
            if last - first <= self.capacity:
                self._unit(s, e, bs, be, first, last, last - first)
            else:
                self._words(s, e, bs)

    def _spans(self, start: int, end: int, bstart: int, pattern: re.Pattern[str]) -> list[tuple[int, int, int, int]]:
        """(start, end, byte start, byte end) of the pieces of text[start:end] between the pattern's
        separators (group 1)."""
        spans = []
        pos = start
        for match in pattern.finditer(self.doc.text, start, end):
            cut = match.start(1)
            if cut > pos:
                spans.append((pos, cut))
                pos = match.end(1)
        spans.append((pos, end))
        return self._in_bytes(spans, start, bstart)

    def _word_spans(self, start: int, end: int, bstart: int) -> list[tuple[int, int, int, int]]:
        """``_spans`` between white space: the words, the first from ``start`` and the last to
        ``end`` (with any white space there)."""
        spans = [match.span() for match in _WORD.finditer(self.doc.text, start, end)] or [(start, end)]
        spans[0] = (start, spans[0][1])
        spans[-1] = (spans[-1][0], end)
        return self._in_bytes(spans, start, bstart)

    def _in_bytes(self, spans: list[tuple[int, int]], start: int, bstart: int) -> list[tuple[int, int, int, int]]:
        """Character spans from ``start`` on, with their byte offsets."""
        if self.ascii:
            shift = bstart - start
            return [(s, e, s + shift, e + shift) for s, e in spans]
        out = []
        pos, bpos = start, bstart
        for s, e in spans:
            bs = bpos + self._bytes(pos, s)
            pos, bpos = e, bs + self._bytes(s, e)
            out.append((s, e, bs, bpos))
        return out

    def _words(self, start: int, end: int, bstart: int) -> None:
        """Runs of whole words within capacity; a single word longer than that is sliced."""
        doc, capacity = self.doc, self.capacity
        words = self._word_spans(start, end, bstart)
        ends = [w[3] for w in words]
        whole, before = self._rank(ends[-1]), doc.before[self.piece]
        i = 0
        while i < len(words):
            ws, _, wbs, wbe = words[i]
            first = self._rank(wbs)
            if self._rank(wbe) - first > capacity:
                self._slice(ws, wbs, wbe)
                i += 1
                continue
            # The run takes the words after it while they fit: those ending before the token that
            # would be one too many (token number `first + capacity`) ends.
            limit = first + capacity
            j = len(words) - 1 if limit >= whole else bisect_left(ends, doc.ends(self.piece)[1][limit - before + 1]) - 1
            last = self._rank(ends[j])
            self._unit(ws, words[j][1], wbs, ends[j], first, last, last - first)
            i = j + 1

    def _slice(self, start: int, bstart: int, bend: int) -> None:
        """Cut a run with no white space at token boundaries that are also character boundaries."""
        ends = self.doc.ends(self.piece)[1]
        pos, cut_from, count = start, bstart, 0
        for k in range(bisect_right(ends, bstart), len(ends)):
            b = min(ends[k], bend)
            count += 1
            at_char = b >= len(self.data) or (self.data[b] & 0xC0) != 0x80
            # A character is at most 4 bytes, so cutting a little early always finds a boundary.
            if at_char and (count >= self.capacity - 4 or b >= bend):
                chars = b - cut_from if self.ascii else len(self.data[cut_from:b].decode("utf-8", "surrogatepass"))
                self._unit(pos, pos + chars, cut_from, b, self._rank(cut_from), self._rank(b), count)
                pos, cut_from, count = pos + chars, b, 0
            if b >= bend:
                return

    def _unit(self, start: int, end: int, bstart: int, bend: int, first: int, last: int, tokens: int) -> None:
        page, path, heading, context, prose = self.context
        weight = zlib.crc32(self.data[bstart:bend]) / 2**32
        # The block's first unit holds the context itself; later ones repeat it when they start a chunk.
        repeat = context if context and start != self.block_start else None
        self.units.append(
            _Unit(start, end, bstart, bend, first, last, self.piece, tokens, page, path, heading, weight, repeat, prose)
        )


def _cut_points(units: list[_Unit], settings: ChunkSettings) -> list[int]:
    """Indices after which a chunk may end, in order, decided by content alone: before a heading
    (once the section ending there holds ``min_tokens``), and after an anchor unit (once the units
    since the previous anchor hold ``min_tokens``). A unit is an anchor with probability
    proportional to its size (its hash against tokens/target), so anchors fall about every
    ``target`` tokens whatever the paragraph lengths. Each decision looks only at the units since
    the previous heading or anchor, which is what keeps an edit's effect on the boundaries local."""
    target = settings.max_tokens * (TARGET_SHARE if settings.overlap_tokens else TARGET_SHARE_NO_OVERLAP)
    cuts: list[int] = []
    gap = section = 0
    for i in range(len(units) - 1):
        unit, nxt = units[i], units[i + 1]
        gap += unit.tokens
        section += unit.tokens
        if unit.heading:
            continue  # a heading stays with what follows it
        if nxt.heading:
            if section >= settings.min_tokens:
                cuts.append(i)
            gap = section = 0
        elif unit.weight < unit.tokens / target:
            if gap >= settings.min_tokens:
                cuts.append(i)
            gap = 0
    return cuts


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
        # Units are in document order, so each of these is ascending: a bisection finds a unit.
        self.starts = [u.start for u in units]
        self.firsts = [u.first for u in units]
        self.lasts = [u.last for u in units]
        self.counts: dict[str, int] = {}
        self.paged = any(u.page is not None for u in units)

    def span(self, i: int, j: int) -> int:
        """Tokens of units i..j and the separators between them."""
        return self.units[j].last - self.units[i].first

    def overlap_start(self, first: int, last: int) -> tuple[int, int] | None:
        """Where the overlap copied from units[first..last] starts, and the tokens before it: whole
        units while they fit the overlap budget, else the longest tail of the last unit's words that
        does."""
        budget, units = self.settings.overlap_tokens, self.units
        if budget <= 0:
            return None
        end = units[last].last
        if end - units[last].first <= budget:
            k = max(first, bisect_left(self.firsts, end - budget))
            return units[k].start, units[k].first
        unit, doc = units[last], self.doc
        if not unit.prose:
            return None  # a table row, a record or a line of code is repeated whole or not at all
        # The tail of `budget` tokens starts after the token `budget` back from the unit's end; the
        # first word that starts at or after it begins the overlap.
        tail_token = end - budget
        if tail_token <= unit.first:
            return None
        i = tail_token - 1 - doc.before[unit.piece]  # the piece's token after which the tail starts
        first, ends = doc.ends(unit.piece, max(i - 8, 0))  # and a few before it, for the ranks near it
        cut = ends[i - first + 1]
        if unit.bend - unit.bstart == unit.end - unit.start:  # ASCII
            position = unit.start + cut - unit.bstart
        else:
            position = unit.start + len(doc.data[unit.bstart : cut].decode("utf-8", "ignore"))
        gap = _WORD_GAP.search(doc.text, max(position - 1, unit.start), unit.end)
        if gap is None:
            return None
        return gap.end(), self.rank_at(gap.end(), unit)

    def rank_at(self, position: int, unit: _Unit) -> int:
        """Tokens ending at or before a character offset, usually in ``unit`` (whose edges are known)."""
        if position == unit.start:
            return unit.first
        if position == unit.end:
            return unit.last
        if not unit.start < position < unit.end:
            unit = self.units[max(bisect_right(self.starts, position) - 1, 0)]
        # The position is in the unit (a chunk's edges and overlaps fall inside units), so in its piece.
        if self.doc.ascii or unit.bend - unit.bstart == unit.end - unit.start:
            b = unit.bstart + position - unit.start
        else:
            b = unit.bstart + len(self.doc.text[unit.start : position].encode("utf-8", "surrogatepass"))
        return self.doc.rank_in(unit.piece, b)

    def crumb(self, i: int) -> str:
        """What a chunk starting at unit i begins with: the heading breadcrumb (when asked for) and
        the unit's context (a table header that a chunk of rows repeats)."""
        unit = self.units[i]
        crumb = self.crumbs.get(unit.path[:-1] if unit.heading else unit.path, "") if self.crumbs else ""
        return f"{crumb}{unit.context}\n" if unit.context else crumb

    def count(self, text: str) -> int:
        """Tokens of a chunk's prefix or of the few characters at a chunk's edge: the same few
        strings come back (a breadcrumb, a full stop), each is counted once."""
        tokens = self.counts.get(text)
        if tokens is None:
            tokens = self.counts[text] = self.doc.tokenizer.count(text)
        return tokens

    def pack(self) -> list[Chunk]:
        units, settings = self.units, self.settings
        placed: list[_Placed] = []
        i = 0
        while i < len(units):
            prefix = self.crumb(i)
            overlap = None
            if placed and not units[i].heading:
                overlap = self.overlap_start(placed[-1].first, placed[-1].last)
            reserve = self.count(prefix) if prefix else 0
            if overlap is not None:
                reserve += units[i].first - overlap[1]
            # Units i..j: up to the first cut point, while they fit (their span grows with j).
            c = bisect_left(self.cuts, i)
            cut = self.cuts[c] if c < len(self.cuts) else len(units) - 1
            fits = bisect_right(self.lasts, units[i].first + settings.max_tokens - reserve) - 1
            j = min(cut, len(units) - 1, max(fits, i))
            placed.append(self._fit(_Placed(i, j, units[i].start if overlap is None else overlap[0], prefix)))
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
        return self.exact(p.start, self.units[p.first], self.units[p.last], p.prefix)

    def exact(self, start: int, first: _Unit, last: _Unit, prefix: str) -> int:
        """``len(encode_ordinary(prefix + text[start:end]))``, ``end`` being the end of the chunk's
        last unit, without encoding the span again.

        Tokens are counted from the document's own encoding between two points where a tokenizer
        pre-token must end whatever surrounds the span: after a newline (or at the document start)
        and at a safe word end (a letter or digit followed by anything else). Only the few
        characters before the first such point and after the last are encoded again. Near
        ``max_tokens`` a non-ASCII span is encoded whole: Python's and the tokenizer's Unicode
        tables could disagree about a new character."""
        doc, count, end = self.doc, self.count, last.end
        text, count_whole = doc.text, doc.tokenizer.count
        m = start if start == 0 or text[start - 1] == "\n" else _safe_after(text, start, end)
        n = end if _is_safe(text, end) else _safe_before(text, end, m)
        if m is None or n is None or n < m:
            return count_whole(prefix + text[start:end])
        tokens = count(prefix + text[start:m]) if prefix or m > start else 0
        tokens += self.rank_at(n, last) - self.rank_at(m, first)
        if n < end:
            tokens += count(text[n:end])
        if doc.ascii or tokens < self.settings.max_tokens - MARGIN:
            return tokens
        return count_whole(prefix + text[start:end])

    def _chunk(self, p: _Placed) -> Chunk:
        units = self.units
        pages = tuple(sorted({u.page for u in units[p.first : p.last + 1] if u.page is not None})) if self.paged else ()
        first, last = units[p.first], units[p.last]
        return Chunk(
            text=p.prefix + self.doc.text[p.start : last.end],
            tokens=p.tokens,
            pages=pages,
            headings=first.path,
            start=first.start,
            end=last.end,
            overlap=len(p.prefix) + first.start - p.start,
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


def _crumbs(paths: list[tuple[str, ...]], settings: ChunkSettings, tokenizer: Tokenizer) -> dict[tuple[str, ...], str]:
    """The breadcrumb for each heading path (the blocks' paths, and their headings' parents'),
    shortened from the left to fit max_tokens / 8."""
    if not settings.breadcrumb:
        return {}
    crumbs = {}
    for path in set(paths) | {p[:-1] for p in paths}:
        for k in range(len(path)):
            crumb = f"{BREADCRUMB_SEPARATOR.join(path[k:])}\n\n"
            if tokenizer.count(crumb) <= settings.max_tokens // 8:
                crumbs[path] = crumb
                break
    return crumbs


def chunk_blocks(blocks: Sequence[Block], settings: ChunkSettings, tokenizer: Tokenizer) -> tuple[str, list[Chunk]]:
    """The cleaned document text and its chunks."""
    text, data, layout = _lay_out(blocks)
    if not layout.starts:
        return text, []
    doc = _Document(text, data, layout, tokenizer)
    crumbs = _crumbs(layout.paths, settings, tokenizer)
    # A unit must fit a chunk with a full overlap, the longest breadcrumb and its context before it.
    reserve = max((tokenizer.count(c) for c in crumbs.values()), default=0)
    contexts = {c: tokenizer.count(c) + 1 for c in set(layout.contexts) if c}
    if any(n > settings.max_tokens // 4 for n in contexts.values()):  # too long to repeat: do not
        contexts = {c: n for c, n in contexts.items() if n <= settings.max_tokens // 4}
        layout.contexts = [None if c and c not in contexts else c for c in layout.contexts]
    reserve += max(contexts.values(), default=0)
    builder = _Builder(doc, blocks, layout, settings.max_tokens - settings.overlap_tokens - reserve - 2)
    for k in range(len(layout.starts)):
        builder.add(k)
    return text, _Packer(doc, builder.units, settings, crumbs).pack()

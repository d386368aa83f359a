"""The chunker's shortcuts change nothing: every chunk, field for field, is the one the chunker kept as
a reference (tests/support/reference_chunk.py) gives, on a generated corpus of varied documents at
the settings the benchmarks and the quality evaluation use, and on Hypothesis documents built to hit
the edges of the tokenizer's pre-tokens."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import fields, replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.errors import QuarantineError
from sluice.model import Block, BlockKind, Chunk
from sluice.pipeline import chunk
from sluice.pipeline.clean import clean_blocks
from sluice.pipeline.detect import detect
from sluice.pipeline.extract import ParseLimits, extract
from sluice.pipeline.tokens import tokenizer
from support import reference_chunk as reference
from support.varied import corpus

SETTINGS = [(512, 64), (512, 0), (300, 60), (250, 0), (250, 62), (250, 125), (100, 20), (2000, 200)]


def _first_difference(ours: tuple[str, list[Chunk]], theirs: tuple[str, list[Chunk]]) -> str | None:
    """Where two chunkings differ: the text, the number of chunks, or the first chunk and field."""
    if ours[0] != theirs[0]:
        return "document text"
    if len(ours[1]) != len(theirs[1]):
        return f"{len(ours[1])} chunks, not {len(theirs[1])}"
    for n, (a, b) in enumerate(zip(ours[1], theirs[1], strict=True)):
        for field in fields(Chunk):
            if getattr(a, field.name) != getattr(b, field.name):
                return f"chunk {n}: {field.name} {getattr(a, field.name)!r}, not {getattr(b, field.name)!r}"
    return None


def _compare(blocks: list[Block], max_tokens: int, overlap: int, breadcrumb: bool) -> str | None:
    ours = chunk.chunk_blocks(blocks, chunk.ChunkSettings(max_tokens, overlap, breadcrumb=breadcrumb), tokenizer())
    theirs = reference.chunk_blocks(
        blocks, reference.ChunkSettings(max_tokens, overlap, breadcrumb=breadcrumb), tokenizer()
    )
    return _first_difference(ours, theirs)


def _decorated(blocks: list[Block], n: int) -> list[Block]:
    """What the front end's text formats never give: pages (as a PDF's blocks have) on a third of the
    documents, and on another third a table header to repeat (as CSV records have) on each block of
    lines whose first line looks like a row."""
    if n % 3 == 1:
        return [replace(b, page=1 + k // 3) for k, b in enumerate(blocks)]
    if n % 3 == 2:
        return [
            replace(b, context=b.text.split("\n")[0])
            if b.kind is BlockKind.PREFORMATTED and "\n" in b.text and "|" in b.text.split("\n")[0]
            else b
            for b in blocks
        ]
    return blocks


@cache
def _documents(seed: int) -> list[tuple[str, list[Block]]]:
    """The varied corpus (tests/support/varied.py) extracted and cleaned, plus documents made of what
    a chunk must slice: runs without white space longer than any chunk, in ASCII, CJK and emoji."""
    docs = []
    for n, (name, data) in enumerate(corpus(seed, 120)):
        try:
            blocks, _ = clean_blocks(extract(data, detect(data, name), ParseLimits()).blocks)
        except QuarantineError:
            continue
        if blocks:
            docs.append((name, _decorated(blocks, n)))
    for run in ["y" * 20000, "日本語" * 3000, "🙂" * 5000, "ab日" * 4000, "x." * 9000]:
        docs.append((f"run {run[:3]}", [Block(BlockKind.HEADING, "Runs", level=1), Block(BlockKind.PARAGRAPH, run)]))
    return docs


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
@pytest.mark.parametrize("seed", range(2))
def test_the_varied_corpus_chunks_as_the_reference_does(seed: int, max_tokens: int, overlap: int) -> None:
    for n, (name, blocks) in enumerate(_documents(seed)):
        assert _compare(blocks, max_tokens, overlap, breadcrumb=n % 2 == 0) is None, name


def test_a_single_differing_field_of_a_single_chunk_is_a_difference() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, f"Paragraph {i}. " + "lorem ipsum dolor " * 30) for i in range(12)]
    text, chunks = reference.chunk_blocks(blocks, reference.ChunkSettings(100, 20), tokenizer())
    assert len(chunks) > 3 and _first_difference((text, chunks), (text, list(chunks))) is None
    for field in fields(Chunk):
        value = getattr(chunks[2], field.name)
        changed = (*value, 1) if isinstance(value, tuple) else value + (1 if isinstance(value, int) else "x")
        perturbed = [*chunks[:2], replace(chunks[2], **{field.name: changed}), *chunks[3:]]
        assert _first_difference((text, perturbed), (text, chunks)) == (
            f"chunk 2: {field.name} {changed!r}, not {value!r}"
        )
    assert _first_difference((text, chunks[:-1]), (text, chunks)) is not None
    assert _first_difference((text + " ", chunks), (text, chunks)) == "document text"


# -- generated documents --------------------------------------------------------------------------------------

# Where pre-tokens meet: letters and digits next to punctuation, spaces, newlines, apostrophes
# (contractions), digit runs (split by three), CJK, combining marks, emoji, odd spaces.
PIECES = [
    "a", "word", "Word", " ", "  ", "\n", "\n\n", "\t", ".", ". ", "!", "?", ",", "'s", "'ll", "'", "\"", ")",
    "1", "12345", "3.14", "é", "e\u0301", "\u0301", "日本", "東京。", "🙂", "👩\u200d💻", "—", "…", "\u00a0",
    "\u2003", "<|endoftext|>", "-", "_", "#", "|", "x" * 40, "supercalifragilistic",
]  # fmt: skip
_texts = (
    st.tuples(st.lists(st.sampled_from(PIECES), min_size=1, max_size=60), st.integers(1, 8))
    .map(lambda p: "".join(p[0] * p[1]).strip())  # repeated, so that small documents still make several chunks
    .filter(bool)
)
_long = st.tuples(st.sampled_from(["z", "日", "🙂", "ab ", "1"]), st.integers(50, 3000)).map(lambda p: p[0] * p[1])
_block = st.one_of(
    st.builds(Block, st.just(BlockKind.PARAGRAPH), _texts | _long, page=st.none() | st.integers(1, 4)),
    st.builds(Block, st.just(BlockKind.HEADING), _texts.map(lambda t: t[:60].strip() or "H"), level=st.integers(1, 4)),
    st.lists(_texts, min_size=1, max_size=30).map(lambda ls: Block(BlockKind.PREFORMATTED, "\n".join(ls))),
    st.lists(_texts, min_size=2, max_size=40).map(  # a table: its header repeats in every chunk
        lambda ls: Block(BlockKind.PREFORMATTED, "\n".join(ls), context=ls[0])
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_block, min_size=1, max_size=25),
    st.sampled_from(SETTINGS) | st.integers(32, 160).flatmap(lambda m: st.tuples(st.just(m), st.integers(0, m // 2))),
    st.booleans(),
)
def test_generated_documents_chunk_as_the_reference_does(
    blocks: list[Block], setting: tuple[int, int], breadcrumb: bool
) -> None:
    assert _compare(blocks, *setting, breadcrumb=breadcrumb) is None


# -- the shortcuts' claims ----------------------------------------------------------------------------------

# What a block may start or end with, next to the blank line between blocks: white space of every kind,
# newlines, punctuation that takes newlines into its pre-token, contractions, digits, non-ASCII.
EDGE_PIECES = [
    "a", "Word", " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u2003", "\u3000",
    "\u2028", "\u1680", "\u180e", "\u200b",
    ".", "!)", "'s", "'", "#", "|", "-", "1", "123", "é", "日", "🙂", "\ud800", "<|endoftext|>",
]  # fmt: skip
_edge_texts = st.lists(st.sampled_from(EDGE_PIECES), max_size=12).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.builds(Block, st.sampled_from(list(BlockKind)), _edge_texts, st.integers(1, 3)), min_size=1, max_size=8)
)
def test_the_pieces_tokens_are_the_whole_texts(blocks: list[Block]) -> None:
    """The document is encoded in pieces (chunk._Document): their tokens, one after the other, are the
    whole text's, where they end and how many end at or before any byte are what the whole text's say."""
    text, data, layout = chunk._lay_out(blocks)
    doc = chunk._Document(text, data, layout, tokenizer())
    assert [t for piece in doc.pieces for t in piece] == tokenizer().encode(text)
    ends = tokenizer().byte_ends(text)
    ranks = [bisect_right(ends, b) for b in range(len(data) + 1)]
    assert [doc.rank_in(bisect_right(doc.starts, b) - 1, b) for b in range(len(data) + 1)] == ranks
    assert [end for k in range(len(doc.pieces)) for end in doc.ends(k)[1][1:]] == ends
    # Where only a piece's last tokens' ends are known (an overlap's), ranks are found with them.
    tails = chunk._Document(text, data, layout, tokenizer())
    for k, piece in enumerate(tails.pieces):
        first, tail = tails.ends(k, len(piece) // 2)
        assert first <= len(piece) // 2 and tail == doc.ends(k)[1][first:]
    assert [tails.rank_in(bisect_right(tails.starts, b) - 1, b) for b in range(len(data) + 1)] == ranks


# Unicode's White_Space property (unchanged since Unicode 6.3): what the tokenizer's pattern means by \s.
WHITE_SPACE = [
    *range(0x09, 0x0E),
    0x20,
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
]


def test_what_the_tokenizer_calls_white_space_python_does_too() -> None:
    """What lets a piece start at any character Python does not call white space: the tokenizer
    does not either (chunk._Document)."""
    assert all(chr(code).isspace() for code in WHITE_SPACE)
    for space in map(chr, WHITE_SPACE):  # a block of white space, or with a line end in it, starts none
        assert not chunk._starts_piece(space) and not chunk._starts_piece(f"{space}\nx")
        assert chunk._starts_piece(f"{space}x") == (space not in "\r\n")


def test_the_varied_corpus_is_encoded_in_pieces_as_a_whole() -> None:
    for name, blocks in _documents(0):
        text, data, layout = chunk._lay_out(blocks)
        doc = chunk._Document(text, data, layout, tokenizer())
        assert [t for piece in doc.pieces for t in piece] == tokenizer().encode(text), name
        assert len(doc.pieces) > len(blocks) // 2 or len(blocks) < 4, name  # most blocks start a piece


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from([*".!?…。", *"\"'”’)]", " ", "\n", "\t", "\u00a0", "a", "B", "1"]), max_size=40))
def test_the_sentence_separators_are_the_references(text_: str) -> None:
    """The layer matches a sentence's full stop where the reference looks behind for it: the same
    separators (group 1) in a block, which starts the text or follows a newline."""
    for whole, start in [(text_, 0), (f"x.\n{text_}", 3)]:
        for end in (len(whole), len(whole) - 1):
            ours = [m.span(1) for m in chunk._SENTENCE_END.finditer(whole, start, end)]
            assert ours == [m.span(1) for m in reference._SENTENCE_END.finditer(whole, start, end)]

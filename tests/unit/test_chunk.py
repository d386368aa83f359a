"""Chunking invariants (property-tested) and stability under edits."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.model import Block, BlockKind, Chunk
from sluice.pipeline.chunk import ChunkSettings, chunk_blocks, render
from sluice.pipeline.tokens import count_tokens, encoding, tokenizer

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "which",
    "an",
    "but",
    "not",
    "have",
    "has",
    "data",
    "system",
    "chunk",
    "index",
    "query",
    "model",
    "token",
    "pipeline",
    "document",
    "sentence",
    "structure",
    "naïve",
    "café",
    "東京",
    "🙂",
    "<|endoftext|>",
    "supercalifragilisticexpialidocious",
    "3.14159",
    "x",
]


def _chunk(blocks: list[Block], s: ChunkSettings) -> tuple[str, list[Chunk]]:
    return chunk_blocks(blocks, s, tokenizer())


def _assert_invariants(text: str, chunks: list[Chunk], blocks: list[Block], s: ChunkSettings) -> None:
    enc = encoding()
    assert chunks, "a document with text has chunks"
    for chunk in chunks:
        assert len(enc.encode_ordinary(chunk.text)) == chunk.tokens <= s.max_tokens
        assert chunk.text.endswith(text[chunk.start : chunk.end])  # the body is the document's own text
        # Before the body: an optional breadcrumb and repeated table header, then the overlap, which is
        # the text just before the body.
        head = chunk.text[: len(chunk.text) - (chunk.end - chunk.start)]
        cuts = [0] + [i + 1 for i, ch in enumerate(head) if ch == "\n"]
        assert any(text[: chunk.start].endswith(head[k:]) for k in cuts)
    # In order, contiguous and complete: bodies tile the document, separated only by white space.
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start and not text[a.end : b.start].strip()
    # Nothing lost: the document text is every block, in order.
    assert text == "\n\n".join(render(b) for b in blocks)


def _blocks(draw: st.DrawFn) -> list[Block]:
    words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=120).map(" ".join)
    long_run = st.integers(1, 3000).map(lambda n: "z" * n)  # a single "word" longer than a chunk
    # Anything printable: CJK without spaces, emoji, combining marks, punctuation runs, tabs.
    wild = (
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\r"),
            min_size=1,
            max_size=400,
        )
        .filter(str.strip)
        .map(str.strip)
    )
    para = st.one_of(words, words.map(lambda t: t.replace(" the ", ". The ")), long_run, wild)
    block = st.one_of(
        para.map(lambda t: Block(BlockKind.PARAGRAPH, t)),
        st.tuples(st.integers(1, 4), words).map(lambda lt: Block(BlockKind.HEADING, lt[1][:60], level=lt[0])),
        st.lists(words, min_size=1, max_size=6).map(lambda ls: Block(BlockKind.PREFORMATTED, "\n".join(ls))),
        st.lists(words, min_size=2, max_size=60).map(  # a table: its header repeats in every chunk
            lambda ls: Block(BlockKind.PREFORMATTED, "\n".join(ls), context=ls[0])
        ),
    )
    return draw(st.lists(block, min_size=1, max_size=25))


@st.composite
def documents(draw: st.DrawFn) -> tuple[list[Block], ChunkSettings]:
    max_tokens = draw(st.integers(32, 600))
    overlap = draw(st.integers(0, max_tokens // 2))
    breadcrumb = draw(st.booleans())
    return _blocks(draw), ChunkSettings(max_tokens=max_tokens, overlap_tokens=overlap, breadcrumb=breadcrumb)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(documents())
def test_every_chunk_fits_and_the_chunks_tile_the_document(doc: tuple[list[Block], ChunkSettings]) -> None:
    blocks, s = doc
    text, chunks = _chunk(blocks, s)
    _assert_invariants(text, chunks, blocks, s)


def test_words_are_never_split_unless_a_single_run_is_longer_than_a_chunk() -> None:
    words = " ".join(random.Random(7).choice(WORDS[:40]) for _ in range(3000))
    s = ChunkSettings(max_tokens=64, overlap_tokens=8)
    text, chunks = _chunk([Block(BlockKind.PARAGRAPH, words)], s)
    for a, b in itertools.pairwise(chunks):
        assert text[a.end - 1] != " " and text[b.start - 1] == " "  # cuts fall on spaces
    _, long = _chunk([Block(BlockKind.PARAGRAPH, "y" * 5000)], s)
    assert len(long) > 1 and "".join(c.text[c.overlap :] for c in long) == "y" * 5000


def test_long_paragraphs_split_at_sentences_first() -> None:
    sentences = [f"Sentence number {i} says something short." for i in range(200)]
    text, chunks = _chunk([Block(BlockKind.PARAGRAPH, " ".join(sentences))], ChunkSettings(max_tokens=100))
    for chunk in chunks:
        assert text[chunk.start : chunk.end].endswith(".")


def test_headings_start_chunks_and_form_the_path() -> None:
    blocks = [
        Block(BlockKind.HEADING, "Guide", level=1),
        Block(BlockKind.PARAGRAPH, "intro " * 60),
        Block(BlockKind.HEADING, "Install", level=2),
        Block(BlockKind.PARAGRAPH, "install steps " * 40),
        Block(BlockKind.HEADING, "Linux", level=3),
        Block(BlockKind.PARAGRAPH, "apt get " * 60),
        Block(BlockKind.HEADING, "Usage", level=2),
        Block(BlockKind.PARAGRAPH, "use it " * 60),
    ]
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=128, overlap_tokens=16))
    starts = [(c.headings, c.text.split("\n")[0]) for c in chunks if c.text.startswith("#")]
    assert (("Guide", "Install"), "## Install") in starts
    assert (("Guide", "Install", "Linux"), "### Linux") in starts
    assert (("Guide", "Usage"), "## Usage") in starts
    assert all(c.overlap == 0 for c in chunks if c.text.startswith("#"))  # no overlap across a heading


def test_overlap_repeats_the_previous_chunks_tail() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, f"Paragraph {i} " + " ".join(["word"] * 40)) for i in range(20)]
    text, chunks = _chunk(blocks, ChunkSettings(max_tokens=120, overlap_tokens=30))
    with_overlap = [c for c in chunks if c.overlap]
    assert with_overlap
    for prev, chunk in itertools.pairwise(chunks):
        if chunk.overlap:
            repeated = chunk.text[: chunk.overlap].strip()
            assert text[prev.start : prev.end].endswith(repeated)
            assert count_tokens(repeated) <= 30


def test_small_sections_share_a_chunk() -> None:
    blocks = []
    for i in range(10):
        blocks += [Block(BlockKind.HEADING, f"H{i}", level=2), Block(BlockKind.PARAGRAPH, "tiny text")]
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=512))
    assert len(chunks) == 1


def test_pages_are_carried() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, "text " * 50, page=p) for p in (1, 1, 2, 3, 3, 3, 4)]
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=128, overlap_tokens=0))
    assert chunks[0].pages[0] == 1 and chunks[-1].pages[-1] == 4
    assert all(list(c.pages) == sorted(set(c.pages)) for c in chunks)


# -- stability ------------------------------------------------------------------------------------------


def _paragraph(rng: random.Random) -> str:
    n = rng.randint(15, 160)
    text = " ".join(rng.choice(WORDS[:40]) for _ in range(n))
    return re.sub(r"^\w", lambda m: m.group(0).upper(), text) + "."


@pytest.mark.parametrize("with_headings", [True, False])
@pytest.mark.parametrize("size", [(512, 64), (250, 0)])  # the default; the retrieval evaluation's fullest anchors
def test_changing_one_paragraph_of_a_100_chunk_document_changes_at_most_3_chunks(
    with_headings: bool, size: tuple[int, int]
) -> None:
    rng = random.Random(2026 + with_headings)
    s = ChunkSettings(max_tokens=size[0], overlap_tokens=size[1])
    blocks: list[Block] = []
    while True:
        if with_headings and len(blocks) % 10 == 0:
            blocks.append(Block(BlockKind.HEADING, f"Section {len(blocks)}", level=2))
        blocks.append(Block(BlockKind.PARAGRAPH, _paragraph(rng)))
        if len(blocks) % 20 == 0 and len(_chunk(blocks, s)[1]) >= 100:
            break
    _, original = _chunk(blocks, s)
    assert len(original) >= 100
    before = {(c.text, c.headings, c.pages) for c in original}
    worst = 0
    paragraphs = [i for i, b in enumerate(blocks) if b.kind is BlockKind.PARAGRAPH]
    for index in rng.sample(paragraphs, 60):
        edited = list(blocks)
        edited[index] = Block(BlockKind.PARAGRAPH, _paragraph(rng))
        _, chunks = _chunk(edited, s)
        changed = len({(c.text, c.headings, c.pages) for c in chunks} - before)
        worst = max(worst, changed)
    assert 1 <= worst <= 3


def test_breadcrumbs_prepend_the_heading_path() -> None:
    blocks = [
        Block(BlockKind.HEADING, "Guide", level=1),
        Block(BlockKind.HEADING, "Install", level=2),
        *[Block(BlockKind.PARAGRAPH, f"Step {i}. " + "run the installer " * 20) for i in range(8)],
    ]
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=128, overlap_tokens=0, breadcrumb=True))
    assert chunks[0].text.startswith("# Guide")  # a chunk starting at its heading needs no breadcrumb
    assert all(c.text.startswith("Guide > Install\n\nStep") for c in chunks[1:])
    assert all(c.tokens == count_tokens(c.text) <= 128 for c in chunks)


def test_a_short_tail_joins_the_chunk_before_it() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, f"Paragraph {i}. " + "lorem ipsum dolor " * 12) for i in range(12)]
    blocks.append(Block(BlockKind.PARAGRAPH, "The end."))
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=512, overlap_tokens=0))
    assert chunks[-1].text.endswith("The end.") and chunks[-1].tokens > ChunkSettings().min_tokens


def test_overlap_may_be_half_a_chunk_and_no_more() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, f"Paragraph {i}. " + "lorem ipsum dolor sit amet " * 12) for i in range(30)]
    _, chunks = _chunk(blocks, ChunkSettings(max_tokens=250, overlap_tokens=125))
    assert all(c.tokens <= 250 for c in chunks) and max(count_tokens(c.text[: c.overlap]) for c in chunks) > 62
    with pytest.raises(ValueError, match="between 0 and max_tokens/2 \\(125\\)"):
        ChunkSettings(max_tokens=250, overlap_tokens=126)

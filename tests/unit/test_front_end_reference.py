"""The front end's shortcuts change nothing: detection, extraction (plain text, Markdown, HTML) and
cleaning give exactly what the straightforward reference (tests/support/reference_front_end.py) gives,
on a generated corpus of varied documents and on strings built to hit each shortcut's edges."""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluice.errors import QuarantineError, Reason
from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline import clean
from sluice.pipeline.detect import _looks_binary, detect
from sluice.pipeline.extract import html, markdown, text
from support import reference_front_end as reference
from support.varied import corpus

EXTRACTORS: dict[Kind, tuple[Callable[[bytes], ExtractedDocument], Callable[[bytes], ExtractedDocument]]] = {
    Kind.TEXT: (text.extract_text, reference.extract_text),
    Kind.MARKDOWN: (markdown.extract_markdown, reference.extract_markdown),
    Kind.HTML: (html.extract_html, reference.extract_html),
}
BLANK = "the file is empty or holds only white space"
EDGES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(fn: Callable[..., object], *args: object) -> object:
    """What ``fn(*args)`` gives: its result, or the reason and detail it was refused with."""
    try:
        return fn(*args)
    except QuarantineError as exc:
        return (exc.reason, exc.detail)


@pytest.mark.parametrize("seed", range(3))
def test_the_varied_corpus_extracts_and_cleans_as_the_reference_does(seed: int) -> None:
    kinds = set()
    for name, data in corpus(seed, 150):
        kind = _outcome(detect, data, name)
        assert (kind == (Reason.EMPTY, BLANK)) == reference.is_blank(data), name
        if not isinstance(kind, Kind):
            continue
        kinds.add(kind)
        ours, theirs = EXTRACTORS[kind]
        extracted = _outcome(ours, data)
        assert extracted == _outcome(theirs, data), name
        if isinstance(extracted, ExtractedDocument):
            assert clean.clean_blocks(extracted.blocks) == reference.clean_blocks(extracted.blocks), name
    assert kinds == set(EXTRACTORS)


# -- detect ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b" ", b" \t\r\n\x0b\x0c" * 1000, b" " * 4096 + b"x", b" " * 5000 + b"x", b"x" + b" " * 5000, b"\x00"],
)
def test_a_file_is_blank_when_the_reference_says_so(data: bytes) -> None:
    assert (_outcome(detect, data, "a.txt") == (Reason.EMPTY, BLANK)) == reference.is_blank(data)


@given(st.binary(max_size=600))
@example(b"\x1b[31m" * 40 + b"coloured log")  # escape sequences are text
@example(b"\t\n\x0b\x0c\r " * 50 + b"\x08" * 8)
@example(bytes(range(32)) * 3)
@EDGES
def test_control_bytes_are_counted_as_the_reference_counts_them(head: bytes) -> None:
    controls = reference.control_bytes(head)
    assert _looks_binary(head) == (bool(head) and controls >= 8 and controls / len(head) > 0.02)


# -- clean ---------------------------------------------------------------------------------------------------

# What the cleaner's steps and shortcuts look at, and text around it.
CLEAN_ALPHABET = [
    *"ab Zé-\n\t.…|", "\r", "\r\n", "  ", ". . . .", "....", "-\n", "-\r\n", "-\n  x", "\x00", "\x0b", "\x0c", "\x1f", "\x7f", "\x85",
    "\u00a0", "\u2000", "\u2001", "\u2003", "\u2028", "\u3000", "\u00ad", "\u200b", "\u200d", "\u202e", "\ufeff",
    "ﬁ", "ﬀ", "e\u0301", "\u0301", "A\u030a", "日本", "Σ", "İ", "_", "3", "½", "well-known", "infor-\nmation",
    "\ud800", "\U0001f642",
]  # fmt: skip
_texts = st.lists(st.sampled_from(CLEAN_ALPHABET), max_size=40).map("".join)
_blocks = st.lists(
    st.builds(
        Block,
        st.sampled_from(list(BlockKind)),
        _texts,
        st.integers(0, 3),
        st.none() | st.integers(1, 3),
        st.none() | _texts,
    ),
    max_size=6,
)


@given(_blocks)
@EDGES
def test_cleaning_gives_what_the_reference_gives(blocks: list[Block]) -> None:
    assert clean.clean_blocks(blocks) == reference.clean_blocks(blocks)


@given(st.lists(_texts, min_size=1, max_size=4))
@EDGES
def test_cleaning_ascii_documents_gives_what_the_reference_gives(texts: list[str]) -> None:
    """Documents all ASCII (the cleaner's widest shortcut), with and without control characters."""
    blocks = [Block(BlockKind.PARAGRAPH, t.encode("ascii", "ignore").decode()) for t in texts]
    assert clean.clean_blocks(blocks) == reference.clean_blocks(blocks)


@pytest.mark.parametrize(
    "texts",
    [
        ["a well-\r\nknown fact", "well-known"],  # a break made by the CRLF step: no compound looked for
        ["a well-\x00\nknown fact", "well-known"],
        ["a well-\u2028known fact", "well-known"],
        ["a well-\nknown fact", "well-known"],
        ["a well-\nknown fact", "Well-Known"],
        ["ﬁ-\nne", "fi-ne"],
        ["x . . . . 4", "x.\u00a0.\u00a0.\u00a0.", "x .\x00. . . 4", ". .", "a . . .", "...."],
        [" lead", "trail ", "two  spaces", "tab\tx", "new\nline", "\u00a0nbsp\u2003", "\x0cform feed"],
    ],
)
def test_cleaning_where_a_shortcut_meets_a_step(texts: list[str]) -> None:
    for kind in BlockKind:
        blocks = [Block(kind, t) for t in texts]
        assert clean.clean_blocks(blocks) == reference.clean_blocks(blocks)


def test_the_cleaners_steps_leave_no_white_space_but_space_tab_and_newline() -> None:
    """What lets the cleaner collapse white space with str.split(): every character Python calls white
    space is a space, tab, newline or carriage return, translated to one, or removed as a control; and
    NFC makes no white space out of any other character."""
    handled = {" ", "\t", "\n", "\r"}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char.isspace():
            assert char in handled or char.translate(clean._LIGATURES) in handled or clean._CONTROLS.match(char), hex(
                code
            )
        elif code not in clean._LIGATURES and not 0xD800 <= code <= 0xDFFF:
            assert not any(c.isspace() for c in unicodedata.normalize("NFC", char)), hex(code)


def test_compounds_are_found_in_hyphenated_words_as_in_whole_blocks() -> None:
    blocks = [Block(BlockKind.PARAGRAPH, "a-b-c x_y-z 3-d well-known\tState-of-the-art, naïve-ÉTÉ- -x y- ½-½ ΣΑ-ΣΑ")]
    whole = {m.group(0).lower() for b in blocks for m in clean._HYPHEN_WORD.finditer(b.text)}
    assert (
        clean._compounds(blocks) == whole == {"a-b", "well-known", "state-of", "the-art", "naïve-été", "½-½", "σα-σα"}
    )


# -- plain text and Markdown ----------------------------------------------------------------------------------

LINES = [
    "", " ", "   ", "    ", "\t", "text", "Title", "- item", "* item", "1. item", "12) item", "• item", "  cont",
    "| a | b |", "   | a |", "    code", "\tcode", "# H", "#", "###### H6 ##", "####### no", "   ## H", "    # no",
    "===", "---", " - - -", "***", "___", "```", "~~~", "   ```py", "    ```", "<!-- c -->", "<!--", "-->",
    "---", "title: T", "...", "\u00a0", "a\u00a0", "\u2003x", "x  ",
]  # fmt: skip
_LINES = st.lists(st.sampled_from(LINES), max_size=30)


@given(_LINES, st.sampled_from(["\n", "\r\n", "\r"]))
@EDGES
def test_markdown_extraction_gives_what_the_reference_gives(lines: list[str], newline: str) -> None:
    data = newline.join(lines).encode()
    assert _outcome(markdown.extract_markdown, data) == _outcome(reference.extract_markdown, data)


@given(_LINES, st.sampled_from(["\n", "\r\n", "\r"]))
@EDGES
def test_plain_text_extraction_gives_what_the_reference_gives(lines: list[str], newline: str) -> None:
    data = newline.join(lines).encode()
    assert _outcome(text.extract_text, data) == _outcome(reference.extract_text, data)


@given(_LINES.filter(bool))
@EDGES
def test_a_paragraphs_block_is_the_references(lines: list[str]) -> None:
    assert text.paragraph_block(lines) == reference.paragraph_block(lines)


# -- HTML ------------------------------------------------------------------------------------------------------


def test_pythons_white_space_is_the_regex_engines() -> None:
    """What lets HTML's text be collapsed with str.split(): it and the regex's \\s know the same white space."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert char.isspace() == bool(re.fullmatch(r"\s", char)), hex(code)


@given(
    st.text(st.sampled_from([" ", "\n", "\t", "\u00a0", "\u2003", "\x1c", "\x85", "a", "é", "日", "<"]), max_size=20)
)
@EDGES
def test_collapsing_white_space_is_the_regex_substitution(text_: str) -> None:
    assert html._collapse(text_) == re.sub(r"\s+", " ", text_)


_HTML_PIECES = st.sampled_from(
    ["<p>", "</p>", "<div>", "</div>", "<pre>", "</pre>", "<table>", "<tr>", "<td>", "<th>", "</td>", "</table>",
     "<ul>", "<li>", "</li>", "<h1>", "</h1>", "<h3>", "<br>", "<br/>", '<img alt="A  b">', "<main>", "</main>",
     "<article>", '<div role="main">', "<nav>", "</nav>", "<script>x<p>y</script>", "<title> T \n i </title>",
     '<p class="cookie">', '<span hidden>', '<p style="display:none">', '<i aria-hidden="true">', "<!-- c -->",
     "<!--", "&amp;", "&nbsp;", "&#10;", " ", "  ", "\n", "\t", "\r\n", "text", "more words", "\u00a0", "\u2003"]
)  # fmt: skip


@given(st.lists(_HTML_PIECES, max_size=40))
@EDGES
def test_html_extraction_gives_what_the_reference_gives(pieces: list[str]) -> None:
    data = "".join(pieces).encode()
    assert _outcome(html.extract_html, data) == _outcome(reference.extract_html, data)

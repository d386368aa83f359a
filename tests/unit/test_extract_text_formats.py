"""Markdown, HTML and plain text extraction: structure kept, noise dropped, hostile shapes cheap."""

from __future__ import annotations

from sluice.model import BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract import ParseLimits
from sluice.pipeline.extract.html import extract_html
from sluice.pipeline.extract.markdown import extract_markdown
from sluice.pipeline.extract.text import extract_text
from sluice.pipeline.sandbox import Sandbox, SandboxLimits

# A hostile shape is cheap when it parses within a CPU budget (seconds) far below what a parser quadratic
# in it would need (minutes). The sandbox enforces the budget (its worker is stopped at the limit:
# timeout_cpu), so it holds however busy the machine is; the sandbox's wall clock only guards a hang.


def _cheaply(data: bytes, kind: Kind, cpu_seconds: int) -> ExtractedDocument:
    """The extraction, in a worker that may spend only ``cpu_seconds`` on it (QuarantineError otherwise)."""
    box = Sandbox(SandboxLimits(cpu_seconds=cpu_seconds, wall_seconds=300))
    try:
        return box(data, kind, ParseLimits())
    finally:
        box.close()


def _kinds(doc):  # type: ignore[no-untyped-def]
    return [(b.kind.value, b.level, b.text) for b in doc.blocks]


# -- Markdown -----------------------------------------------------------------------------------------


def test_markdown_headings_paragraphs_lists_tables_and_code() -> None:
    md = b"""---
title: "Front matter title"
---

# Guide

Some prose that is
wrapped over lines.

Setext heading
--------------

- first item
  continued here
- second item

| a | b |
|---|---|
| 1 | 2 |

```python
# not a heading
x = 1
```
<!-- hidden reviewer note -->
## Closing ##
"""
    doc = extract_markdown(md)
    assert doc.title == "Front matter title"
    assert _kinds(doc) == [
        ("heading", 1, "Guide"),
        ("paragraph", 0, "Some prose that is\nwrapped over lines."),
        ("heading", 2, "Setext heading"),
        ("preformatted", 0, "- first item continued here\n- second item"),
        ("preformatted", 0, "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("preformatted", 0, "# not a heading\nx = 1"),
        ("heading", 2, "Closing"),
    ]
    assert "hidden reviewer note" not in " ".join(b.text for b in doc.blocks)


def test_markdown_title_falls_back_to_the_first_h1() -> None:
    assert extract_markdown(b"intro\n\n# Real title\n\ntext").title == "Real title"


def test_markdown_hostile_nesting_is_linear_text() -> None:
    data = b"[" * 100_000 + b"x" + b"]" * 100_000 + b"\n\n" + b">" * 100_000 + b" deep"
    doc = _cheaply(data, Kind.MARKDOWN, cpu_seconds=2)
    assert "deep" in doc.blocks[-1].text  # treated as text, not silently dropped


def test_markdown_unterminated_comment_costs_one_pass() -> None:
    doc = _cheaply(b"visible\n\n<!--" + b"a" * 5_000_000, Kind.MARKDOWN, cpu_seconds=2)
    assert [b.text for b in doc.blocks] == ["visible"]


# -- HTML ---------------------------------------------------------------------------------------------


PAGE = b"""<!doctype html><html><head><title>The  Page</title>
<style>p { color: red }</style><script>var secret = "script text";</script></head>
<body>
<div class="cookie-banner">Accept cookies?</div>
<nav><a href="/">Home</a></nav>
<main>
<h1>Main heading</h1>
<p>First <b>bold</b> paragraph<br>with a line break.</p>
<!-- a comment -->
<div hidden>hidden div</div>
<p style="display: none">invisible</p>
<h2>Table</h2>
<table><tr><th>Name</th><th>Size</th></tr><tr><td>A</td><td>1 &amp; 2</td></tr></table>
<ul><li>one</li><li>two</li></ul>
<pre>code
  indented</pre>
</main>
<footer>Footer text</footer>
</body></html>"""


def test_html_main_content_only() -> None:
    doc = extract_html(PAGE)
    assert doc.title == "The Page"
    assert _kinds(doc) == [
        ("heading", 1, "Main heading"),
        ("paragraph", 0, "First bold paragraph\nwith a line break."),
        ("heading", 2, "Table"),
        ("preformatted", 0, "Name | Size\nA | 1 & 2"),
        ("paragraph", 0, "- one"),
        ("paragraph", 0, "- two"),
        ("preformatted", 0, "code\n  indented"),
    ]
    text = " ".join(b.text for b in doc.blocks)
    for noise in ("script text", "Accept cookies", "Home", "a comment", "hidden div", "invisible", "Footer", "color"):
        assert noise not in text


def test_html_without_main_uses_the_body_minus_chrome() -> None:
    doc = extract_html(b"<html><body><nav>menu</nav><h2>Hi</h2><p>text</p><aside>ad</aside></body></html>")
    assert _kinds(doc) == [("heading", 2, "Hi"), ("paragraph", 0, "text")]
    assert doc.title is None


def test_html_declared_charset() -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><p>Grüße “quoted”</p></body></html>'
    assert extract_html(page.encode("cp1252")).blocks[0].text == "Grüße “quoted”"


def test_html_deep_nesting_and_unmatched_end_tags_stay_fast() -> None:
    data = b"<div>" * 100_000 + b"deep" + b"</span>" * 100_000 + b"</div>" * 100_000
    doc = _cheaply(data, Kind.HTML, cpu_seconds=10)
    assert doc.blocks[0].text == "deep"


def test_html_unterminated_comment_does_not_leak_into_text() -> None:
    doc = extract_html(b"<html><body><p>shown</p><!--" + b"a" * 1_000_000)
    assert "aaaa" not in " ".join(b.text for b in doc.blocks)


# -- plain text ---------------------------------------------------------------------------------------


def test_text_paragraphs_title_and_lists() -> None:
    doc = extract_text(b"Release notes\n\nFirst paragraph\nwrapped.\n\n1. one\n2. two\n   continued\n")
    assert doc.title == "Release notes"
    assert _kinds(doc) == [
        ("heading", 1, "Release notes"),
        ("paragraph", 0, "First paragraph\nwrapped."),
        ("preformatted", 0, "1. one\n2. two continued"),
    ]


def test_text_first_sentence_is_not_a_title() -> None:
    doc = extract_text(b"This is a sentence.\n\nAnother one.")
    assert doc.title is None and doc.blocks[0].kind is BlockKind.PARAGRAPH


def test_text_encoding_notes() -> None:
    doc = extract_text("é\n".encode() + "é\n".encode("cp1252"))
    assert doc.notes == {"encoding": "utf-8+cp1252", "encoding_repaired": "true"}


def test_rows_of_cells_separated_by_bars_keep_their_lines_though_they_do_not_start_with_one() -> None:
    data = (
        b"Long-term debt consisted of the following:\n\n"
        b"($ in millions) | december 31 2017 | december 31 2016\n"
        b"senior notes due 2021 5.000% | 2014 | 600\n"
        b"total long-term debt | 1279 | 1278\n\n"
        b"A sentence that mentions a | b once\nis prose, unwrapped.\n"
    )
    blocks = extract_text(data).blocks
    table = blocks[1]
    assert table.kind is BlockKind.PREFORMATTED and table.text.count("\n") == 2
    assert blocks[2].kind is BlockKind.PARAGRAPH

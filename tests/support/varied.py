"""A varied, generated corpus for the front end: plain text, Markdown and HTML files built from a seed,
full of what the cleaner and the extractors treat specially (Unicode of every width, combining marks,
ligatures, odd spaces, C0 and C1 controls, format characters, CRLF and lone CR, BOMs, UTF-16,
Windows-1252 lines, dot leaders, hyphenated line ends, lists, tables, code, long lines, comments,
hidden and noisy HTML). The same seed always gives the same files."""

from __future__ import annotations

import codecs
import html
import random

WORDS = [
    "the", "data", "report", "information", "well-known", "naïve", "café", "Straße", "ﬁle", "ﬂow", "œuvre",
    "日本語", "テキスト", "中文", "한국어", "Ελληνικά", "ΣΟΦΙΑ", "русский", "עברית", "العربية", "हिन्दी", "क्\u200dष",
    "emoji🙂", "👩\u200d💻", "e\u0301te\u0301", "A\u030a", "x²", "½", "Ⅻ", "ﬀ", "ǅ", "İstanbul", "ß", "Ⅸ",
    "co-operate", "state-of-the-art", "e-mail", "X-ray", "3-d", "a_b", "I'm", "they'll", "1,234.56", "v2.0",
    "<|endoftext|>", "https://example.com/a?b=c&d=e", "user@example.com", "C++", "α-β", "ÀÉÎ-õü",
]  # fmt: skip
ODD = [
    "\u00a0", "\u2002", "\u2003", "\u2000", "\u2001", "\u3000", "\u1680", "\u202f", "\u205f", "\u2028", "\u2029",
    "\x0b", "\x0c", "\t", "  ", "   ", "\x00", "\x01", "\x07", "\x1b", "\x1c", "\x1f", "\x7f", "\x85", "\x9f",
    "\u00ad", "\u200b", "\u200c", "\u200d", "\u200e", "\u202e", "\u2066", "\u2069", "\ufeff", "\u061c", "\U000e0041",
    "\U0001d173", "\ud800", "\r", "\r\n", "\n", " . . . . ", "....", " ..... ", ".\t.\t.\t.", ". .", "-\n", "-\r\n",
    "—", "…", "\u0301", "\u0338", "\ufffd", "\uffff", "&amp;", "&lt;", "<!--", "-->", "|", "#", "*", "`", "~",
]  # fmt: skip


INDENTS = ["    ", "\t", "     "]
BLANKS = ["", "", " ", "\t"]


def _word(rng: random.Random) -> str:
    return (
        rng.choice(WORDS)
        if rng.random() < 0.35
        else "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 11)))
    )


def _sentence(rng: random.Random, odd: float) -> str:
    parts = []
    for _ in range(rng.randint(3, 18)):
        parts.append(_word(rng))
        parts.append(rng.choice(ODD) if rng.random() < odd else rng.choice([" ", " ", " ", "\n", ", "]))
    return "".join(parts).rstrip() + rng.choice([".", "!", "?", ":", "", " . . . . . 12"])


def _paragraph(rng: random.Random, odd: float) -> str:
    shape = rng.random()
    if shape < 0.1:
        return "\n".join(
            f"{rng.choice(['-', '*', '+', '•', '1.', '2)', '10.'])} {_sentence(rng, odd)}"
            for _ in range(rng.randint(1, 5))
        )
    if shape < 0.17:
        return "\n".join(rng.choice(INDENTS) + _sentence(rng, odd) for _ in range(rng.randint(2, 5)))
    if shape < 0.22:
        return "\n".join("| " + " | ".join(_word(rng) for _ in range(3)) + " |" for _ in range(rng.randint(2, 5)))
    if shape < 0.24:  # cells separated by " | ", the rows not starting with one; sometimes a prose line among them
        rows = [" | ".join(_word(rng) for _ in range(3)) for _ in range(rng.randint(1, 4))]
        return "\n".join(rows + ([_sentence(rng, odd)] if rng.random() < 0.3 else []))
    if shape < 0.26:
        return "".join(rng.choice("abcdefghij日本") for _ in range(rng.randint(3000, 9000)))  # a long line
    if shape < 0.28:
        return rng.choice(["", " ", "\t", "\u00a0", "\u200b", "\x00"]) * rng.randint(1, 3)
    if shape < 0.31:
        return f"{_word(rng)} infor-\nmation and {_word(rng)}-\n  {_word(rng)} well-\nknown"
    return " ".join(_sentence(rng, odd) for _ in range(rng.randint(1, 6)))


def _text(rng: random.Random, odd: float) -> str:
    paras = [_paragraph(rng, odd) for _ in range(rng.randint(1, 25))]
    if rng.random() < 0.5:
        paras.insert(0, " ".join(_word(rng) for _ in range(rng.randint(1, 6))))  # a title line
    return rng.choice(["\n\n", "\n\n", "\n \n", "\r\n\r\n", "\n\t\n\n"]).join(paras)


def _markdown(rng: random.Random, odd: float) -> str:
    lines: list[str] = []
    if rng.random() < 0.2:
        lines += ["---", f"title: {_word(rng)} {_word(rng)}", "---", ""]
    for _ in range(rng.randint(1, 20)):
        shape = rng.random()
        if shape < 0.15:
            lines.append(
                f"{' ' * rng.randint(0, 4)}{'#' * rng.randint(1, 7)}{rng.choice([' ', '', '  '])}{_sentence(rng, odd)}{rng.choice(['', ' ##', ' #'])}"
            )
        elif shape < 0.22:
            lines += [_sentence(rng, odd), rng.choice(["===", "---", "  ----  ", "=", "-=-"])]
        elif shape < 0.32:
            fence = rng.choice(["```", "~~~", "````", "  ```"])
            lines += [fence + rng.choice(["", "python"]), *(_sentence(rng, odd) for _ in range(rng.randint(0, 4)))]
            if rng.random() < 0.9:
                lines.append(fence.strip())
        elif shape < 0.37:
            lines.append(rng.choice(["***", "- - -", "___", "   * * *", "-- --"]))
        elif shape < 0.42:
            lines.append(f"<!-- {_sentence(rng, odd)} -->{_word(rng)}" if rng.random() < 0.8 else "<!-- unterminated")
        else:
            lines += _paragraph(rng, odd).split("\n")
        lines.append(rng.choice(BLANKS))
    return rng.choice(["\n", "\n", "\r\n", "\r"]).join(lines)


def _html(rng: random.Random, odd: float) -> str:
    def inline() -> str:
        out = []
        for _ in range(rng.randint(1, 8)):
            s = html.escape(_sentence(rng, odd), quote=False) if rng.random() < 0.8 else _sentence(rng, odd)
            tag = rng.choice(["", "", "b", "code", "a", "span", "em", "br", "img"])
            if tag == "br":
                out.append(f"{s}<br>")
            elif tag == "img":
                out.append(f'{s}<img src="x.png" alt="{html.escape(_word(rng))}">')
            elif tag:
                out.append(f'<{tag} class="{rng.choice(["x", "sr-only", "note"])}">{s}</{tag}>')
            else:
                out.append(s)
        return rng.choice(["", "\n", " "]).join(out)

    body = []
    for _ in range(rng.randint(1, 25)):
        shape = rng.random()
        if shape < 0.12:
            level = rng.randint(1, 6)
            body.append(f"<h{level}>{inline()}</h{level}>")
        elif shape < 0.2:
            body.append(
                "<ul>"
                + "".join(f"<li>{inline()}" + rng.choice(["</li>", ""]) for _ in range(rng.randint(1, 4)))
                + "</ul>"
            )
        elif shape < 0.27:
            rows = "".join(
                "<tr>" + "".join(f"<{rng.choice(['td', 'th'])}>{inline()}" for _ in range(3)) + "</tr>"
                for _ in range(rng.randint(1, 4))
            )
            body.append(f"<table>{rows}</table>")
        elif shape < 0.33:
            body.append(f"<pre>{html.escape(_paragraph(rng, odd))}\n  indented</pre>")
        elif shape < 0.4:
            body.append(rng.choice([
                f"<script>var s = '{_word(rng)}';</script>", "<style>p {color: red}</style>",
                f'<div class="cookie-consent">{inline()}</div>', f'<div hidden>{inline()}</div>',
                f'<div style="display: none">{inline()}</div>', f'<p aria-hidden="true">{inline()}</p>',
                f'<div role="navigation">{inline()}</div>', f"<nav>{inline()}</nav>", f"<!-- {inline()} -->",
                f"<![CDATA[{_word(rng)}]]>", "<?php echo 1; ?>", f"<footer>{inline()}</footer>",
            ]))  # fmt: skip
        elif shape < 0.45:
            body.append(f"<div><div><section><p>{inline()}<p>{inline()}</section></div>")
        else:
            body.append(f"<p id=\"p{rng.randint(0, 99)}\" data-x='{_word(rng)}'>{inline()}</p>")
    main = rng.choice(["main", "article", "div", "main"])
    title = html.escape(_sentence(rng, odd)) if rng.random() < 0.7 else ""
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="{rng.choice(["utf-8", "UTF-8", "windows-1252"])}">'
        f"<title>{title}</title></head>\n<body>\n<nav>menu</nav>\n<{main}>\n" + "\n".join(body) + f"\n</{main}>\n"
    )
    return page + rng.choice(["</body></html>\n", "", "<!-- left open", "</div></span></body>"])


def _encode(rng: random.Random, text: str) -> bytes:
    how = rng.random()
    if how < 0.08:
        return codecs.BOM_UTF8 + text.encode("utf-8", "surrogatepass")
    if how < 0.13:
        return text.encode("utf-16", "surrogatepass")
    if how < 0.16:
        return text.encode(rng.choice(["utf-16-le", "utf-16-be"]), "surrogatepass")
    if how < 0.24:  # some lines in Windows-1252
        return b"".join(
            line.encode("cp1252", "replace") if rng.random() < 0.3 else line.encode("utf-8", "surrogatepass")
            for line in text.splitlines(keepends=True)
        )
    return text.encode("utf-8", "surrogatepass")


def corpus(seed: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` files (name, bytes) of plain text, Markdown and HTML in turn; about a fifth of them
    with many special characters, the rest with a few, and one in 25 replaced by what detection
    refuses or looks at twice."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        odd = rng.choice([0.0, 0.02, 0.02, 0.05, 0.3])
        kind = i % 3
        if kind == 0:
            name, text = f"doc{i}.{rng.choice(['txt', 'log', 'rst'])}", _text(rng, odd)
        elif kind == 1:
            name, text = f"doc{i}.md", _markdown(rng, odd)
        else:
            name, text = f"doc{i}.{rng.choice(['html', 'htm'])}", _html(rng, odd)
        data = _encode(rng, text)
        if rng.random() < 0.04:  # what detection looks at: blank files, control bytes, magic numbers
            data = rng.choice([
                b"", b" \t\r\n" * rng.randint(1, 2000), b"\x0b\x0c", bytes(rng.randrange(32) for _ in range(5000)),
                bytes(rng.randrange(256) for _ in range(3000)), b"\n" * 5000 + b"\x00\x01" * 30, b"%PDF-1.4\n",
                b"PK\x03\x04" + data, b"\x1b[31m" * 20 + data, data[:4000] + b"\x02" * 100, b"   {\"a\": 1}",
            ])  # fmt: skip
        out.append((name, data))
    return out

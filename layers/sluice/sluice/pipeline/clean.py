"""Cleaning: what every extractor's text goes through before it is chunked.

Unicode NFC, ligatures unfolded, control and invisible format characters removed (bidi overrides and
zero-width characters hide text from reviewers), words hyphenated across line ends joined, prose
unwrapped, white space collapsed, dot leaders shortened.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sluice.model import Block, BlockKind, CleaningStats

_LIGATURES = str.maketrans(
    {
        "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st",
        "\u2028": "\n", "\u2029": "\n", "\u3000": " ", "\x0b": " ", "\x0c": " ",
        **{chr(c): " " for c in (0x00A0, 0x1680, 0x202F, 0x205F, *range(0x2000, 0x200B))},
    }
)  # fmt: skip
_HYPHENATED = re.compile(r"([^\W\d_]+)-\n[ \t]*([a-zà-ÿ][^\W\d_]*)")
_HYPHEN_WORD = re.compile(r"\b[^\W\d_]+-[^\W\d_]+\b")
_SPACES = re.compile(r"[ \t\f\v]+")
_DOT_LEADER = re.compile(r"(?:[ \t]?\.){4,}")
# C0 and C1 control characters, but tab, newline and carriage return (normalised separately).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Unicode format characters (category Cf, up to Unicode 15.1; a test checks this against the running
# Python), except the zero-width (non-)joiners U+200C and U+200D, which shape Indic, Arabic and
# emoji text.
FORMAT_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200B), (0x200E, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_FORMATS = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in FORMAT_RANGES) + "]")


def clean_blocks(blocks: Iterable[Block]) -> tuple[list[Block], CleaningStats]:
    blocks = list(blocks)
    # Hyphenated compounds written elsewhere in the document keep their hyphen when rejoined.
    compounds = (
        {m.group(0).lower() for b in blocks for m in _HYPHEN_WORD.finditer(b.text)}
        if any("-\n" in b.text for b in blocks)
        else set()
    )
    controls = formats = dehyphenated = empty = 0

    def join(match: re.Match[str]) -> str:
        nonlocal dehyphenated
        head, tail = match.group(1), match.group(2)
        dehyphenated += 1
        if f"{head}-{tail}".lower() in compounds:
            return f"{head}-{tail}"
        return head + tail

    def clean(text: str, kind: BlockKind) -> str:
        nonlocal controls, formats
        text = unicodedata.normalize("NFC", text.translate(_LIGATURES))
        text, c = _CONTROLS.subn("", text)
        text, f = _FORMATS.subn("", text)
        controls, formats = controls + c, formats + f
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _HYPHENATED.sub(join, text) if "-\n" in text else text
        text = _DOT_LEADER.sub(" … ", text)
        if kind is BlockKind.PREFORMATTED:
            lines = [line.rstrip() for line in text.split("\n")]
            while lines and not lines[0].strip():
                lines.pop(0)
            return "\n".join(lines).rstrip()
        return _SPACES.sub(" ", text.replace("\n", " ")).strip()

    cleaned: list[Block] = []
    for block in blocks:
        text = clean(block.text, block.kind)
        if not text:
            empty += 1
            continue
        context = clean(block.context, block.kind) if block.context else None
        if context and not text.startswith(context + "\n"):
            context = None  # the block no longer starts with it: nothing to repeat
        cleaned.append(Block(block.kind, text, block.level, block.page, context))
    return cleaned, CleaningStats(controls, formats, dehyphenated, empty)

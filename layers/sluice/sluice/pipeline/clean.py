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
from sluice.pipeline.extract.decode import unix_newlines

_LIGATURES = str.maketrans(
    {
        "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st",
        "\u2028": "\n", "\u2029": "\n", "\u3000": " ", "\x0b": " ", "\x0c": " ",
        **{chr(c): " " for c in (0x00A0, 0x1680, 0x202F, 0x205F, *range(0x2000, 0x200B))},
    }
)  # fmt: skip
# A word broken at a line end. A match starts where its letters do (the look-behind only spares the
# engine trying every later letter of each word, which cannot start a match the first one did not).
_HYPHENATED = re.compile(r"(?<![^\W\d_])([^\W\d_]+)-\n[ \t]*([a-zà-ÿ][^\W\d_]*)")
_HYPHEN_WORD = re.compile(r"\b[^\W\d_]+-[^\W\d_]+\b")
_DOT_LEADER = re.compile(r"(?:[ \t]?\.){4,}")
# C0 and C1 control characters, but tab, newline and carriage return (normalised separately).
_CONTROL_CLASS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROLS = re.compile(f"[{_CONTROL_CLASS}]")
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
_FORMAT_CLASS = "".join(f"{chr(a)}-{chr(b)}" for a, b in FORMAT_RANGES)
_FORMATS = re.compile(f"[{_FORMAT_CLASS}]")


# The characters the ligature table changes, found by one scan (translating is slower than looking).
_TRANSLATED = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_LIGATURES)) + "]")
_REMOVED = re.compile(f"[{_CONTROL_CLASS}{_FORMAT_CLASS}]")
# The ASCII characters that translation or removal changes: C0 controls but tab, newline and carriage
# return, and DEL. ASCII text without them is unchanged by the ligature table, NFC and removal.
_ASCII_CHANGED = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_DOTS = re.compile(r"\.[ \t]?\.")  # in every dot leader


def _ascii_unchanged(text: str) -> bool:
    """No C0 control (but tab, newline, carriage return) or DEL in ``text``'s ASCII characters."""
    data = text.encode("utf-8", "surrogatepass")  # an ASCII byte in UTF-8 is an ASCII character
    return len(data.translate(None, _ASCII_CHANGED)) == len(data)


def _compounds(blocks: list[Block]) -> set[str]:
    """The hyphenated words of the blocks, lower-cased: the matches of _HYPHEN_WORD in each block,
    looked for only in its words that hold a hyphen. A match holds no white space, and white space is
    no word character to the regex's word boundaries: a word alone has the matches it has in place."""
    return {
        m.group(0).lower()
        for b in blocks
        if "-" in b.text
        for word in b.text.split()
        if "-" in word
        for m in _HYPHEN_WORD.finditer(word)
    }


def clean_blocks(blocks: Iterable[Block]) -> tuple[list[Block], CleaningStats]:
    """Each step is skipped where a cheap look shows it would change nothing (ASCII text needs no
    Unicode step, text without two close dots has no dot leader), so its result is exactly the
    step's; one look at the whole document answers for all its ASCII blocks."""
    blocks = list(blocks)
    hyphen_breaks = any("-\n" in b.text for b in blocks)
    compounds: set[str] | None = None  # found on the first rejoined word
    controls = formats = dehyphenated = empty = 0
    plain = _ascii_unchanged("".join(b.text + (b.context or "") for b in blocks))

    def join(match: re.Match[str]) -> str:
        nonlocal dehyphenated, compounds
        if compounds is None:
            # Hyphenated compounds written elsewhere in the document keep their hyphen when rejoined.
            compounds = _compounds(blocks) if hyphen_breaks else set()
        head, tail = match.group(1), match.group(2)
        dehyphenated += 1
        if f"{head}-{tail}".lower() in compounds:
            return f"{head}-{tail}"
        return head + tail

    def clean(text: str, kind: BlockKind) -> str:
        nonlocal controls, formats
        if not (text.isascii() and (plain or _ascii_unchanged(text))):
            if _TRANSLATED.search(text):
                text = text.translate(_LIGATURES)
            text = unicodedata.normalize("NFC", text)
            if _REMOVED.search(text):
                text, c = _CONTROLS.subn("", text)
                text, f = _FORMATS.subn("", text)
                controls, formats = controls + c, formats + f
        text = unix_newlines(text)
        if "-\n" in text:
            text = _HYPHENATED.sub(join, text)
        if _DOTS.search(text):
            text = _DOT_LEADER.sub(" … ", text)
        if kind is BlockKind.PREFORMATTED:
            lines = [line.rstrip() for line in text.split("\n")]
            while lines and not lines[0].strip():
                lines.pop(0)
            return "\n".join(lines).rstrip()
        # White space collapsed and stripped, re.sub(r"[ \t\f\v]+", " ", text.replace("\n", " ")).strip():
        # the steps above leave no white space but space, tab and newline (a test checks that against
        # this Python's Unicode tables), so that is " ".join(text.split()), and text without a tab, a
        # newline, two spaces in a row or a space at either end is collapsed already.
        if "\n" in text or "\t" in text or "  " in text or text[:1] == " " or text[-1:] == " ":
            return " ".join(text.split())
        return text

    cleaned: list[Block] = []
    for block in blocks:
        text = clean(block.text, block.kind)
        if not text:
            empty += 1
            continue
        context = clean(block.context, block.kind) if block.context else None
        if context and not text.startswith(context + "\n"):
            context = None  # the block no longer starts with it: nothing to repeat
        if text == block.text and context == block.context:
            cleaned.append(block)  # unchanged (blocks are immutable)
        else:
            cleaned.append(Block(block.kind, text, block.level, block.page, context))
    return cleaned, CleaningStats(controls, formats, dehyphenated, empty)

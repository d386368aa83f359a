"""Cleaning: normalisation, invisible characters, hyphenation, white space."""

from __future__ import annotations

from sluice.model import Block, BlockKind
from sluice.pipeline.clean import clean_blocks


def _one(text: str, kind: BlockKind = BlockKind.PARAGRAPH) -> str:
    blocks, _ = clean_blocks([Block(kind, text)])
    return blocks[0].text


def test_unicode_is_nfc_and_ligatures_are_unfolded() -> None:
    assert _one("cafe\u0301 ﬁle ﬂow") == "café file flow"


def test_control_and_invisible_format_characters_are_removed_and_counted() -> None:
    blocks, stats = clean_blocks(
        [Block(BlockKind.PARAGRAPH, "ap\u200bprove\u202e gnp.exe\u2066x\u2069 \x07bell\ufeff")]
    )
    assert blocks[0].text == "approve gnp.exex bell"
    assert stats.format_chars == 5 and stats.control_chars == 1


def test_joiners_that_shape_scripts_are_kept() -> None:
    assert _one("क्\u200dष") == "क्\u200dष"


def test_prose_is_unwrapped_and_white_space_collapsed() -> None:
    assert _one("one  two\nthree\t four\u00a0five\u2003six") == "one two three four five six"


def test_words_hyphenated_across_line_ends_are_joined() -> None:
    blocks, stats = clean_blocks([Block(BlockKind.PARAGRAPH, "the infor-\nmation and the well-\nknown one")])
    assert blocks[0].text == "the information and the wellknown one"
    assert stats.dehyphenated == 2


def test_a_compound_written_with_its_hyphen_elsewhere_keeps_it() -> None:
    blocks, _ = clean_blocks(
        [Block(BlockKind.PARAGRAPH, "a well-known fact"), Block(BlockKind.PARAGRAPH, "is well-\nknown to all")]
    )
    assert blocks[1].text == "is well-known to all"


def test_preformatted_keeps_its_lines() -> None:
    assert _one("\n\ndef f():\n    return 1   \n", BlockKind.PREFORMATTED) == "def f():\n    return 1"


def test_dot_leaders_are_shortened() -> None:
    assert _one("1 Introduction . . . . . . . . . 4") == "1 Introduction … 4"


def test_empty_blocks_are_dropped_and_counted() -> None:
    blocks, stats = clean_blocks([Block(BlockKind.PARAGRAPH, " \u200b \n"), Block(BlockKind.PARAGRAPH, "kept")])
    assert [b.text for b in blocks] == ["kept"] and stats.empty_blocks == 1


def test_the_format_character_table_covers_this_pythons_unicode() -> None:
    import sys
    import unicodedata

    from sluice.pipeline.clean import FORMAT_RANGES

    covered = {c for a, b in FORMAT_RANGES for c in range(a, b + 1)}
    cf = {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"}
    assert cf - covered == {0x200C, 0x200D}  # the joiners are kept on purpose

"""Training data: any documented shape in, the family's format out, every problem named by its line."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.finetune.dataset import (
    CorpusDocument,
    DatasetInvalidError,
    Example,
    TextRecord,
    corpus_records,
    matches_filter,
    pack_text,
    parse_jsonl,
    prepare,
    render,
)
from sluice.finetune.families import CONTINUED_PRE_TRAINING, FAMILIES, FINE_TUNING, Family, family_for
from sluice.finetune.settings import validate_input
from sluice.pipeline.tokens import count_tokens

TITAN = "amazon.titan-text-express-v1:0:8k"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA = "amazon.nova-micro-v1:0:128k"
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"


def family(base_model: str) -> Family:
    found = family_for(base_model)
    assert found is not None
    return found


def settings_for(base_model: str, **fields: Any) -> dict[str, Any]:
    raw = {"base_model": base_model, "custom_model_name": "bot", "dataset": {"source": "corpus"}, **fields}
    return validate_input(raw, "run-1")


def jsonl(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def fine_tuning(data: bytes, origin: str = "") -> tuple[list[Any], list[str]]:
    return parse_jsonl(data, customization_type=FINE_TUNING, origin=origin)


def examples(n: int, words: int = 3) -> list[Example]:
    return [
        Example(f"line {i + 1}", None, (("user", f"question {i} " + "q " * words), ("assistant", f"answer {i}")))
        for i in range(n)
    ]


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


# Reading ----------------------------------------------------------------------------------------

CLAUDE_RECORD = {
    "system": "You answer billing questions.",
    "messages": [
        {"role": "user", "content": "Why was I charged twice?"},
        {"role": "assistant", "content": "One charge is a pending authorisation."},
        {"role": "user", "content": "When does it drop off?"},
        {"role": "assistant", "content": "Within five working days."},
    ],
}
CONVERSE_RECORD = {
    "schemaVersion": "bedrock-conversation-2024",
    "system": [{"text": "You answer billing questions."}],
    "messages": [
        {"role": "user", "content": [{"text": "Why was I charged twice?"}]},
        {"role": "assistant", "content": [{"text": "One charge is a pending authorisation."}]},
    ],
}


@pytest.mark.parametrize(
    ("record", "system", "turns"),
    [
        ({"prompt": "p", "completion": "c"}, None, (("user", "p"), ("assistant", "c"))),
        ({"question": "q", "answer": "a"}, None, (("user", "q"), ("assistant", "a"))),
        ({"input": "i", "output": "o"}, None, (("user", "i"), ("assistant", "o"))),
        (
            CONVERSE_RECORD,
            "You answer billing questions.",
            (("user", "Why was I charged twice?"), ("assistant", "One charge is a pending authorisation.")),
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                          {"role": "assistant", "content": "c"}]},
            None,
            (("user", "a\nb"), ("assistant", "c")),
        ),
    ],
)  # fmt: skip
def test_every_documented_fine_tuning_shape_is_read(record: dict[str, Any], system: str | None, turns: tuple) -> None:
    records, problems = fine_tuning(jsonl(record))
    assert problems == []
    assert records == [Example("line 1", system, turns)]


def test_a_claude_multi_turn_record_keeps_its_turns() -> None:
    (record,), _ = fine_tuning(jsonl(CLAUDE_RECORD))
    assert record.system == "You answer billing questions."
    assert [role for role, _ in record.turns] == ["user", "assistant", "user", "assistant"]


def test_blank_lines_are_skipped_and_line_numbers_still_count_them() -> None:
    data = b'\n{"prompt": "p", "completion": "c"}\n\r\n{"nope": 1}\n'
    records, problems = fine_tuning(data)
    assert [r.source for r in records] == ["line 2"]
    assert problems[0].startswith("line 4: ")


def test_a_utf8_bom_is_ignored() -> None:
    records, problems = fine_tuning(b"\xef\xbb\xbf" + jsonl({"prompt": "p", "completion": "c"}))
    assert len(records) == 1 and problems == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"\xff\xfe{}", "line 2: not valid UTF-8 (byte 1 of the line)"),
        (b'{"prompt": "p", "completion": }', "line 2: not valid JSON (Expecting value at column 31)"),
        (b'["p", "c"]', "line 2: a record is a JSON object, not a list"),
        (b'"just text"', "line 2: a record is a JSON object, not a string"),
        (
            b'{"prompt": "p", "complete": "c"}',
            "line 2: not a recognised record (keys: prompt, complete); expected prompt/completion, "
            "question/answer, input/output or messages",
        ),
        (b'{"prompt": "p", "completion": "  "}', "line 2: completion is empty"),
        (b'{"prompt": 3, "completion": "c"}', "line 2: prompt must be a string, not a number"),
        (b'{"question": "", "answer": "a"}', "line 2: question is empty"),
        (
            b'{"input": "only text"}',
            'line 2: a record with "input" alone is for continued pre-training; fine-tuning needs '
            "prompt/completion, question/answer, input/output or messages",
        ),
        (
            b'{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}',
            "line 2: the conversation must start with a user message",
        ),
        (
            b'{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},'
            b' {"role": "assistant", "content": "c"}]}',
            "line 2: messages 1 and 2 are both user; user and assistant must alternate",
        ),
        (
            b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},'
            b' {"role": "user", "content": "c"}]}',
            "line 2: the conversation must end with an assistant message",
        ),
        (
            b'{"messages": [{"role": "system", "content": "a"}, {"role": "assistant", "content": "b"}]}',
            "line 2: message 1 has role 'system'; the roles are user and assistant",
        ),
        (
            b'{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}]}',
            "line 2: message 1 (user) is empty",
        ),
        (
            b'{"messages": [{"role": "user", "content": [{"image": {"format": "png"}}]},'
            b' {"role": "assistant", "content": "b"}]}',
            "line 2: message 1 (user) holds image content; only text is supported",
        ),
        (b'{"messages": []}', "line 2: messages must be a non-empty list"),
        (
            b'{"schemaVersion": "v1", "messages": [{"role": "user", "content": "a"}]}',
            "line 2: schemaVersion must be 'bedrock-conversation-2024', not 'v1'",
        ),
        (
            b'{"system": 7, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
            'line 2: system must be a string or a list of {"text": ...} blocks',
        ),
        (b'{"prompt": "\\ud800", "completion": "c"}', "line 2: prompt holds an unpaired surrogate ('\\ud800')"),
    ],
)
def test_each_bad_record_is_named_by_its_line(line: bytes, problem: str) -> None:
    good = b'{"prompt": "p", "completion": "c"}'
    records, problems = fine_tuning(good + b"\n" + line + b"\n" + good)
    assert problems == [problem]
    assert [r.source for r in records] == ["line 1", "line 3"]


def test_problems_carry_the_origin_of_the_file() -> None:
    _, problems = fine_tuning(b'{"prompt": "p", "completion": "c"}\nnot json\n', origin="s3://raw/faq.jsonl")
    assert problems == ["s3://raw/faq.jsonl line 2: not valid JSON (Expecting value at column 1)"]


def test_more_than_100000_lines_are_refused_and_reading_stops() -> None:
    data = b"\n" * 100_000 + b'{"prompt": "p", "completion": "c"}\n' + b"bad\n"
    records, problems = fine_tuning(data)
    assert records == []
    assert problems == ["line 100001: the file has more than 100,000 lines, the most one dataset may hold"]


def test_a_line_over_one_megabyte_is_refused_and_reading_stops() -> None:
    huge = json.dumps({"prompt": "p" * 1_000_001, "completion": "c"}).encode()
    records, problems = fine_tuning(jsonl({"prompt": "p", "completion": "c"}, huge, {"prompt": "x", "completion": "y"}))
    assert [r.source for r in records] == ["line 1"]
    assert problems == [f"line 2: the line is {len(huge):,} bytes; the limit is 1,000,000"]


def test_continued_pretraining_reads_text_records_and_joins_conversations() -> None:
    data = jsonl(
        {"input": "Chapter one."}, {"text": "Chapter two."}, {"prompt": "Q?", "completion": "A."}, CLAUDE_RECORD
    )
    records, problems = parse_jsonl(data, customization_type=CONTINUED_PRE_TRAINING)
    assert problems == []
    assert [r.text for r in records] == [
        "Chapter one.",
        "Chapter two.",
        "Q?\n\nA.",
        "You answer billing questions.\n\nWhy was I charged twice?\n\nOne charge is a pending authorisation.\n\n"
        "When does it drop off?\n\nWithin five working days.",
    ]
    _, problems = parse_jsonl(jsonl({"body": "x"}, {"text": ""}), customization_type=CONTINUED_PRE_TRAINING)
    assert problems == [
        "line 1: not a recognised record (keys: body); expected input or text (or prompt/completion, "
        "question/answer, input/output or messages)",
        "line 2: text is empty",
    ]


# Writing ----------------------------------------------------------------------------------------


def test_each_format_renders_as_bedrock_documents_it() -> None:
    record = Example("line 1", "Be brief.", (("user", "Hi"), ("assistant", "Hello")))
    assert render(record, family(TITAN), FINE_TUNING) == {"prompt": "Be brief.\n\nHi", "completion": "Hello"}
    assert render(record, family(CLAUDE), FINE_TUNING) == {
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    }
    assert render(record, family(NOVA), FINE_TUNING) == {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello"}]},
        ],
    }
    assert render(record, family(TITAN), CONTINUED_PRE_TRAINING) == {"input": "Be brief.\n\nHi\n\nHello"}
    assert render(TextRecord("part 1", "Plain."), family(TITAN), CONTINUED_PRE_TRAINING) == {"input": "Plain."}


def test_no_system_means_no_system_field() -> None:
    record = Example("line 1", None, (("user", "Hi"), ("assistant", "Hello")))
    assert "system" not in render(record, family(CLAUDE), FINE_TUNING)
    assert "system" not in render(record, family(NOVA), FINE_TUNING)
    assert render(record, family(LLAMA), FINE_TUNING) == {"prompt": "Hi", "completion": "Hello"}


def test_a_multi_turn_conversation_is_flattened_into_the_prompt() -> None:
    (record,), _ = fine_tuning(jsonl(CLAUDE_RECORD))
    assert render(record, family(TITAN), FINE_TUNING) == {
        "prompt": "You answer billing questions.\n\nUser: Why was I charged twice?\n"
        "Assistant: One charge is a pending authorisation.\nUser: When does it drop off?",
        "completion": "Within five working days.",
    }


def test_plain_text_cannot_be_rendered_for_fine_tuning() -> None:
    with pytest.raises(TypeError, match="part 1: plain text cannot fine-tune"):
        render(TextRecord("part 1", "x"), family(TITAN), FINE_TUNING)


def convert(record: Example, base_model: str) -> Example:
    """Render for the model's family, then read the line back."""
    line = json.dumps(render(record, family(base_model), FINE_TUNING)).encode()
    (back,), problems = fine_tuning(line)
    assert problems == []
    return back


def test_claude_to_converse_to_prompt_completion_round_trips() -> None:
    (claude,), _ = fine_tuning(jsonl(CLAUDE_RECORD))
    converse = convert(claude, NOVA)
    assert (converse.system, converse.turns) == (claude.system, claude.turns)
    assert convert(converse, CLAUDE) == converse  # and back to Claude, unchanged
    flat = convert(converse, TITAN)
    assert flat.system is None and flat.turns[-1] == claude.turns[-1]
    assert flat.turns[0][1].startswith("You answer billing questions.\n\nUser: Why was I charged twice?")
    assert convert(flat, TITAN) == flat  # a single turn survives prompt/completion unchanged


@pytest.mark.parametrize("target", [TITAN, CLAUDE, NOVA])
def test_a_single_turn_round_trips_through_every_format(target: str) -> None:
    record = Example("line 1", None, (("user", "Ping?"), ("assistant", "Pong.")))
    assert convert(record, target) == record


# Preparing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.key)
def test_each_family_accepts_good_records_in_its_own_format(fam: Family) -> None:
    base_model = fam.prefixes[0] + "-v1:0"
    settings = settings_for(base_model, validation_split=0.2)
    n = max(fam.min_records, 10)
    prepared = prepare(examples(n), settings, fam)
    written = lines(prepared.train) + lines(prepared.validation)
    assert len(written) == n
    expected_keys = {
        "prompt_completion": {"prompt", "completion"},
        "claude_messages": {"messages"},
        "converse": {"schemaVersion", "messages"},
    }[fam.fine_tuning_format]
    assert all(set(line) == expected_keys for line in written)
    assert prepared.report["format"] == fam.fine_tuning_format


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.key)
def test_each_family_refuses_a_record_over_its_token_limit(fam: Family) -> None:
    settings = settings_for(fam.prefixes[0] + "-v1:0")
    long = Example("line 7", None, (("user", "word " * fam.max_record_tokens), ("assistant", "ok")))
    tokens = count_tokens("word " * fam.max_record_tokens) + count_tokens("ok")
    with pytest.raises(DatasetInvalidError) as caught:
        prepare([*examples(max(fam.min_records, 2)), long], settings, fam)
    assert f"line 7: {tokens:,} tokens; {fam.label} takes at most {fam.max_record_tokens:,} per record" in (
        caught.value.problems
    )


def test_the_report_counts_records_and_tokens_and_estimates_the_cost() -> None:
    settings = settings_for(TITAN, hyperparameters={"epochCount": 3}, validation_split=0.2)
    records = examples(50)
    prepared = prepare(records, settings, family(TITAN))
    report = prepared.report
    train, validation = lines(prepared.train), lines(prepared.validation)
    assert (report["records"], report["train_records"], report["validation_records"]) == (
        50,
        len(train),
        len(validation),
    )
    assert report["train_tokens"] == sum(count_tokens(r["prompt"]) + count_tokens(r["completion"]) for r in train)
    assert report["train_tokens"] + report["validation_tokens"] == sum(
        count_tokens(r.turns[0][1]) + count_tokens(r.turns[1][1]) for r in records
    )
    assert report["epochs"] == 3 and report["estimated_training_tokens"] == report["train_tokens"] * 3
    assert report["tokenizer"] == "cl100k_base estimate"
    assert report["max_record_tokens_seen"] == max(
        count_tokens(r.turns[0][1]) + count_tokens(r.turns[1][1]) for r in records
    )
    assert report["warnings"] == []


def test_the_split_is_the_same_whatever_the_order_of_the_records() -> None:
    settings = settings_for(TITAN, validation_split=0.3)
    records = examples(200)
    first = prepare(records, settings, family(TITAN))
    again = prepare(records, settings, family(TITAN))
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    reordered = prepare(shuffled, settings, family(TITAN))
    assert (first.train, first.validation) == (again.train, again.validation)
    assert set(first.validation.splitlines()) == set(reordered.validation.splitlines())
    assert 30 <= first.report["validation_records"] <= 90  # about 30% of 200


def test_split_zero_writes_no_validation() -> None:
    prepared = prepare(examples(40), settings_for(TITAN, validation_split=0), family(TITAN))
    assert prepared.validation == b"" and prepared.report["validation_records"] == 0
    assert len(lines(prepared.train)) == 40


def test_a_tiny_split_still_validates_one_record_and_training_keeps_one() -> None:
    prepared = prepare(examples(2), settings_for(TITAN, validation_split=0.000001), family(TITAN))
    assert (prepared.report["train_records"], prepared.report["validation_records"]) == (1, 1)
    single = prepare(examples(1), settings_for(TITAN, validation_split=0.5), family(TITAN))
    assert (single.report["train_records"], single.report["validation_records"]) == (1, 0)


def test_too_few_records_for_the_family() -> None:
    with pytest.raises(DatasetInvalidError) as caught:
        prepare(examples(31), settings_for(CLAUDE), family(CLAUDE))
    assert caught.value.problems == ["the dataset has 31 records; Anthropic Claude 3 Haiku needs at least 32"]
    with pytest.raises(DatasetInvalidError, match=r"99 records; Meta Llama 3\.1 needs at least 100"):
        prepare(examples(99), settings_for(LLAMA), family(LLAMA))


def test_too_many_records_for_the_family() -> None:
    nova_pro = "amazon.nova-pro-v1:0:300k"
    with pytest.raises(DatasetInvalidError) as caught:
        prepare(examples(10_001, words=0), settings_for(nova_pro, validation_split=0), family(nova_pro))
    assert caught.value.problems == [
        "the dataset has 10,001 records; Amazon Nova Pro takes at most 10,000 (training and validation together)"
    ]


def test_too_many_validation_records_for_the_family() -> None:
    cohere = "cohere.command-text-v14:7:4k"
    with pytest.raises(DatasetInvalidError) as caught:
        prepare(examples(2_400, words=0), settings_for(cohere, validation_split=0.5), family(cohere))
    (problem,) = caught.value.problems
    assert problem.startswith("the validation split holds 1,")
    assert problem.endswith("Cohere Command takes at most 1,000: lower validation_split")


def test_no_records_at_all() -> None:
    with pytest.raises(DatasetInvalidError, match="the dataset has no records"):
        prepare([], settings_for(TITAN), family(TITAN))


def test_plain_text_in_a_fine_tuning_dataset_is_a_problem() -> None:
    with pytest.raises(DatasetInvalidError, match="part 1: plain text cannot fine-tune Amazon Titan"):
        prepare([TextRecord("part 1", "x"), *examples(3)], settings_for(TITAN), family(TITAN))


def test_parse_problems_are_reported_with_the_rest_first_20_shown() -> None:
    data = jsonl(*[{"prompt": "p", "completion": "c"}] * 5, *[b"oops"] * 25)
    records, problems = fine_tuning(data)
    with pytest.raises(DatasetInvalidError) as caught:
        prepare(records, settings_for(CLAUDE), family(CLAUDE), problems)
    error = caught.value
    assert len(error.problems) == 26  # 25 bad lines and too few records
    text = str(error)
    assert text.startswith("The dataset has 26 problems (the first 20 shown):\n- line 6: not valid JSON")
    assert text.count("\n- ") == 20 and "line 25:" in text and "line 26:" not in text


def test_a_short_problem_list_is_shown_whole() -> None:
    assert str(DatasetInvalidError(["line 3: x"])) == "The dataset has 1 problem:\n- line 3: x"


def test_reserved_keywords_only_warn_for_the_converse_format() -> None:
    record = Example("line 1", None, (("user", "What does [EOS] mean?"), ("assistant", "User: it ends a turn.")))
    prepared = prepare([record, *examples(3)], settings_for(NOVA), family(NOVA))
    assert prepared.report["warnings"] == [
        "line 1: holds 'User:', a keyword the converse format (Nova) reserves",
        "line 1: holds '[EOS]', a keyword the converse format (Nova) reserves",
    ]
    assert prepare([record, *examples(3)], settings_for(TITAN), family(TITAN)).report["warnings"] == []


def test_warnings_are_capped_at_20_and_counted() -> None:
    records = [Example(f"line {i}", None, (("user", "<image> here"), ("assistant", "ok"))) for i in range(30)]
    report = prepare(records, settings_for(NOVA), family(NOVA)).report
    assert len(report["warnings"]) == 20 and report["warnings_total"] == 30


def test_continued_pretraining_writes_input_records() -> None:
    settings = settings_for(TITAN, customization_type="continued-pre-training", validation_split=0)
    prepared = prepare([TextRecord("part 1", "Some text."), TextRecord("part 2", "More.")], settings, family(TITAN))
    assert lines(prepared.train) == [{"input": "Some text."}, {"input": "More."}]
    assert prepared.report["format"] == "continued_pretraining"


def test_non_ascii_text_is_written_as_utf8() -> None:
    record = Example("line 1", None, (("user", "Grüße?"), ("assistant", "日本語")))
    prepared = prepare([record], settings_for(TITAN, validation_split=0), family(TITAN))
    assert prepared.train == '{"prompt": "Grüße?", "completion": "日本語"}\n'.encode()


# The corpus -------------------------------------------------------------------------------------


def doc(source: str, kind: str, text: str = "", raw: bytes | None = None, **attributes: Any) -> CorpusDocument:
    return CorpusDocument(source, kind, text, raw, attributes)


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_pretraining_packs_whole_paragraphs_within_the_budget_and_loses_no_text() -> None:
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "délta", "ε", "東京", "🙂", "x1", "(note)"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 120))) for _ in range(60)]
    paragraphs.insert(20, " ".join(rng.choice(words) for _ in range(1500)))  # longer than any record
    text = "\n\n".join(paragraphs)
    records, summary = corpus_records(
        [doc("s3://raw/guide.md", "markdown", text)], customization_type=CONTINUED_PRE_TRAINING, max_record_tokens=400
    )
    budget = int(400 * 0.9)
    assert all(count_tokens(r.text) <= budget for r in records)
    assert squeeze("".join(r.text for r in records)) == squeeze(text)
    assert all(r.text in text for r in records)
    short = [p for i, p in enumerate(paragraphs) if i != 20]
    assert all(any(p in r.text for r in records) for p in short)  # a paragraph that fits is never cut
    assert [r.source for r in records[:2]] == ["s3://raw/guide.md part 1", "s3://raw/guide.md part 2"]
    assert summary == {"documents": 1, "skipped": [], "skipped_total": 0, "records": len(records)}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab é日🙂\n.-")), min_size=1, max_size=200), min_size=1, max_size=12
    ),
    st.integers(min_value=8, max_value=60),
)
def test_packing_never_exceeds_the_budget_nor_drops_text(parts: list[str], budget: int) -> None:
    text = "\n\n".join(parts)
    pieces = pack_text(text, budget)
    assert all(count_tokens(p) <= budget for p in pieces)
    assert squeeze("".join(pieces)) == squeeze(text)


def test_a_budget_smaller_than_a_character_still_cuts_between_characters() -> None:
    text = "🙂🙂日本語🙂"
    pieces = pack_text(text, 1)
    assert "".join(pieces) == text and len(pieces) > 1


def test_pretraining_skips_empty_documents() -> None:
    records, summary = corpus_records(
        [doc("s3://raw/empty.txt", "text", " \n\n "), doc("s3://raw/a.txt", "text", "Hello.")],
        customization_type=CONTINUED_PRE_TRAINING,
        max_record_tokens=4096,
    )
    assert records == [TextRecord("s3://raw/a.txt part 1", "Hello.")]
    assert summary["skipped"] == [{"source": "s3://raw/empty.txt", "reason": "no text"}]


def test_fine_tuning_takes_pairs_from_jsonl_json_and_csv_documents_only() -> None:
    faq = jsonl(
        {"question": "How do I reset my password?", "answer": "Use the link on the sign-in page."},
        {"prompt": "Opening hours?", "completion": "9 to 5."},
        {"note": "not a pair"},
        CLAUDE_RECORD,
    )
    tickets = (
        b"id,Question,Answer,system\n"
        b'1,"Printer offline, again?",Restart the spooler.,You are IT support.\n'
        b"2,VPN drops,Update the client.,\n"
        b"3,,No question here,\n"
        b'4,"Multi\nline?",Yes.,\n'
    )
    documents = [
        doc("s3://raw/faq.jsonl", "jsonl", raw=faq),
        doc("s3://raw/tickets.csv", "csv", raw=tickets),
        doc("s3://raw/pairs.json", "json", raw=json.dumps([{"input": "a", "output": "b"}, {"x": 1}]).encode()),
        doc("s3://raw/guide.md", "markdown", "# Guide"),
        doc("s3://raw/events.jsonl", "jsonl", raw=jsonl({"event": "login"}, {"event": "logout"})),
        doc("s3://raw/prices.csv", "csv", raw=b"sku,price\n1,2\n"),
        doc("s3://raw/lost.jsonl", "jsonl", raw=None),
    ]
    records, summary = corpus_records(documents, customization_type=FINE_TUNING, max_record_tokens=4096)
    assert [r.source for r in records] == [
        "s3://raw/faq.jsonl line 1",
        "s3://raw/faq.jsonl line 2",
        "s3://raw/faq.jsonl line 4",
        "s3://raw/tickets.csv row 2",
        "s3://raw/tickets.csv row 3",
        "s3://raw/tickets.csv row 5",
        "s3://raw/pairs.json item 1",
    ]
    by_source = {r.source: r for r in records}
    assert by_source["s3://raw/tickets.csv row 2"] == Example(
        "s3://raw/tickets.csv row 2",
        "You are IT support.",
        (("user", "Printer offline, again?"), ("assistant", "Restart the spooler.")),
    )
    assert by_source["s3://raw/tickets.csv row 5"].turns[0] == ("user", "Multi\nline?")
    assert summary["documents"] == 3 and summary["records"] == 7
    assert summary["skipped"] == [
        {
            "source": "s3://raw/faq.jsonl line 3",
            "reason": "not a recognised record (keys: note); expected prompt/completion, question/answer, "
            "input/output or messages",
        },
        {"source": "s3://raw/tickets.csv row 4", "reason": "question is empty"},
        {
            "source": "s3://raw/pairs.json item 2",
            "reason": "not a recognised record (keys: x); expected prompt/completion, question/answer, "
            "input/output or messages",
        },
        {"source": "s3://raw/guide.md", "reason": "a markdown document holds no prompt/completion pairs"},
        {
            "source": "s3://raw/events.jsonl",
            "reason": "no prompt/completion pairs (s3://raw/events.jsonl line 1: not a recognised record "
            "(keys: event); expected prompt/completion, question/answer, input/output or messages)",
        },
        {
            "source": "s3://raw/prices.csv",
            "reason": "the header has no prompt/completion, question/answer or input/output columns",
        },
        {"source": "s3://raw/lost.jsonl", "reason": "the document's original bytes were not read"},
    ]


def test_a_tab_separated_file_and_a_json_file_holding_json_lines() -> None:
    documents = [
        doc("s3://raw/qa.tsv", "csv", raw=b"input\toutput\nHello\tHi there\n"),
        doc(
            "s3://raw/qa.json",
            "json",
            raw=jsonl({"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}),
        ),
    ]
    records, _ = corpus_records(documents, customization_type=FINE_TUNING, max_record_tokens=4096)
    assert [(r.source, r.turns[0][1]) for r in records] == [
        ("s3://raw/qa.tsv row 2", "Hello"),
        ("s3://raw/qa.json line 1", "p1"),
        ("s3://raw/qa.json line 2", "p2"),
    ]


def test_corpus_records_feed_prepare() -> None:
    raw = jsonl(*[{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(40)])
    records, _ = corpus_records(
        [doc("s3://raw/faq.jsonl", "jsonl", raw=raw)], customization_type=FINE_TUNING, max_record_tokens=32_000
    )
    prepared = prepare(records, settings_for(CLAUDE), family(CLAUDE))
    assert prepared.report["records"] == 40
    assert lines(prepared.train)[0]["messages"][0]["role"] == "user"


def test_the_skipped_list_is_capped_at_50() -> None:
    documents = [doc(f"s3://raw/{i}.pdf", "pdf", "text") for i in range(60)]
    _, summary = corpus_records(documents, customization_type=FINE_TUNING, max_record_tokens=4096)
    assert len(summary["skipped"]) == 50 and summary["skipped_total"] == 60 and summary["documents"] == 0


def test_the_corpus_filter_selects_by_kind_and_attributes() -> None:
    faq = doc("s3://raw/faq.jsonl", "jsonl", team="support", year=2024.0, tags=["billing", "faq"])
    corpus_filter = {"kinds": ["jsonl", "csv"], "attributes": {"team": "support", "year": 2024.0}}
    assert matches_filter(faq, corpus_filter)
    assert matches_filter(faq, {"kinds": [], "attributes": {"tags": "billing"}})
    assert not matches_filter(faq, {"kinds": ["pdf"], "attributes": {}})
    assert not matches_filter(faq, {"kinds": [], "attributes": {"team": "sales"}})
    assert not matches_filter(doc("s3://raw/x.jsonl", "jsonl"), {"kinds": [], "attributes": {"team": "support"}})

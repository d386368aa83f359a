"""The batch inference job's input file, made from a user's prompts file."""

from __future__ import annotations

import json

import pytest

from sluice.finetune import batch
from sluice.finetune.batch import batch_input
from sluice.finetune.dataset import DatasetInvalidError


def test_every_bad_line_is_counted_though_only_the_first_are_shown() -> None:
    data = b"\n".join([b"not json"] * 25 + [json.dumps({"prompt": "Fine"}).encode()])
    prepared = batch_input(data, "s3://b/prompts.jsonl")
    assert prepared.records == 1 and len(prepared.problems) == 25
    message = str(DatasetInvalidError(prepared.problems))
    assert message.startswith("The dataset has 25 problems (the first 20 shown):")


def test_too_many_prompts_is_named_first_whatever_else_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "MAX_RECORDS", 2)
    data = b"\n".join([json.dumps({"prompt": f"p{i}"}).encode() for i in range(3)] + [b"{"] * 30)
    problems = batch_input(data, "prompts.jsonl").problems
    assert len(problems) == 31 and problems[0] == "prompts.jsonl holds 3 prompts; a batch inference job takes at most 2"
    assert "holds 3 prompts" in str(DatasetInvalidError(problems))

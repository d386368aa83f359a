"""PickBest: each trial's losses (the job record, else the metrics files the job wrote), the winner,
and what happens to the losers' custom models."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.finetune.workflow import CustomizationJobFailed, FineTuneSteps, JobStillRunning
from support.fakes import FakeBucketWriter, FakeObjectReader, FakeRegistry

BUCKET = "processed"


class Bucket(FakeBucketWriter):
    """The processed bucket, written and read through the same objects (as S3 is)."""

    def __init__(self, reader: FakeObjectReader) -> None:
        super().__init__(BUCKET)
        self.reader = reader

    def put(self, key: str, body: bytes, content_type: str) -> None:
        super().put(key, body, content_type)
        self.reader.put(BUCKET, key, body)


def _steps(deleted: list[str], refuse: str = "") -> FineTuneSteps:
    reader = FakeObjectReader()

    def delete(arn: str) -> None:
        if arn == refuse:
            raise RuntimeError("AccessDeniedException: not tagged by this stack")
        deleted.append(arn)

    return FineTuneSteps(
        documents=FakeRegistry(),
        reader=reader,
        writer=Bucket(reader),
        processed_bucket=BUCKET,
        readable_buckets=frozenset({BUCKET}),
        delete_model=delete,
    )


def _state(outcomes: list[dict[str, Any]], keep: str = "best") -> dict[str, Any]:
    trials = [o["trial"] for o in outcomes]
    jobs = [
        {
            "trial": t,
            "output_uri": f"s3://{BUCKET}/finetune/output/{t['job_name']}/",
            "validation_uri": f"s3://{BUCKET}/finetune/datasets/run-1/validation.jsonl",
            "max_checks": 1000,
        }
        for t in trials
    ]
    return {
        "settings": {"keep": keep, "max_parallel": 2, "trials": trials},
        "dataset": {"report": {"train_tokens": 100}},
        "jobs": jobs,
        "trials": outcomes,
    }


def _trial(n: int, status: str = "Completed", **check: Any) -> dict[str, Any]:
    trial = {"trial": f"t{n}", "hyperparameters": {"epochCount": str(n)}, "varied": {"epochCount": str(n)}}
    trial |= {"epochs": n, "job_name": f"run-1-t{n}", "custom_model_name": f"m-t{n}"}
    arn = f"arn:aws:bedrock:us-east-1:1:model-customization-job/run-1-t{n}"
    record = {"Status": status, "OutputModelArn": f"arn:aws:bedrock:us-east-1:1:custom-model/m-t{n}", **check}
    return {"trial": trial, "status": status, "job_arn": arn, "check": record}


def _losses(training: float, validation: float) -> dict[str, Any]:
    return {"TrainingMetrics": {"TrainingLoss": training}, "ValidationMetrics": [{"ValidationLoss": validation}]}


def test_the_lowest_validation_loss_wins_and_the_losers_are_deleted() -> None:
    deleted: list[str] = []
    state = _steps(deleted).run(
        "pick-best",
        _state([_trial(1, **_losses(0.9, 1.1)), _trial(2, **_losses(0.5, 0.7)), _trial(3, **_losses(0.2, 0.9))]),
        "run-1",
    )
    search = state["search"]
    assert search["best"] == "t2" and search["chosen_by"] == "validation_loss"
    assert state["check"]["OutputModelArn"].endswith("/m-t2") and state["job"]["JobArn"].endswith("/run-1-t2")
    assert deleted == ["arn:aws:bedrock:us-east-1:1:custom-model/m-t1", "arn:aws:bedrock:us-east-1:1:custom-model/m-t3"]
    assert [t["estimated_training_tokens"] for t in search["trials"]] == [100, 200, 300]
    assert "trials" not in state and "jobs" not in state  # the Map's raw results do not travel on


def test_losses_missing_from_the_job_record_are_read_from_its_metrics_files() -> None:
    steps = _steps([])
    prefix = "finetune/output/run-1-t1/model-customization-job-abc/"
    steps.writer.put(f"{prefix}training_artifacts/step_wise_training_metrics.csv",
                     b"step_number,epoch_number,training_loss\n1,1,0.9\n2,1,0.4\n", "text/csv")  # fmt: skip
    steps.writer.put(f"{prefix}validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv",
                     b"step_number,validation_loss\n2,0.55\n", "text/csv")  # fmt: skip
    state = steps.run("pick-best", _state([_trial(1)]), "run-1")
    (trial,) = state["search"]["trials"]
    assert (trial["training_loss"], trial["validation_loss"], trial["loss_source"]) == (0.4, 0.55, "metrics files")


def test_without_a_validation_loss_for_every_trial_the_training_loss_decides_and_says_so() -> None:
    state = _steps([]).run(
        "pick-best", _state([_trial(1, TrainingMetrics={"TrainingLoss": 0.3}), _trial(2, **_losses(0.5, 0.6))]), "r"
    )
    assert state["search"]["best"] == "t1" and state["search"]["chosen_by"] == "training_loss"
    assert state["search"]["warnings"] == ["no validation loss for every trial: the best was chosen by training loss"]


def test_a_loser_that_cannot_be_deleted_is_kept_and_the_user_told() -> None:
    deleted: list[str] = []
    loser = "arn:aws:bedrock:us-east-1:1:custom-model/m-t1"
    state = _steps(deleted, refuse=loser).run(
        "pick-best", _state([_trial(1, **_losses(0.9, 1.1)), _trial(2, **_losses(0.5, 0.7))]), "r"
    )
    assert deleted == [] and state["search"]["trials"][0]["kept"] is True
    assert state["search"]["warnings"] == [
        f"trial t1's model {loser} was not deleted: AccessDeniedException: not tagged by this stack"
    ]


def test_keep_all_deletes_nothing() -> None:
    deleted: list[str] = []
    _steps(deleted).run(
        "pick-best", _state([_trial(1, **_losses(0.9, 1.1)), _trial(2, **_losses(0.5, 0.7))], keep="all"), "r"
    )
    assert deleted == []


def test_a_single_job_that_failed_or_still_runs_is_named_as_before_the_search() -> None:
    failed = _trial(1, "Failed", FailureMessage="The job ran out of memory")
    with pytest.raises(CustomizationJobFailed, match="run-1-t1 failed: The job ran out of memory"):
        _steps([]).run("pick-best", _state([failed]), "r")
    running = _trial(1)
    running["status"] = "StillRunning"
    with pytest.raises(JobStillRunning, match="still running after 1000 checks"):
        _steps([]).run("pick-best", _state([running]), "r")

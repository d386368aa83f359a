"""The sandbox holds: CPU, wall clock, memory, file size, crashes and credentials."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sluice.errors import QuarantineError, Reason, TransientError
from sluice.model import Kind
from sluice.pipeline.extract import ParseLimits
from sluice.pipeline.sandbox import Sandbox, SandboxLimits

# The wall clock is no test's subject but the blocked parser's: elsewhere it is far above what any
# target needs, so a busy machine cannot turn another limit's verdict into timeout_wall.
LIMITS = SandboxLimits(memory_mb=512, cpu_seconds=2, wall_seconds=120, file_mb=8)
BLOCKED_LIMITS = replace(LIMITS, wall_seconds=4)


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    limits = BLOCKED_LIMITS if request.param == "sleep" else LIMITS
    box = Sandbox(limits, target=f"hostile.targets:{request.param}")
    yield box
    box.close()


def _reason(box: Sandbox, deadline: float | None = None) -> Reason:
    with pytest.raises(QuarantineError) as info:
        box(b"x", Kind.TEXT, ParseLimits(), deadline)
    return info.value.reason


def _reaped_cpu_seconds() -> float:
    """CPU time of this process's finished (waited-for) children: the sandbox waits for a worker it stops."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_an_endless_loop_is_stopped_by_the_cpu_limit() -> None:
    # LIMITS' wall clock is far above the CPU limit: on a busy machine the loop gets a fraction of a core.
    box = Sandbox(replace(LIMITS, cpu_seconds=1), target="hostile.targets:burn_cpu")
    before = _reaped_cpu_seconds()
    try:
        with pytest.raises(QuarantineError) as info:
            box(b"x", Kind.TEXT, ParseLimits(), None)
        assert info.value.reason is Reason.TIMEOUT_CPU
    finally:
        box.close()
    # The worker ran until the CPU limit and no further: the soft limit is set at the CPU it had used
    # (its start, whole seconds) plus the document's second plus one.
    assert 1 <= _reaped_cpu_seconds() - before < 4


@pytest.mark.parametrize("sandbox", ["sleep"], indirect=True)
def test_a_blocked_parser_is_stopped_by_the_wall_clock(sandbox: Sandbox) -> None:
    before = _reaped_cpu_seconds()
    assert _reason(sandbox) is Reason.TIMEOUT_WALL
    assert _reaped_cpu_seconds() - before < 1  # the wall limit fired: the worker used next to no CPU


@pytest.mark.parametrize("sandbox", ["sleep"], indirect=True)
def test_running_out_of_invocation_time_is_a_retry_not_a_verdict(sandbox: Sandbox) -> None:
    with pytest.raises(TransientError):
        sandbox(b"x", Kind.TEXT, ParseLimits(), time.monotonic() + 3)  # less than the 4 s budget
    with pytest.raises(TransientError, match="left in this invocation"):
        sandbox(b"x", Kind.TEXT, ParseLimits(), time.monotonic() + 1)  # too little to even start


@pytest.mark.parametrize("sandbox", ["allocate"], indirect=True)
def test_a_memory_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    assert _reason(sandbox) is Reason.MEMORY_LIMIT


@pytest.mark.parametrize("sandbox", ["crash"], indirect=True)
def test_a_native_crash_is_a_worker_crash_and_the_next_document_gets_a_new_worker(sandbox: Sandbox) -> None:
    assert _reason(sandbox) is Reason.WORKER_CRASH
    assert _reason(sandbox) is Reason.WORKER_CRASH
    assert sandbox.started == 2


@pytest.mark.parametrize("sandbox", ["write_file"], indirect=True)
def test_writing_a_huge_file_is_stopped(sandbox: Sandbox) -> None:
    assert _reason(sandbox) is Reason.DECOMPRESSION_OR_SIZE_LIMIT


@pytest.mark.parametrize("sandbox", ["environment"], indirect=True)
def test_the_parser_sees_no_aws_credentials(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASECRETSECRET")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-secret")
    doc = sandbox(b"x", Kind.TEXT, ParseLimits())
    seen = doc.blocks[0].text
    assert "AWS_" not in seen and "secret" not in seen.lower()
    assert "PATH=" in seen  # the environment was read: it is just empty of secrets


def test_the_worker_is_reused_across_documents() -> None:
    box = Sandbox(LIMITS)
    try:
        for text in (b"one", b"two", b"# three"):
            assert box(text, Kind.MARKDOWN, ParseLimits()).blocks
        assert box.started == 1
    finally:
        box.close()


def test_the_worker_process_is_gone_after_close() -> None:
    box = Sandbox(LIMITS)
    box(b"text", Kind.TEXT, ParseLimits())
    pid = box._process.pid if box._process else 0
    box.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

"""`sluice ...` run in a subprocess against a running local stack, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sluice_local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
Sluice = Callable[..., subprocess.CompletedProcess[str]]


@contextmanager
def sluice_on(stack: LocalStack) -> Iterator[Sluice]:
    """A runner of `sluice ARGS`; it finds this stack through its own state file (SLUICE_LOCAL_STATE),
    so tests running other stacks at the same time do not meet."""
    environment = {**os.environ, "SLUICE_LOCAL_STATE": str(stack.state_dir)}

    def sluice(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sluice_cli.main", *args]
        return subprocess.run(command, capture_output=True, text=True, check=check, cwd=ROOT, env=environment)

    yield sluice

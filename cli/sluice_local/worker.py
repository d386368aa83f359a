"""A function's execution environment on the local stack: one process per function, like Lambda's.

The parent sends one JSON request per line on fd ``--requests`` and reads one JSON reply per line on
fd ``--replies``. The handler's own output (logs, metrics) goes to stderr, which the parent writes to
the function's log file. The module is imported once, so cold start and warm invocations behave as
they do in Lambda.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


class Context:
    """The parts of Lambda's context object handlers use."""

    def __init__(self, name: str, memory_mb: int, timeout_s: float, request_id: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:123456789012:function:{name}"
        )
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=3)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--replies", type=int, required=True)
    args = parser.parse_args()

    requests = os.fdopen(args.requests, "r", encoding="utf-8")
    replies = os.fdopen(args.replies, "w", encoding="utf-8")
    sys.stdout = sys.stderr  # the handler's prints and EMF metrics go to the log, not the protocol

    if os.environ.get("SLUICE_EMULATORS"):  # Bedrock and Kendra, answered in-process (see emulators)
        from sluice_local.emulators import install

        install(Path(os.environ["SLUICE_EMULATORS"]))

    if os.environ.get("SLUICE_FAULTS"):  # fault injection at every AWS call (sluice_local.faults); off by default
        from sluice_local import faults

        faults.install(Path(os.environ[faults.ENV]))

    module_name, function_name = args.handler.rsplit(".", 1)
    sys.path.insert(0, args.code)
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(args.code, f"{module_name}.py"))
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {args.handler} from {args.code}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as Lambda's runtime imports it (dataclasses look themselves up here)
    spec.loader.exec_module(module)
    handler = getattr(module, function_name)

    for line in requests:
        request = json.loads(line)
        context = Context(args.name, args.memory, args.timeout, request["request_id"])
        reply: dict[str, Any]
        try:
            reply = {"ok": True, "result": handler(request["event"], context)}
        except Exception as exc:  # noqa: BLE001 - reported to the pump as a failed invocation
            traceback.print_exc()
            reply = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
            }
        replies.write(json.dumps(reply, default=str) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()

"""FineTuneFunction: the Lambda steps of the fine-tune state machine (statemachine/finetune.asl.json).

The state machine sends ``{"step": ..., "state": ..., "execution": ...}``; the step runs in
``sluice.finetune.workflow`` and the new state goes back. Problems with the input or the dataset
raise FineTuneInputError / DatasetInvalidError / DatasetSourceError, whose message the state
machine turns into the execution's readable failure cause; a transient AWS failure raises
TransientError, which the state machine retries.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.bootstrap.finetune import build

logger = Logger()
function = cache(lambda: build(os.environ))  # once per execution environment


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step, execution = str(event.get("step", "")), str(event.get("execution", ""))
    logger.append_keys(step=step, execution=execution)
    state = function().run(step, dict(event.get("state") or {}), execution)
    summary: dict[str, Any] = {"report": (state.get("dataset") or {}).get("report")}
    summary |= {k: state[k] for k in ("corpus_change", "result") if k in state}
    logger.info("step done", extra={k: v for k, v in summary.items() if v})
    return state

"""One scheduled invocation of the connector function: the instances it asks for, one after the
other, each with its share of the time left, so a large first one cannot starve the rest. An
instance that fails is a recorded run and the others still run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.connectors import Instance
from sluice.connectors.runner import ConnectorState, Landing, RunReport, run_instance

# Left for what the time budget cannot interrupt (one HTTP request with its retries, a query's wait,
# the sweep) and for saving the state: a run stops taking new items this long before the end.
MARGIN_SECONDS = 120
MIN_SECONDS = 10  # an instance given less than this is left to the next schedule


@dataclass(frozen=True)
class ConnectorPorts:
    secret: Callable[[str], Mapping[str, Any]]  # an instance's credentials by secret name
    aws: Callable[..., Any]  # (service, role_arn=None) → a client
    state: ConnectorState
    landing: Landing  # RawBucket


def run_selected(
    wanted: list[Instance],
    ports: ConnectorPorts,
    *,
    remaining_seconds: Callable[[], float],
    owner: str,
    done: Callable[[RunReport], None] = lambda _: None,
) -> list[RunReport]:
    reports: list[RunReport] = []
    for index, instance in enumerate(wanted):
        seconds = (remaining_seconds() - MARGIN_SECONDS) / (len(wanted) - index)
        if seconds < MIN_SECONDS:
            report = RunReport(instance.name, instance.type, "", stopped="time budget")
            report.errors.append("no time left in this invocation; the next schedule runs it")
        else:
            try:
                report = run_instance(
                    instance, secret=ports.secret, aws=ports.aws, state=ports.state, landing=ports.landing,
                    seconds=seconds, owner=owner,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one instance never stops the others
                report = RunReport(instance.name, instance.type, "", stopped="error")
                report.errors.append(f"{type(exc).__name__}: {exc}")
        reports.append(report)
        done(report)
    return reports

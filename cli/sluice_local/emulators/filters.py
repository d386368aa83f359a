"""Bedrock's retrieval filters (RetrievalFilter in bedrock-agent-runtime), applied to a chunk's plain
metadata. A clause on a key the chunk lacks is false, except notEquals and notIn, which are true."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sluice_local.emulators.common import ServiceError


def _number_or_text(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, int | float) and not isinstance(a, bool):
        return float(a), float(b)
    return str(a), str(b)


def _compare(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(actual: Any, value: Any) -> bool:
        try:
            return test(*_number_or_text(actual, value))
        except (TypeError, ValueError):
            return False

    return compare


_PRESENT: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda actual, value: actual == value,
    "notEquals": lambda actual, value: actual != value,
    "greaterThan": _compare(lambda a, b: a > b),
    "greaterThanOrEquals": _compare(lambda a, b: a >= b),
    "lessThan": _compare(lambda a, b: a < b),
    "lessThanOrEquals": _compare(lambda a, b: a <= b),
    "in": lambda actual, value: actual in value,
    "notIn": lambda actual, value: actual not in value,
    "startsWith": lambda actual, value: isinstance(actual, str) and actual.startswith(value),
    "listContains": lambda actual, value: isinstance(actual, list) and value in actual,
    "stringContains": lambda actual, value: (value in actual) if isinstance(actual, str | list) else False,
}
_TRUE_WHEN_MISSING = {"notEquals", "notIn"}


def matches(condition: dict[str, Any], metadata: dict[str, Any]) -> bool:
    if len(condition) != 1:
        raise ServiceError("ValidationException", "a filter has exactly one operator")
    ((operator, argument),) = condition.items()
    if operator == "andAll":
        return all(matches(c, metadata) for c in _at_least_two(argument, operator))
    if operator == "orAll":
        return any(matches(c, metadata) for c in _at_least_two(argument, operator))
    if operator not in _PRESENT:
        raise ServiceError("ValidationException", f"unknown filter operator {operator}")
    key, value = argument["key"], argument["value"]
    if key not in metadata:
        return operator in _TRUE_WHEN_MISSING
    return bool(_PRESENT[operator](metadata[key], value))


def _at_least_two(clauses: list[dict[str, Any]], operator: str) -> list[dict[str, Any]]:
    if len(clauses) < 2:
        raise ServiceError("ValidationException", f"{operator} takes at least 2 filters")  # as the service model says
    return clauses

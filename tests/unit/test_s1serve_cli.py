"""The `s1serve` dispatcher: help without vLLM, one version, and the layers below it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("budget", "server", "training", "evals", "benchmarks", "s1serve")
S1SERVE_FLAGS = ("--thinking-format", "--budget-profile", "--forcing-path", "--max-queued-requests")


def python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--help"], ("serve", "train", "bench", "eval")), (["serve", "--help"], (*S1SERVE_FLAGS, "--help=all"))],
)
def test_help_lists_the_commands_and_s1serve_flags(argv: list[str], expected: tuple[str, ...]) -> None:
    result = python("-m", "s1serve", *argv)
    assert result.returncode == 0, result.stderr
    for word in expected:
        assert word in result.stdout


def test_serve_help_imports_neither_vllm_nor_torch() -> None:
    code = (
        "import sys; from s1serve.cli import main; main(['serve', '--help']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'vllm', 'torch', 'fastapi', 'uvicorn'}))"
    )
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    assert "--thinking-format" in result.stdout and "s1serve limits flags" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_server_cli_still_runs_serve() -> None:
    result = python("-m", "server.cli", "serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "--thinking-format" in result.stdout


def test_one_version() -> None:
    import s1serve
    import server

    pyproject = (REPO / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert declared is not None
    assert s1serve.__version__ == server.__version__ == declared.group(1)


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names anywhere in the file, function bodies included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_shipped_packages_do_not_import_tests(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.split(".")[0] == "tests"
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["server", "budget", "training", "evals", "benchmarks"])
def test_nothing_below_the_dispatcher_imports_it(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.split(".")[0] == "s1serve"
    ]
    assert offenders == []


def test_harness_port_shares_nothing_with_budget_or_server() -> None:
    names = {name.split(".")[0] for name in imported_modules(REPO / "benchmarks" / "harness_port.py")}
    assert not names & {"budget", "server", "tests"}

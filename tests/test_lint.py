"""The tree is ruff-clean: lint rules and formatting from pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_check() -> None:
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format() -> None:
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_budget_is_independent_of_server_and_vllm() -> None:
    """budget/ must stay importable and testable without the engine or the HTTP layer."""
    code = (
        "import sys, budget, budget.splitter; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('vllm', 'server', 'fastapi')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

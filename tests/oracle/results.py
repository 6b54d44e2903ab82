"""The oracle run of one model, once per test session (shared by the controller and HTTP tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.oracle.run import CASE_NAMES, DRIVER_CASES

REPO = Path(__file__).resolve().parents[2]


def oracle_results(model: Path, fmt: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`python -m tests.oracle.run` on `model`, in a child process (vLLM spawns workers); cached."""
    out = tmp_path_factory.getbasetemp() / f"oracle-{fmt}"
    path = out / "results.json"
    if not path.exists():
        out.mkdir(exist_ok=True)
        run = subprocess.run(
            [sys.executable, "-m", "tests.oracle.run", str(model), fmt, str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        (out / "run.log").write_text(run.stdout + run.stderr)
        assert run.returncode == 0, "\n".join(line for line in run.stderr.splitlines() if "Error" in line)[-4000:]
    results = json.loads(path.read_text())
    assert tuple(results["cases"]) == CASE_NAMES + DRIVER_CASES
    return results

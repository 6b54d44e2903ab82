"""Bad input and unreachable endpoints end the program with one clear line (no server needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.servers import REPO_ROOT, free_port
from evals.cli import main
from tests.evals.conftest import ARITHMETIC


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def test_unreachable_endpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    code, err = run(capsys, "--base-url", dead, "--model", "m", "--dataset", str(ARITHMETIC), "--out", str(tmp_path))
    assert code == 2
    assert err.startswith(f"s1serve eval: error: cannot reach {dead}") and "\n" not in err


def test_missing_columns_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"question": "1 + 1?", "solution": "2"}) + "\n")
    code, err = run(capsys, "--model", "m", "--dataset", str(data), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "record 1 lacks column(s) answer" in err and "\n" not in err


def test_unknown_method_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--dataset", str(ARITHMETIC), "--methods", "budget,beam", "--out", str(tmp_path))
    assert code == 2 and "unknown beam" in err and "\n" not in err
    code, err = run(capsys, "--dataset", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path))
    assert code == 2 and "no such file" in err and "\n" not in err


def test_broken_json_line_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "broken.jsonl"
    data.write_text('{"question": "1 + 1?", "answer": "2"}\n{"question": \n')
    code, err = run(capsys, "--model", "m", "--dataset", str(data), "--out", str(tmp_path / "out"))
    assert code == 2 and f"{data}:2: not JSON" in err


def test_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    """With the hub switched off, a hub id fails with one line naming it (no data set is fetched in tests)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = [sys.executable, "-m", "evals", "--dataset", "aime24", "--model", "m", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "s1serve eval: error: --dataset simplescaling/aime24_nofigures: cannot load from the hub"
    )

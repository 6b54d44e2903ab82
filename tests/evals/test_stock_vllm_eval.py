"""The same program against vLLM's stock OpenAI server: majority voting works, budget forcing says it cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.servers import Server
from evals.cli import main
from tests.evals.conftest import ARITHMETIC

pytestmark = pytest.mark.engine


def test_majority_runs_and_budget_is_refused_clearly(
    stock_vllm: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--base-url",
        f"{stock_vllm.base_url}/v1",  # no --model: the first model the server lists
        "--dataset",
        str(ARITHMETIC),
        "--methods",
        "majority,budget",
        "--samples",
        "1,3",
        "--max-thinking",
        "8",
        "--max-tokens",
        "32",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1  # one method could not run
    assert "budget did not run: method budget needs s1serve's thinking_budget field" in err

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "SmolLM2-135M-Instruct"
    assert "budget" not in summary["methods"] and "budget" in summary["failed_methods"]
    majority = summary["methods"]["majority"]
    assert [p["budget"] for p in majority["points"]] == [1, 3]
    assert all(p["n"] == 5 and 0 <= p["accuracy"] <= 1 for p in majority["points"])

    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 3  # one pool of three choices per question (one n=3 request), n=1 votes over the first
    assert all(r["thinking_report"] is None and r["answer"] for r in rows)
    assert (tmp_path / "summary.md").read_text().count("did not run") == 1

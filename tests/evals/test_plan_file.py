"""One command for Table 3: a TOML plan gives each method its own budgets, and one summary covers every
method run into the same --out, earlier runs' included (fake endpoint, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat

PLAN = """
[budget]
max_thinking = [8, 16]

[token-conditional]
max_thinking = [32, 64, 128]
"""


def reply(body: dict, index: int) -> Choice:
    cap = (body.get("thinking_budget") or {}).get("max_tokens", 50)
    report = {"thinking_tokens": min(cap, 50), "answer_tokens": 2, "forced_end": cap < 50}
    return Choice("\\boxed{5}", thinking="Add.", report=report)


def run(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n")
    argv = ["--model", MODEL, "--dataset", str(data), "--max-tokens", "300", "--out", str(tmp_path / "out")]
    code = main([*argv, "--no-progress", *extra])
    return code, json.loads((tmp_path / "out" / "summary.json").read_text()) if code != 2 else {}


def budgets(summary: dict, method: str) -> list:
    return sorted(p["budget"] for p in summary["methods"][method]["points"])


def test_each_method_of_the_plan_sweeps_its_own_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(reply)
    fake.install(monkeypatch)
    (tmp_path / "plan.toml").write_text(PLAN)
    code, summary = run(tmp_path, "--plan", str(tmp_path / "plan.toml"))
    assert code == 0
    assert budgets(summary, "budget") == [8, 16] and budgets(summary, "token-conditional") == [32, 64, 128]
    assert len(fake.bodies) == 5
    assert sorted(b["thinking_budget"]["max_tokens"] for b in fake.bodies if "thinking_budget" in b) == [8, 16]


def test_one_summary_covers_the_methods_of_earlier_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(reply)
    fake.install(monkeypatch)
    (tmp_path / "plan.toml").write_text(PLAN)
    run(tmp_path, "--plan", str(tmp_path / "plan.toml"))
    first = len(fake.bodies)
    code, summary = run(tmp_path, "--methods", "majority", "--samples", "1,2")
    assert code == 0
    assert len(fake.bodies) == first + 1  # only the new method's pool is drawn
    assert list(summary["methods"]) == ["majority", "budget", "token-conditional"]
    assert budgets(summary, "budget") == [8, 16] and budgets(summary, "token-conditional") == [32, 64, 128]
    assert set(summary["earlier_methods"]) == {"budget", "token-conditional"}
    table = (tmp_path / "out" / "summary.md").read_text()
    for name in ("majority", "budget", "token-conditional"):
        assert f"| {name} |" in table and f"## {name}" in table

    # A method run again with other budgets replaces its earlier entry rather than adding to it.
    code, summary = run(tmp_path, "--methods", "budget", "--max-thinking", "16")
    assert budgets(summary, "budget") == [16] and budgets(summary, "token-conditional") == [32, 64, 128]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[beam]\nmax_thinking = [8]\n", "unknown method [beam]"),
        ("[budget]\nmax_thinkin = [8]\n", "unknown key max_thinkin"),
        ("[budget]\nmax_thinking = 8\n", "must be a list of non-negative integers"),
        ("[budget\n", "not TOML"),
    ],
)
def test_a_bad_plan_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeChat(reply).install(monkeypatch)
    (tmp_path / "plan.toml").write_text(text)
    code, _ = run(tmp_path, "--plan", str(tmp_path / "plan.toml"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and complaint in err and "\n" not in err

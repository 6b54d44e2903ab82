"""The early-exit method against the in-process fake endpoint (no server): its requests, and summary.md's
comparison with plain budget forcing at the same caps.

The fake plays a model that would think 100 tokens; with early exit its probes agree after 48 tokens
(3 probes of 10 tokens), unless the cap comes first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat

WANTS, AGREED_AT = 100, 48


def reply(body: dict, index: int) -> Choice:
    budget = body["thinking_budget"]
    cap = budget["max_tokens"]
    report = {"thinking_tokens": min(cap, WANTS), "answer_tokens": 3, "forced_end": cap < WANTS}
    if "early_exit" in budget:
        exits = AGREED_AT < cap
        report = {
            "thinking_tokens": AGREED_AT if exits else cap,
            "answer_tokens": 3,
            "forced_end": not exits,
            "early_exit": exits,
            "probes": 3,
            "probe_tokens": 30,
        }
    return Choice("\\boxed{5}", thinking="Add.", report=report)


def test_early_exit_runs_at_the_budget_caps_and_is_compared_with_budget_forcing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeChat(reply)
    fake.install(monkeypatch)
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n")
    argv = ["--model", MODEL, "--dataset", str(data), "--methods", "budget,early-exit", "--max-thinking", "32,64,128"]
    argv += ["--early-exit-every", "16", "--early-exit-agree", "2", "--max-tokens", "300"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 0

    sent = sorted(json.dumps(b["thinking_budget"], sort_keys=True) for b in fake.bodies)
    probe = {"every": 16, "agree": 2}
    expected = [{"max_tokens": c} for c in (32, 64, 128)] + [
        {"max_tokens": c, "early_exit": probe} for c in (32, 64, 128)
    ]
    assert sent == sorted(json.dumps(b, sort_keys=True) for b in expected)

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    early = {p["budget"]: p for p in summary["methods"]["early-exit"]["points"]}
    assert [early[c]["mean_thinking_tokens"] for c in (32, 64, 128)] == [32, 48, 48]
    assert [early[c]["early_exit_share"] for c in (32, 64, 128)] == [0.0, 1.0, 1.0]
    assert summary["methods"]["early-exit"]["control"] == 1.0

    table = (tmp_path / "out" / "summary.md").read_text()
    rows = table[table.index("## early-exit against budget forcing") :].splitlines()
    # cap | accuracy budget | accuracy early-exit | thinking budget | thinking early-exit | saved | exits | probe tokens
    assert "| 32 | 100.0% | 100.0% | 32 | 32 | 0 (0%) | 0.0% | 30 |" in rows
    assert "| 64 | 100.0% | 100.0% | 64 | 48 | 16 (25%) | 100.0% | 30 |" in rows
    assert "| 128 | 100.0% | 100.0% | 100 | 48 | 52 (52%) | 100.0% | 30 |" in rows

"""The baselines' prompts as s1's harness writes them, seen in the requests sent to the fake endpoint.

s1's templates (simplescaling/s1, eval/lm-evaluation-harness/lm_eval/tasks/aime/utils.py) are
'{Question}\\n\\nThink for up to N tokens.' and '{Question}\\n\\nThink for up to N steps.'; the strings
below are written from them, not taken from evals/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat, Refusal

QUESTION = "What is 2 + 3?"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> list[str]:
    report = {"thinking_tokens": 1, "answer_tokens": 2, "forced_end": False}
    fake = FakeChat(lambda body, i: Choice("\\boxed{5}", thinking="Add.", report=report))
    fake.install(monkeypatch)
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": QUESTION, "answer": "5"}) + "\n")
    argv = ["--model", MODEL, "--dataset", str(data), "--max-tokens", "100", "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-progress", *extra]) == 0
    return [b["messages"][-1]["content"] for b in fake.bodies]


def test_token_and_step_prompts_are_exactly_s1s_without_the_instruction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = prompts(
        tmp_path,
        monkeypatch,
        "--methods",
        "token-conditional,step-conditional",
        "--max-thinking",
        "2048",
        "--steps",
        "16",
        "--no-instruction",
    )
    assert sent == [f"{QUESTION}\n\nThink for up to 2048 tokens.", f"{QUESTION}\n\nThink for up to 16 steps."]


def test_with_the_instruction_the_method_prompt_still_follows_the_question(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = prompts(tmp_path, monkeypatch, "--methods", "token-conditional,budget", "--max-thinking", "2048")
    assert sorted(sent) == sorted(
        [f"{QUESTION}\n\nThink for up to 2048 tokens.\n\n{INSTRUCTION}", f"{QUESTION}\n\n{INSTRUCTION}"]
    )


def test_a_server_without_the_thinking_stop_text_cannot_run_step_forcing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fake refuses `until` as today's s1serve words it; the method fails, the run goes on."""

    def reply(body: dict, index: int) -> Choice | Refusal:
        if "until" in body.get("thinking_budget", {}):
            return Refusal(
                "thinking_budget.until is not a thinking budget field; use max_tokens", "thinking_budget.until"
            )
        return Choice("\\boxed{5}", thinking="Add.")

    FakeChat(reply).install(monkeypatch)
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": QUESTION, "answer": "5"}) + "\n")
    argv = ["--model", MODEL, "--dataset", str(data), "--max-tokens", "100", "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-progress", "--methods", "step-conditional+budget,step-conditional"]) == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "not a thinking budget field" in summary["failed_methods"]["step-conditional+budget"]
    assert "step-conditional" in summary["methods"] and "step-conditional+budget" not in summary["methods"]
    assert "step-conditional+budget did not run" in capsys.readouterr().err

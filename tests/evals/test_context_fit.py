"""Defaults that fit the served model, and refused requests that do not end the run (fake endpoint, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat, Refusal, question_of

QUESTIONS = [
    {"id": "short", "question": "What is 2 + 3?", "answer": "5"},
    {"id": "long", "question": "What is the sum of four and five, written as a single number?", "answer": "9"},
]


def data(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


def right(body: dict, index: int) -> Choice:
    answer = "5" if question_of(body) == QUESTIONS[0]["question"] else "9"
    return Choice(f"\\boxed{{{answer}}}", report={"thinking_tokens": 4, "answer_tokens": 3, "forced_end": False})


def run(tmp_path: Path, *extra: str, out: str = "out") -> tuple[int, dict]:
    argv = ["--model", MODEL, "--dataset", str(data(tmp_path)), "--max-thinking", "8", *extra]
    code = main([*argv, "--out", str(tmp_path / out), "--no-progress"])
    return code, json.loads((tmp_path / out / "summary.json").read_text())


def test_the_default_bound_is_the_context_minus_the_longest_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fake counts one token per word plus 10: the longer question's prompt is the longest."""
    fake = FakeChat(right, context=2048)
    fake.install(monkeypatch)
    code, summary = run(tmp_path)
    assert code == 0
    longest = max(body["messages"][-1]["content"] for body in fake.bodies)
    expected = 2048 - (len(longest.split()) + 10) - 16
    assert {body["max_tokens"] for body in fake.bodies} == {expected}
    assert summary["max_tokens"]["value"] == expected
    assert "2048" in summary["max_tokens"]["how"] and "2048" in capsys.readouterr().err
    assert f"{expected} tokens" in (tmp_path / "out" / "summary.md").read_text()


def test_without_a_listed_context_no_bound_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(right)  # GET /models lists no max_model_len: a hosted API, say
    fake.install(monkeypatch)
    code, summary = run(tmp_path)
    assert code == 0 and fake.bodies
    assert all("max_tokens" not in body for body in fake.bodies)
    assert summary["max_tokens"]["value"] is None and "not sent" in summary["max_tokens"]["how"]


def test_without_a_tokenizer_route_no_bound_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(right, context=2048, tokenize=False)
    fake.install(monkeypatch)
    code, summary = run(tmp_path)
    assert code == 0 and all("max_tokens" not in body for body in fake.bodies)
    assert "tokenize" in summary["max_tokens"]["how"]


def test_a_given_bound_is_sent_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(right, context=2048)
    fake.install(monkeypatch)
    code, summary = run(tmp_path, "--max-tokens", "300")
    assert code == 0 and {body["max_tokens"] for body in fake.bodies} == {300}


def test_a_refused_request_is_recorded_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The long question's cap is refused with a 400 (as s1serve refuses a cap beyond the context left)."""

    def refuse_long(body: dict, index: int) -> Choice | Refusal:
        if question_of(body) == QUESTIONS[1]["question"] and body.get("thinking_budget", {}).get("max_tokens") == 16:
            message = "thinking_budget.max_tokens=16 is larger than the context left"
            return Refusal(message, "thinking_budget.max_tokens")
        return right(body, index)

    fake = FakeChat(refuse_long)
    fake.install(monkeypatch)
    code, summary = run(tmp_path, "--max-tokens", "300", "--max-thinking", "8,16", "--methods", "budget,majority")
    assert code == 1  # something failed, and it says so
    budget = summary["methods"]["budget"]
    by_label = {p["label"]: p for p in budget["points"]}
    assert by_label["max_thinking=8"]["accuracy"] == 1.0 and by_label["max_thinking=8"]["failed_samples"] == 0
    # The refused sample is a failure: it counts as wrong and stays out of the thinking statistics.
    assert by_label["max_thinking=16"]["failed_samples"] == 1 and by_label["max_thinking=16"]["accuracy"] == 0.5
    assert by_label["max_thinking=16"]["mean_thinking_tokens"] == 4
    assert summary["failed_samples"] == {"budget": 1}
    assert "majority" in summary["methods"]  # the methods after it ran too
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "Failed samples, budget" in table and "larger than the context left" in table
    assert "Failed samples, budget" in capsys.readouterr().err

    # A rerun asks again for the refused sample only, and now it is answered.
    asked = len(fake.bodies)
    fake.reply = right
    code, summary = run(tmp_path, "--max-tokens", "300", "--max-thinking", "8,16", "--methods", "budget,majority")
    assert code == 0 and len(fake.bodies) == asked + 1
    assert summary["failed_samples"] == {} and summary["methods"]["budget"]["performance"] == 1.0

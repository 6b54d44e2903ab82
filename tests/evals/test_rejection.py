"""Rejection sampling as s1 runs it, against the in-process fake endpoint (no server, no model).

s1 (simplescaling/s1 eval/commands.sh, `rejection_sample=true,temperature=1`; the harness's
`vllm_causallms.py`) stops each try's thinking at cap + 1 tokens and draws again until the thinking
fits the cap. The fake plays s1serve: it reports the thinking of each try from a script, never more
than the budget's cap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat, question_of

CAP = 10
QUESTIONS = [
    {"id": "fits-third", "question": "What is 2 + 3?", "answer": "5"},
    {"id": "never-fits", "question": "What is 4 + 4?", "answer": "8"},
]
# The thinking each try would do on its own, in order, per question (the fake cuts it at the request's cap).
WANTS = {"What is 2 + 3?": [40, 25, 7, 3], "What is 4 + 4?": [30, 31, 32, 33, 34]}


class Tries:
    def __init__(self) -> None:
        self.drawn = {q: 0 for q in WANTS}

    def __call__(self, body: dict, index: int) -> Choice:
        question = question_of(body)
        wants = WANTS[question][self.drawn[question]]
        self.drawn[question] += 1
        cap = body["thinking_budget"]["max_tokens"]
        thinking = min(wants, cap)
        report = {"thinking_tokens": thinking, "answer_tokens": 2, "forced_end": wants > cap}
        answer = "5" if question == "What is 2 + 3?" else "8"
        return Choice(f"\\boxed{{{answer}}}", thinking="Adding.", report=report)


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tries: int = 4) -> tuple[FakeChat, dict]:
    fake = FakeChat(Tries())
    fake.install(monkeypatch)
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    argv = ["--model", MODEL, "--dataset", str(data), "--methods", "rejection", "--max-thinking", str(CAP)]
    argv += ["--max-tries", str(tries), "--max-tokens", "200", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    return fake, json.loads((tmp_path / "out" / "summary.json").read_text())


def test_each_try_is_stopped_at_cap_plus_one_and_drawn_at_temperature_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = run(tmp_path, monkeypatch)
    assert fake.bodies
    assert {json.dumps(b["thinking_budget"]) for b in fake.bodies} == {json.dumps({"max_tokens": CAP + 1})}
    assert {b["temperature"] for b in fake.bodies} == {1.0}
    assert len({b["seed"] for b in fake.bodies}) == len(fake.bodies)  # every try a new draw


def test_resampling_stops_at_the_first_try_that_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, summary = run(tmp_path, monkeypatch)
    asked = [question_of(b) for b in fake.bodies]
    assert asked.count("What is 2 + 3?") == 3  # 40 and 25 are cut at 11 and rejected; 7 fits
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    kept = next(r for r in rows if r["question_id"] == "fits-third")
    assert (kept["thinking_tokens"], kept["tries"], kept["rejected_thinking"]) == (7, 3, [CAP + 1, CAP + 1])


def test_a_question_that_never_fits_is_a_failure_not_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, summary = run(tmp_path, monkeypatch, tries=4)
    asked = [question_of(b) for b in fake.bodies]
    assert asked.count("What is 4 + 4?") == 4  # --max-tries bounds the tries
    (point,) = summary["methods"]["rejection"]["points"]
    # Its answer would have been right, but no try fit: it counts as wrong, and its thinking is not averaged.
    assert point["failed_samples"] == 1 and point["accuracy"] == 0.5
    assert point["mean_thinking_tokens"] == 7 and point["p95_thinking_tokens"] == 7
    assert point["within_bounds"] is True
    assert summary["failed_samples"] == {"rejection": 1}
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "Failed samples, rejection" in table and f"cap of {CAP} tokens in 4 tries" in table

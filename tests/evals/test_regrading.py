"""Grades are never stale: the summary regrades stored outputs, and the cache key holds generation only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from evals.methods import Point
from evals.runner import Settings, row_key
from evals.tasks import Question
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat, question_of

ANSWERS = {"What is 2 + 3?": "5", "What is 10 - 7?": "3"}


def write(path: Path, gold_of_addition: str) -> Path:
    rows = [
        {"id": "add", "question": "What is 2 + 3?", "answer": gold_of_addition},
        {"id": "sub", "question": "What is 10 - 7?", "answer": "3"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(data: Path, out: Path) -> dict:
    argv = ["--model", MODEL, "--dataset", str(data), "--methods", "token-conditional", "--max-thinking", "64"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "summary.json").read_text())


def test_a_corrected_gold_answer_changes_the_summary_without_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeChat(lambda body, i: Choice(f"The sum is \\boxed{{{ANSWERS[question_of(body)]}}}."))
    fake.install(monkeypatch)
    data, out = tmp_path / "q.jsonl", tmp_path / "out"
    first = run(write(data, "6"), out)  # a typo in the gold answer: the right reply 5 is graded wrong
    assert first["methods"]["token-conditional"]["points"][0]["accuracy"] == 0.5
    assert len(fake.bodies) == 2
    samples = (out / "samples.jsonl").read_bytes()

    second = run(write(data, "5"), out)  # the gold answer corrected
    assert len(fake.bodies) == 2 and second["requests_sent"] == 0
    assert second["methods"]["token-conditional"]["points"][0]["accuracy"] == 1.0
    assert (out / "samples.jsonl").read_bytes() == samples  # nothing regenerated, nothing appended


def test_the_key_holds_what_shapes_the_generation_only() -> None:
    settings = Settings(MODEL, 1000, temperature=0.0, sample_temperature=0.7, seed=0)
    question = Question("q", "What is 2 + 3?", "5", "math")
    pool_of_2 = Point("majority", "samples", 2, samples=2, sampled=True)
    pool_of_8 = Point("majority", "samples", 8, samples=8, sampled=True)
    key = row_key(settings, question, pool_of_2, 1)
    # Not the gold answer, the checker, the method's name or the n of the vote.
    assert row_key(settings, Question("q", "What is 2 + 3?", "6", "letter"), pool_of_2, 1) == key
    assert row_key(settings, question, pool_of_8, 1) == key
    assert row_key(settings, question, Point("other-name", "samples", 2, samples=2, sampled=True), 1) == key
    # But the sample, the temperature, the seed, the token bound and the thinking budget.
    assert row_key(settings, question, pool_of_8, 2) != key
    assert row_key(Settings(MODEL, 1000, sample_temperature=1.0), question, pool_of_2, 1) != key
    assert row_key(Settings(MODEL, 1000, seed=1), question, pool_of_2, 1) != key
    assert row_key(Settings(MODEL, 2000), question, pool_of_2, 1) != key
    capped = Point("majority", "samples", 2, thinking_budget={"max_tokens": 16}, samples=2, sampled=True)
    assert row_key(settings, question, capped, 1) != key

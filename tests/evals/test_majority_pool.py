"""Majority voting over one pool per question (s1's maj@n), against the in-process fake endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from tests.evals.fake_endpoint import MODEL, Choice, FakeChat, question_of

QUESTIONS = [{"id": "add", "question": "What is 2 + 3?", "answer": "5"}]
# The pool as drawn, in order: one vote for 9, then 5, 5, 7. By hand: maj@1 votes 9 (wrong); maj@2 is a
# 9-5 tie, which goes to the answer given first, 9 (wrong); maj@4 votes 5 with two votes (right).
POOL = ["9", "5", "5", "7", "5", "5", "5", "5"]


def data(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


class Pool:
    """Answers the next answer of POOL to every sample drawn, whatever request it comes in."""

    def __init__(self) -> None:
        self.drawn = 0

    def __call__(self, body: dict, index: int) -> Choice:
        assert question_of(body) == "What is 2 + 3?"
        answer = POOL[self.drawn]
        self.drawn += 1
        return Choice(f"So the answer is \\boxed{{{answer}}}.", thinking="Add them.", completion_tokens=10)


def run(tmp_path: Path, samples: str, out: Path | None = None) -> dict:
    out = out or tmp_path / "out"
    argv = ["--model", MODEL, "--dataset", str(data(tmp_path)), "--methods", "majority", "--samples", samples]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "summary.json").read_text())


def accuracy_by_n(summary: dict) -> dict[int, float]:
    return {p["budget"]: p["accuracy"] for p in summary["methods"]["majority"]["points"]}


def test_each_n_votes_over_the_first_n_samples_of_one_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(Pool())
    fake.install(monkeypatch)
    summary = run(tmp_path, "1,2,4")
    # One request drawing the pool of 4 (not 1 + 2 + 4 samples in three requests).
    assert [b.get("n", 1) for b in fake.bodies] == [4]
    assert summary["requests_sent"] == 1
    assert accuracy_by_n(summary) == {1: 0.0, 2: 0.0, 4: 1.0}
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert sorted(r["sample"] for r in rows) == [0, 1, 2, 3]


def test_an_endpoint_refusing_n_is_asked_once_per_pool_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeChat(Pool(), takes_n=False)
    fake.install(monkeypatch)
    summary = run(tmp_path, "1,2,4")
    # The refused n=4 request, then one request per sample of the pool: 4 samples, not 1 + 2 + 4.
    assert [b.get("n", 1) for b in fake.bodies] == [4, 1, 1, 1, 1]
    assert accuracy_by_n(summary) == {1: 0.0, 2: 0.0, 4: 1.0}


def test_a_larger_n_later_draws_only_the_samples_it_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = Pool()
    fake = FakeChat(pool)
    fake.install(monkeypatch)
    first = run(tmp_path, "1,2")
    assert [b.get("n", 1) for b in fake.bodies] == [2]
    second = run(tmp_path, "1,2,4")
    assert [b.get("n", 1) for b in fake.bodies] == [2, 2]  # samples 3 and 4 only
    assert pool.drawn == 4
    assert accuracy_by_n(second) == {**accuracy_by_n(first), 4: 1.0}


def test_a_model_without_thinking_is_measured_in_completion_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeChat(lambda body, i: Choice("\\boxed{5}", completion_tokens=10 + i))
    fake.install(monkeypatch)
    summary = run(tmp_path, "1,2")
    majority = summary["methods"]["majority"]
    assert majority["compute"] == "completion_tokens"
    # One pool request of n=2 reports 10 + 11 = 21 completion tokens, 10.5 per choice: n=1 spends 10.5, n=2 21.
    assert [p["compute_tokens"] for p in majority["points"]] == [10.5, 21.0]
    assert [p["mean_thinking_tokens"] for p in majority["points"]] == [0, 0]
    assert majority["scaling"] == 0  # both right: flat, but defined (it was null with every point at x = 0)
    assert "completion tokens" in majority["scaling_unit"]
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "wrote no thinking segment" in table and "completion tokens" in table

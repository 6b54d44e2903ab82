"""Curve points from hand-written sample rows (fake rows, no server): voting, thinking sums, Control."""

from __future__ import annotations

from evals.methods import Point
from evals.summary import method_summary, point_summary
from evals.tasks import Question

QUESTIONS = [Question("q1", "p1", "5", "math"), Question("q2", "p2", "7", "math")]


def row(qid: str, sample: int, extracted: str | None, correct: bool, thinking: int) -> dict:
    return {
        "question_id": qid,
        "sample": sample,
        "extracted": extracted,
        "correct": correct,
        "thinking_tokens": thinking,
        "answer_tokens": 3,
        "completion_tokens": thinking + 3,
        "waits_inserted": 0,
        "forced_end": False,
        "tries": 1,
        "latency_s": 0.5,
    }


def test_majority_point_votes_and_sums_thinking() -> None:
    point = Point("majority", "samples", 3, samples=3, sampled=True, bounds=(None, 10))
    rows = {
        # q1: 5, 5, 4 -> votes 5, right. q2: 6, 7, 6 -> votes 6, wrong although one sample was right.
        "q1": [row("q1", 0, "5", True, 10), row("q1", 1, "4", False, 8), row("q1", 2, "5", True, 6)],
        "q2": [row("q2", 0, "6", False, 9), row("q2", 1, "7", True, 9), row("q2", 2, "6", False, 9)],
    }
    p = point_summary(point, QUESTIONS, rows)
    assert p["accuracy"] == 0.5 and p["correct"] == 1 and p["n"] == 2
    assert p["mean_thinking_tokens"] == (24 + 27) / 2  # per question, summed over its samples
    assert p["mean_thinking_tokens_per_sample"] == 51 / 6
    assert p["within_bounds"] is True and p["samples_within_bounds"] == 1.0


def test_method_summary_sorts_points_and_leaves_unbounded_ones_out_of_control() -> None:
    capped = Point("budget", "max_thinking", 8, thinking_budget={"max_tokens": 8}, bounds=(None, 8))
    ignored = Point("budget", "num_ignore", 1, thinking_budget={"num_ignore": 1})
    long_rows = {"q1": [row("q1", 0, "5", True, 40)], "q2": [row("q2", 0, "7", True, 60)]}
    short_rows = {"q1": [row("q1", 0, "5", True, 12)], "q2": [row("q2", 0, "1", False, 4)]}
    points = [point_summary(ignored, QUESTIONS, long_rows), point_summary(capped, QUESTIONS, short_rows)]
    summary = method_summary(points)
    assert [p["label"] for p in summary["points"]] == ["max_thinking=8", "num_ignore=1"]
    # The capped point's mean thinking (12 + 4) / 2 = 8 is within its cap; the other point has no bound.
    assert summary["control"] == 1.0
    # Per sample, 12 > 8 breaks the cap: the stricter per-sample share is 1 of 2.
    assert summary["control_samples"] == 0.5
    # From (8 tokens, 50 %) to (50 tokens, 100 %): 50 points over 42 tokens = 1190.48 per 1000 tokens.
    assert round(summary["scaling"], 2) == 1190.48
    assert summary["performance"] == 1.0

"""Curve points from hand-written sample rows (fake rows, no server): voting, thinking sums, Control."""

from __future__ import annotations

from evals.methods import Point
from evals.metrics import SCALING_UNIT
from evals.report import render
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


def test_summary_says_how_many_pairs_scaling_uses_and_warns_about_close_ones() -> None:
    def capped(cap: int) -> Point:
        return Point("budget", "max_thinking", cap, thinking_budget={"max_tokens": cap}, bounds=(None, cap))

    # Mean thinking 1000, 1001 and 4000 tokens per question: the first two are 0.1 % apart.
    rows_at = {
        1000: {"q1": [row("q1", 0, "5", True, 1000)], "q2": [row("q2", 0, "1", False, 1000)]},
        1001: {"q1": [row("q1", 0, "5", True, 1001)], "q2": [row("q2", 0, "7", True, 1001)]},
        4000: {"q1": [row("q1", 0, "5", True, 4000)], "q2": [row("q2", 0, "7", True, 4000)]},
    }
    points = [point_summary(capped(c), QUESTIONS, rows) for c, rows in rows_at.items()]
    method = method_summary(points)
    assert method["scaling_pairs"] == 3 and method["scaling_close_pairs"] == [[1000, 1001]]
    assert method["compute"] == "thinking_tokens"
    table = render(
        {
            "model": "m",
            "dataset": "d",
            "questions": 2,
            "scaling_unit": SCALING_UNIT,
            "methods": {"budget": method},
            "requests_sent": 0,
            "wall_s": 0.0,
            "output_tokens_per_second": None,
        }
    )
    assert "| Method | Control | Scaling | Performance | \\|A\\| | Scaling pairs |" in table
    assert "| 3 |" in table.splitlines()[table.splitlines().index("| --- | ---: | ---: | ---: | ---: | ---: |") + 1]
    assert "Warning, budget" in table and "1000 vs 1001" in table and "1 of 3 pairs" in table
    assert SCALING_UNIT in table and "without a unit" in table

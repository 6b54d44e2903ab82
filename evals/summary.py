"""From sample rows to the curve points and the s1 metrics of each method (summary.json)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from evals import metrics
from evals.checkers import same_answer
from evals.methods import Point
from evals.tasks import Question


def point_summary(point: Point, questions: list[Question], rows_by_question: dict[str, list[dict[str, Any]]]) -> dict:
    """One curve point: accuracy (majority-voted when there are several samples) and the token statistics.

    Thinking per question is the sum over its samples, the compute spent on one (voted) answer, so
    parallel and sequential scaling share an x-axis; for one sample it is that sample's thinking.
    """
    correct = 0
    per_question_thinking: list[float] = []
    samples = [r for q in questions for r in rows_by_question.get(q.id, [])]
    checker_of = {q.id: q.checker for q in questions}
    for q in questions:
        rows = sorted(rows_by_question.get(q.id, []), key=lambda r: r["sample"])
        if len(rows) == 1:
            correct += bool(rows[0]["correct"])
        elif rows:
            voted = metrics.majority_vote(
                [r["extracted"] for r in rows], lambda a, b, c=checker_of[q.id]: same_answer(c, a, b)
            )
            correct += voted is not None and any(r["correct"] and r["extracted"] == voted for r in rows)
        counts = [r["thinking_tokens"] for r in rows]
        if rows and all(c is not None for c in counts):
            per_question_thinking.append(sum(counts))
    n = len(questions)
    thinking = [r["thinking_tokens"] for r in samples if r["thinking_tokens"] is not None]
    answer = [r["answer_tokens"] for r in samples if r["answer_tokens"] is not None]
    lower, upper = point.bounds
    mean_thinking = metrics.mean(per_question_thinking)
    output_tokens = sum(r["completion_tokens"] or 0 for r in samples)
    seconds = sum(r["latency_s"] for r in samples)
    low, high = metrics.wilson_interval(correct, n)
    return {
        "budget": point.budget,
        "kind": point.kind,
        "label": point.label,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": [low, high],
        "correct": correct,
        "n": n,
        "samples_per_question": point.samples,
        "mean_thinking_tokens": mean_thinking,
        "mean_thinking_tokens_per_sample": metrics.mean(thinking),
        "p50_thinking_tokens": metrics.percentile(thinking, 50),
        "p95_thinking_tokens": metrics.percentile(thinking, 95),
        "mean_answer_tokens": metrics.mean(answer),
        "p50_answer_tokens": metrics.percentile(answer, 50),
        "p95_answer_tokens": metrics.percentile(answer, 95),
        "requested_min_thinking": lower,
        "requested_max_thinking": upper,
        "within_bounds": None
        if (lower, upper) == (None, None) or mean_thinking is None
        else metrics.within(metrics.mean(thinking) or 0.0, lower, upper),
        "samples_within_bounds": None
        if (lower, upper) == (None, None) or len(thinking) < len(samples)
        else sum(metrics.within(t, lower, upper) for t in thinking) / len(thinking),
        "mean_waits_inserted": metrics.mean([r["waits_inserted"] for r in samples if r["waits_inserted"] is not None]),
        "forced_end_share": metrics.mean([float(r["forced_end"]) for r in samples if r["forced_end"] is not None]),
        "unanswered_share": metrics.mean([float(r["extracted"] is None) for r in samples]),
        "mean_tries": metrics.mean([r["tries"] for r in samples]),
        "request_seconds": round(seconds, 3),
        "output_tokens": output_tokens,
        "output_tokens_per_second": output_tokens / seconds if seconds > 0 else None,
    }


def method_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Points sorted by mean thinking tokens (unknown last), with Control, Scaling and Performance."""
    ordered = sorted(points, key=lambda p: (p["mean_thinking_tokens"] is None, p["mean_thinking_tokens"] or 0))
    measured = [p for p in ordered if p["mean_thinking_tokens"] is not None and p["accuracy"] is not None]
    bounded = [p for p in ordered if p["within_bounds"] is not None]
    sample_shares = [p["samples_within_bounds"] for p in ordered if p["samples_within_bounds"] is not None]
    return {
        "points": ordered,
        "control": sum(p["within_bounds"] for p in bounded) / len(bounded) if bounded else None,
        "control_samples": metrics.mean(sample_shares),
        "scaling": metrics.scaling([(p["mean_thinking_tokens"], p["accuracy"]) for p in measured]),
        "performance": metrics.performance([p["accuracy"] for p in ordered if p["accuracy"] is not None]),
        "budgets": len(ordered),
    }


def summarize(
    points: list[Point],
    questions: list[Question],
    rows: dict[str, dict[str, Any]],
    keys_of: Any,
    skip_methods: set[str],
) -> dict[str, dict[str, Any]]:
    """Per method, the summary of its points over the rows whose keys the current plan asks for."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point.method in skip_methods:
            continue
        rows_by_question: dict[str, list[dict[str, Any]]] = {}
        complete = []
        for q in questions:
            found = [rows.get(k) for k in keys_of(q, point)]
            if all(found):
                rows_by_question[q.id] = found  # type: ignore[assignment]
                complete.append(q)
        if complete:
            by_method[point.method].append(point_summary(point, complete, rows_by_question))
    return {method: method_summary(pts) for method, pts in by_method.items()}

"""From sample rows to the curve points and the s1 metrics of each method (summary.json).

Every row is regraded here from its stored `thinking` and `answer` against the current run's gold
answer and checker; the `extracted` and `correct` written into samples.jsonl when the row was made
are never reused, so a corrected gold answer or a fixed checker changes the summary without a request.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from evals import metrics
from evals.checkers import grade_output, same_answer
from evals.methods import Point
from evals.tasks import Question


def point_summary(point: Point, questions: list[Question], rows_by_question: dict[str, list[dict[str, Any]]]) -> dict:
    """One curve point: accuracy (majority-voted when there are several samples) and the token statistics.

    Thinking per question is the sum over its samples, the compute spent on one (voted) answer, so
    parallel and sequential scaling share an x-axis; for one sample it is that sample's thinking.
    """
    correct = 0
    per_question_thinking: list[float] = []
    per_question_completion: list[float] = []
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
        completion = [r["completion_tokens"] for r in rows]
        if rows and all(c is not None for c in completion):
            per_question_completion.append(sum(completion))
    n = len(questions)
    failed = [r for r in samples if is_failed(r)]
    answered = [r for r in samples if not is_failed(r)]
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
        "mean_completion_tokens": metrics.mean(per_question_completion)
        if len(per_question_completion) == len(questions)
        else None,
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
        if (lower, upper) == (None, None) or not thinking or len(thinking) < len(answered)
        else sum(metrics.within(t, lower, upper) for t in thinking) / len(thinking),
        "mean_waits_inserted": metrics.mean([r["waits_inserted"] for r in samples if r["waits_inserted"] is not None]),
        "forced_end_share": metrics.mean([float(r["forced_end"]) for r in samples if r["forced_end"] is not None]),
        "unanswered_share": metrics.mean([float(r["extracted"] is None) for r in samples]),
        "mean_tries": metrics.mean([r["tries"] for r in samples]),
        # Early exit (s1serve's `thinking.early_exit`, `probes`, `probe_tokens`): how often answer probes ended
        # the thinking, and the tokens they generated (never part of the answer, not in completion_tokens).
        "early_exit_share": metrics.mean([float(bool(r["early_exit"])) for r in _reported(answered, "early_exit")]),
        "mean_probe_tokens": metrics.mean([r["probe_tokens"] for r in _reported(answered, "probe_tokens")]),
        # Samples with no answer: refused by the endpoint, or (rejection) no try within the cap. Each counts
        # as a wrong answer and stays out of every token statistic.
        "failed_samples": len(failed),
        "failed_reasons": sorted({r.get("error") or r.get("failure") for r in failed}),
        "request_seconds": round(seconds, 3),
        "output_tokens": output_tokens,
        "output_tokens_per_second": output_tokens / seconds if seconds > 0 else None,
    }


def method_summary(points: list[dict[str, Any]], close_gap: float = metrics.CLOSE_PAIR_GAP) -> dict[str, Any]:
    """Points sorted by compute (unknown last), with Control, Scaling (and its fine print) and Performance.

    Compute is mean thinking tokens per question. Where every point thinks 0 tokens (a model that
    writes no thinking segment) that would put every point at x = 0 and leave Scaling undefined, so
    compute is then the completion tokens per question, and `compute` says so.
    """
    no_thinking = bool(points) and all(
        p["mean_thinking_tokens"] == 0 and p["mean_completion_tokens"] is not None for p in points
    )
    compute = "completion_tokens" if no_thinking else "thinking_tokens"
    for p in points:
        p["compute_tokens"] = p["mean_completion_tokens"] if no_thinking else p["mean_thinking_tokens"]
    ordered = sorted(points, key=lambda p: (p["compute_tokens"] is None, p["compute_tokens"] or 0))
    measured = [p for p in ordered if p["compute_tokens"] is not None and p["accuracy"] is not None]
    bounded = [p for p in ordered if p["within_bounds"] is not None]
    sample_shares = [p["samples_within_bounds"] for p in ordered if p["samples_within_bounds"] is not None]
    scaling = metrics.scaling_report([(p["compute_tokens"], p["accuracy"]) for p in measured], close_gap)
    return {
        "points": ordered,
        "compute": compute,
        "control": sum(p["within_bounds"] for p in bounded) / len(bounded) if bounded else None,
        "control_samples": metrics.mean(sample_shares),
        "scaling": scaling.value,
        "scaling_unit": metrics.scaling_unit(compute),
        "scaling_pairs": scaling.pairs,
        "scaling_close_pairs": [list(pair) for pair in scaling.close_pairs],
        "scaling_without_close_pairs": scaling.value_without_close,
        "performance": metrics.performance([p["accuracy"] for p in ordered if p["accuracy"] is not None]),
        "budgets": len(ordered),
        "failed_samples": sum(p["failed_samples"] for p in ordered),
    }


def _reported(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The `thinking` reports of the rows that carry `key` (None where none does)."""
    return [r["thinking_report"] for r in rows if key in (r.get("thinking_report") or {})]


def is_failed(row: dict[str, Any]) -> bool:
    return bool(row.get("error") or row.get("failure"))


def regrade(row: dict[str, Any], question: Question) -> dict[str, Any]:
    """The row graded from its stored output against `question`'s gold answer and checker."""
    if is_failed(row):
        return {**row, "gold": question.gold, "extracted": None, "correct": False}
    graded = grade_output(question.checker, question.gold, row.get("answer") or "", row.get("thinking") or "")
    return {**row, "gold": question.gold, "extracted": graded.extracted, "correct": graded.correct}


def summarize(
    points: list[Point],
    questions: list[Question],
    rows: dict[str, dict[str, Any]],
    keys_of: Any,
    skip_methods: set[str],
) -> dict[str, dict[str, Any]]:
    """Per method, the summary of its points over the rows whose keys the current plan asks for, regraded."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    regraded: dict[tuple[str, str], dict[str, Any]] = {}  # a pool row serves several majority points
    for point in points:
        if point.method in skip_methods:
            continue
        rows_by_question: dict[str, list[dict[str, Any]]] = {}
        complete = []
        for q in questions:
            keys = keys_of(q, point)
            if all(k in rows for k in keys):
                for k in keys:
                    if (q.id, k) not in regraded:
                        regraded[q.id, k] = regrade(rows[k], q)
                rows_by_question[q.id] = [regraded[q.id, k] for k in keys]
                complete.append(q)
        if complete:
            by_method[point.method].append(point_summary(point, complete, rows_by_question))
    return {method: method_summary(pts) for method, pts in by_method.items()}

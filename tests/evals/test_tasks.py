"""Benchmark records become prompts with the right gold answer and checker."""

from __future__ import annotations

import pytest

from evals.data import DataError
from evals.tasks import build_questions, detect_task

GPQA_ROW = {
    "Record ID": "rec1",
    "Question": "Which particle mediates the electromagnetic force?",
    "Correct Answer": "photon",
    "Incorrect Answer 1": "gluon",
    "Incorrect Answer 2": "W boson",
    "Incorrect Answer 3": "graviton",
}


def test_gpqa_gold_letter_points_at_the_correct_option() -> None:
    rows = [dict(GPQA_ROW, **{"Record ID": f"rec{i}"}) for i in range(12)]
    questions = build_questions(rows, "gpqa", "gpqa.jsonl", seed=0)
    for q in questions:
        assert q.checker == "letter"
        assert f"{q.gold}) photon" in q.prompt
        for option in ("gluon", "W boson", "graviton"):
            assert option in q.prompt
    # The source lists the correct answer first; shuffling must move it for some questions.
    assert len({q.gold for q in questions}) > 1


def test_gpqa_order_is_fixed_by_the_seed() -> None:
    rows = [dict(GPQA_ROW, **{"Record ID": f"rec{i}"}) for i in range(12)]
    first = build_questions(rows, "gpqa", "x", seed=0)
    assert build_questions(rows, "gpqa", "x", seed=0) == first
    assert [q.gold for q in build_questions(rows, "gpqa", "x", seed=1)] != [q.gold for q in first]


def test_task_detection_from_columns() -> None:
    assert detect_task([GPQA_ROW]) == "gpqa"
    assert detect_task([{"problem": "p", "answer": "204"}, {"problem": "q", "answer": 33}]) == "aime24"
    assert detect_task([{"problem": "p", "answer": "\\frac{1}{2}"}]) == "math500"
    assert detect_task([{"question": "q", "answer": "1"}]) == "generic"


def test_math_prompt_asks_for_a_boxed_answer() -> None:
    (q,) = build_questions([{"id": 7, "problem": "Find x.", "answer": "3"}], "aime24", "x")
    assert q.id == "7" and q.gold == "3" and q.checker == "math"
    assert q.prompt.startswith("Find x.") and "\\boxed{}" in q.prompt


def test_duplicate_ids_are_refused() -> None:
    rows = [{"id": 1, "question": "a", "answer": "1"}, {"id": 1, "question": "b", "answer": "2"}]
    with pytest.raises(DataError, match="not unique"):
        build_questions(rows, "generic", "dup.jsonl")

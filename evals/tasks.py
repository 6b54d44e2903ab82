"""Benchmarks as questions: each task knows its columns, its prompt and which answer checker grades it.

AIME24 and MATH500 ask for a boxed final answer; GPQA Diamond lists its four options in an order
shuffled with a fixed seed (the correct option is always first in the source data) and asks for the
letter. Anything else is a generic `question`/`answer` file graded as math.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from evals.data import DataError

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Think it through, then give the letter of the correct option on the last line as 'Answer: X'."
LETTERS = "ABCD"
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
TASKS = ("aime24", "math500", "gpqa", "generic")


@dataclass(frozen=True)
class Question:
    id: str
    prompt: str
    gold: str
    checker: str  # "math" or "letter"


def detect_task(rows: list[dict[str, Any]]) -> str:
    """The task whose columns the first record has: GPQA's, problem/answer (AIME if all integer), or generic."""
    keys = set(rows[0])
    if set(GPQA_COLUMNS) <= keys:
        return "gpqa"
    if {"problem", "answer"} <= keys:
        return "aime24" if all(_is_integer(r.get("answer")) for r in rows) else "math500"
    return "generic"


def build_questions(rows: list[dict[str, Any]], task: str, source: str, seed: int = 0) -> list[Question]:
    """Questions of `task` from raw records; a record lacking a needed column is a one-line DataError."""
    if task not in TASKS:
        raise DataError(f"--task {task}: unknown; use one of {', '.join(TASKS)}")
    needed = {
        "aime24": ("problem", "answer"),
        "math500": ("problem", "answer"),
        "gpqa": GPQA_COLUMNS,
        "generic": ("question", "answer"),
    }[task]
    questions = []
    for index, row in enumerate(rows):
        missing = [c for c in needed if row.get(c) is None]
        if missing:
            raise DataError(
                f"{source}: record {index + 1} lacks column(s) {', '.join(missing)} needed by task {task} "
                f"(it has {', '.join(sorted(row)) or 'none'})"
            )
        qid = str(next((row[k] for k in ("id", "ID", "unique_id", "Record ID") if row.get(k) is not None), index))
        if task == "gpqa":
            questions.append(_gpqa_question(row, qid, seed))
        else:
            text = row["problem"] if task in ("aime24", "math500") else row["question"]
            questions.append(Question(qid, f"{str(text).strip()}\n\n{MATH_INSTRUCTION}", str(row["answer"]), "math"))
    if len({q.id for q in questions}) != len(questions):
        raise DataError(f"{source}: record ids are not unique")
    return questions


def _gpqa_question(row: dict[str, Any], qid: str, seed: int) -> Question:
    options = [str(row[c]).strip() for c in GPQA_COLUMNS[1:]]
    order = list(range(4))
    random.Random(f"{seed}:{qid}").shuffle(order)  # the same order for this question on every run
    lines = [f"{LETTERS[i]}) {options[j]}" for i, j in enumerate(order)]
    gold = LETTERS[order.index(0)]
    prompt = f"{str(row['Question']).strip()}\n\n" + "\n".join(lines) + f"\n\n{CHOICE_INSTRUCTION}"
    return Question(qid, prompt, gold, "letter")


def _is_integer(value: Any) -> bool:
    try:
        return float(str(value).strip()) == int(str(value).strip())
    except ValueError:
        return False

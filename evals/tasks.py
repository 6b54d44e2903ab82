"""Benchmarks as questions: each task knows its columns, its prompt and which answer checker grades it.

AIME24 and MATH500 ask for a boxed final answer; GPQA Diamond lists its four options in an order
shuffled with a fixed seed (the correct option is always first in the source data) and asks for the
letter. Anything else is a generic `question`/`answer` file graded as math.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from evals.data import DataError

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Think it through, then give the letter of the correct option on the last line as 'Answer: X'."
LETTERS = "ABCD"
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
TASKS = ("aime24", "math500", "gpqa", "generic")


@dataclass(frozen=True)
class Question:
    """A question as s1's harness writes it (`text`: the problem, with GPQA's options), and the task's
    answer-format instruction, asked after the text and any method's prompt (empty: the text alone, as s1)."""

    id: str
    text: str
    gold: str
    checker: str  # "math" or "letter"
    instruction: str = ""

    @property
    def prompt(self) -> str:
        return f"{self.text}\n\n{self.instruction}" if self.instruction else self.text


def detect_task(rows: list[dict[str, Any]]) -> str:
    """The task whose columns the first record has: GPQA's, problem/answer (AIME if all integer), or generic."""
    keys = set(rows[0])
    if set(GPQA_COLUMNS) <= keys:
        return "gpqa"
    if {"problem", "answer"} <= keys:
        return "aime24" if all(_is_integer(r.get("answer")) for r in rows) else "math500"
    return "generic"


def build_questions(
    rows: list[dict[str, Any]], task: str, source: str, seed: int = 0, instruction: bool = True
) -> list[Question]:
    """Questions of `task` from raw records; a record lacking a needed column is a one-line DataError.

    Without `instruction` each question is its text alone, s1's prompt (s1's tasks add no instruction)."""
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
            question = _gpqa_question(row, qid, seed)
        else:
            text = row["problem"] if task in ("aime24", "math500") else row["question"]
            question = Question(qid, str(text).strip(), str(row["answer"]), "math", MATH_INSTRUCTION)
        questions.append(question if instruction else replace(question, instruction=""))
    if len({q.id for q in questions}) != len(questions):
        raise DataError(f"{source}: record ids are not unique")
    return questions


def _gpqa_question(row: dict[str, Any], qid: str, seed: int) -> Question:
    options = [str(row[c]).strip() for c in GPQA_COLUMNS[1:]]
    order = list(range(4))
    random.Random(f"{seed}:{qid}").shuffle(order)  # the same order for this question on every run
    lines = [f"{LETTERS[i]}) {options[j]}" for i, j in enumerate(order)]
    gold = LETTERS[order.index(0)]
    text = f"{str(row['Question']).strip()}\n\n" + "\n".join(lines)  # s1's gpqa_diamond_openai layout
    return Question(qid, text, gold, "letter", CHOICE_INSTRUCTION)


def _is_integer(value: Any) -> bool:
    try:
        return float(str(value).strip()) == int(str(value).strip())
    except ValueError:
        return False

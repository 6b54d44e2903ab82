"""Answer extraction and grading: the last final answer, compared by Math-Verify or as an option letter.

The answer graded is the response's last final answer, as in s1's harness (`lm_eval/tasks/aime/utils.py`
in simplescaling/lm-evaluation-harness): the last `\\boxed{...}` (braces matched, so nested braces stay
whole), else the last "Answer: ..." statement, taken whole ("3, 5, 10" is one answer, not a 3). Only a
response with neither falls back to Math-Verify's own extraction over the text (its last expression).
Math-Verify (Hugging Face's maintained checker) then compares the extracted answer with the gold one
symbolically, so `\\frac{1}{2}`, `1/2` and `0.5` agree. s1 compares integers as strings and asks
gpt-4o-mini about the rest; Math-Verify needs no API key and gives the same verdict on equal forms.
Its timeouts use SIGALRM, which only works in the main thread: elsewhere the checks run without one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from math_verify import parse, verify

GRADER_VERSION = 2  # bumped when extraction or comparison changes; summaries regrade every row anyway

_BOX_START = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# A committed answer: "Answer: X", "the answer is X", "Final Answer: X" (any case), to the end of its line.
_ANSWER_STATEMENT = re.compile(r"\banswer\b[\s*_]*(?:is\b|[:：=])[\s*_:：]*(?P<rest>[^\n]*)", re.IGNORECASE)
# Option letters: a capital A-D (or any case in parentheses), never followed by a letter or digit, so the
# article "a" of "the answer is a bit unclear" and words like "Apple" are not answers.
_LETTER = r"(?:\(([A-Da-d])\)|([A-D])(?![A-Za-z0-9]))"
_LETTER_COMMITMENT = re.compile(
    r"(?:\b(?i:answer)\b[\s*_]*(?:(?i:is)\b|[:：=])?|\b(?i:(?:correct|right|best|final)\s+(?:option|choice))\b"
    r"(?:\s+(?i:is)\b)?)[\s*_:：]*(?:\b(?i:option|choice)\s*)?" + _LETTER
)
_LEADING_LETTER = re.compile(r"^\s*(?:\\text(?:bf)?\{\s*)?(?:\(([A-Da-d])\)|([A-D]))(?![A-Za-z0-9])")
_LONE_LETTER = re.compile(r"^\s*[*_]*\(?([A-D])(?:\)|\.|:)?[*_]*\s*$")
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool


def _timeout() -> int | None:
    return 5 if threading.current_thread() is threading.main_thread() else None


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`), braces matched; None if none.

    As in s1's `last_boxed_only_string`, a last box that never closes (a cut-off response) gives None.
    """
    starts = list(_BOX_START.finditer(text))
    if not starts:
        return None
    i = starts[-1].end()
    if text.startswith(" ", i):  # `\boxed 5`: up to the end of the math or the line
        return re.split(r"[$\n]", text[i + 1 :], maxsplit=1)[0].strip() or None
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def _clean(answer: str) -> str:
    text = answer.strip().strip("*_").strip()
    text = text.rstrip(".").strip()
    for left, right in _DELIMITERS:
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            text = text[len(left) : -len(right)].strip()
            break
    return text.rstrip(".").strip()


def last_answer_statement(text: str) -> str | None:
    """What the last "Answer: ..." / "the answer is ..." says, whole; the next line when the rest is blank."""
    found = list(_ANSWER_STATEMENT.finditer(text))
    if not found:
        return None
    last = found[-1]
    rest = last.group("rest")
    if not rest.strip():
        following = [line for line in text[last.end() :].splitlines() if line.strip()]
        rest = following[0] if following else ""
    return _clean(rest) or None


def extract_math(text: str) -> str | None:
    """The response's last final answer as written: the last boxed one, else the last answer statement."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    stated = last_answer_statement(text)
    if stated is not None:
        return stated
    parsed = parse(text, parsing_timeout=_timeout())
    return str(parsed[1]) if len(parsed) > 1 else None


def _parse_answer(answer: str) -> list:
    text = answer.strip()
    if "\\boxed" not in text:
        # Boxed, a bare answer parses whole: `3, 5, 10` is one set and `\left( 3, \frac{\pi}{2} \right)` one tuple.
        text = f"\\boxed{{{text}}}"
    return parse(text, parsing_timeout=_timeout())


def math_equal(a: str, b: str) -> bool:
    """Whether two answers are mathematically equal (the gold answer goes first)."""
    return bool(verify(_parse_answer(a), _parse_answer(b), timeout_seconds=_timeout()))


def extract_letter(text: str) -> str | None:
    """The option letter A-D a response commits to, the last commitment winning.

    The last boxed answer first (`\\boxed{C}`, `\\boxed{\\text{C}}`, `\\boxed{C) 2.5 eV}`), then the last
    "Answer: C" / "the answer is option C" / "the correct choice is (C)", then a final line holding only
    a letter. A letter must stand alone: "the answer is a bit unclear" commits to nothing.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        match = _LEADING_LETTER.match(boxed)
        if match:
            return (match.group(1) or match.group(2)).upper()
    found = _LETTER_COMMITMENT.findall(text)
    if found:
        lower, upper = found[-1]
        return (lower or upper).upper()
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            match = _LONE_LETTER.match(line)
            return match.group(1) if match else None
    return None


def grade(checker: str, gold: str, response: str) -> Grade:
    """Extract the answer from `response` and compare it with `gold` using the named checker."""
    if checker == "letter":
        letter = extract_letter(response)
        return Grade(letter, letter == gold.strip().upper())
    extracted = extract_math(response)
    return Grade(extracted, extracted is not None and math_equal(gold, extracted))


def grade_output(checker: str, gold: str, answer: str, thinking: str) -> Grade:
    """Grade a stored sample: its answer, or its thinking when it never left the thinking."""
    return grade(checker, gold, answer if answer.strip() else thinking)


def same_answer(checker: str, a: str, b: str) -> bool:
    """Whether two extracted answers count as one in a majority vote."""
    if checker == "letter":
        return a == b
    return a == b or math_equal(a, b)

"""Answer extraction and grading: math equivalence by Math-Verify, option letters by pattern.

Math-Verify (Hugging Face's maintained checker, used by open-r1 and lighteval) parses LaTeX and plain
expressions into SymPy and compares them symbolically, so `\\frac{1}{2}`, `1/2` and `0.5` agree and
a boxed answer wins over numbers elsewhere in the text. Its timeouts use SIGALRM, which only works in
the main thread: elsewhere the checks run without a timeout.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from math_verify import parse, verify

_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?\(?([A-D])\)?\s*\}?\s*\}")
_ANSWER_LETTER = re.compile(r"answer(?:\s+is)?\s*[:：]?\s*[*_]*\s*\(?([A-D])\)?(?![A-Za-z0-9])", re.IGNORECASE)
_LONE_LETTER = re.compile(r"^\s*[*_]*\(?([A-D])(?:\)|\.|:)?[*_]*\s*$")


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool


def _timeout() -> int | None:
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse_gold(gold: str) -> list:
    text = gold.strip()
    if "\\boxed" not in text and "$" not in text:
        text = f"\\boxed{{{text}}}"  # bare LaTeX (`\left( 3, \frac{\pi}{2} \right)`) parses whole only when delimited
    return parse(text, parsing_timeout=_timeout())


def extract_math(text: str) -> str | None:
    """The final answer Math-Verify finds in a response (a boxed answer first), as written; None if none."""
    parsed = parse(text, parsing_timeout=_timeout())
    return str(parsed[1]) if len(parsed) > 1 else None


def math_equal(a: str, b: str) -> bool:
    """Whether two answers are mathematically equal (the gold answer goes first)."""
    return bool(verify(_parse_gold(a), _parse_gold(b), timeout_seconds=_timeout()))


def extract_letter(text: str) -> str | None:
    """The option letter A-D a response commits to: boxed, then 'Answer: X' (the last one), then a lone final line."""
    for pattern in (_BOXED_LETTER, _ANSWER_LETTER):
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
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


def same_answer(checker: str, a: str, b: str) -> bool:
    """Whether two extracted answers count as one in a majority vote."""
    if checker == "letter":
        return a == b
    return a == b or math_equal(a, b)

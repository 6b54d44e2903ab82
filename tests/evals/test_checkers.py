"""Answer checkers on responses written the way AIME, MATH and GPQA answers come back from models."""

from __future__ import annotations

import pytest

from evals.checkers import extract_letter, grade, last_boxed

AIME_RESPONSE = (
    "Let the first term be a. Then 3a + 12 = 216, so a = 68. Adding the remaining terms gives 204.\n\n"
    "**Final Answer**\n\\boxed{204}"
)


@pytest.mark.parametrize(
    ("gold", "response", "correct"),
    [
        ("204", AIME_RESPONSE, True),
        ("68", AIME_RESPONSE, False),  # 68 appears in the working, but the boxed answer is what counts
        ("033", "So m + n = 33, and the answer is $\\boxed{33}$.", True),  # AIME golds may keep leading zeros
        ("\\frac{14}{3}", "Final Answer: 14/3", True),
        ("\\frac{1}{2}", "The probability is \\boxed{0.5}.", True),
        ("\\dfrac{9}{7}", "Therefore $x = \\boxed{\\frac{9}{7}}$", True),
        ("\\frac{9}{7}", "Therefore $x = \\boxed{\\frac{7}{9}}$", False),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "In polar form: $\\boxed{(3,\\frac{\\pi}{2})}$", True),
        ("11\\sqrt2", "The side is \\boxed{11\\sqrt{2}}.", True),
        ("p - q", "Hence the sum equals \\boxed{p-q}.", True),
        ("\\text{Evelyn}", "The fastest is \\boxed{\\text{Evelyn}}", True),
        ("5", "I am not sure.", False),
        # The last final answer counts: an earlier boxed value is working, not a second answer.
        ("14", "First I got \\boxed{12}, but I dropped a term, so \\boxed{14}", True),
        ("12", "First I got \\boxed{12}, but I dropped a term, so \\boxed{14}", False),
        # A stated list is one answer: it is not a 3 because it starts with one.
        ("3", "The answer: 3, 5, 10", False),
        ("3, 5, 10", "The answer: 3, 5, 10", True),
        ("3", "The answer is 3 after all. Earlier I wrote the answer is 5? No.\nThe answer is 3", True),
        # Nested braces stay inside their box.
        ("\\frac{1}{\\sqrt{2}}", "so $x = \\boxed{\\frac{1}{\\sqrt{2}}}$ and we are done", True),
        ("14", "**Final Answer:** 14", True),
    ],
)
def test_math_answers(gold: str, response: str, correct: bool) -> None:
    assert grade("math", gold, response).correct is correct


def test_math_extracts_the_boxed_answer_as_written() -> None:
    assert grade("math", "204", AIME_RESPONSE).extracted == "204"
    assert grade("math", "5", "I am not sure.").extracted is None


@pytest.mark.parametrize(
    ("response", "boxed"),
    [
        ("\\boxed{12} then \\boxed{\\frac{a}{b^{2}}} end", "\\frac{a}{b^{2}}"),
        ("$\\boxed 7$ apples", "7"),
        ("\\fbox{9}", "9"),
        ("\\boxed{3} and then the cut-off \\boxed{1", None),  # the last box never closes: no boxed answer
        ("no box here", None),
    ],
)
def test_last_boxed_matches_braces(response: str, boxed: str | None) -> None:
    assert last_boxed(response) == boxed


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("The wavelength shifts to the red, so the answer is (C).", "C"),
        ("Option B fails the unit check.\nAnswer: D", "D"),
        ("Answer: A\n\nOn reflection the energy is lower.\nAnswer: **B**", "B"),  # the last commitment wins
        ("The correct choice is $\\boxed{C}$", "C"),
        ("\\boxed{\\text{A}}", "A"),
        ("Comparing the options, B has the right symmetry.\n\nB", "B"),
        ("A molecule with a chiral centre cannot be achiral.", None),  # the article 'A' is not an answer
        ("Hmm, the answer is a bit unclear from the data.", None),  # nor is the article 'a'
        ("Comparing the energies, the answer is option B.", "B"),
        ("Both fit, but the correct option is B", "B"),
        ("The photon energy is \\boxed{C) 2.5 eV}", "C"),
        ("First (A) looked right, but the answer is (b).", "B"),  # a letter in parentheses may be lower case
    ],
)
def test_letter_extraction(response: str, letter: str | None) -> None:
    assert extract_letter(response) == letter


def test_letter_grading_compares_with_the_gold_letter() -> None:
    assert grade("letter", "C", "so the answer is (C)").correct
    assert not grade("letter", "C", "so the answer is (B)").correct
    assert not grade("letter", "C", "no idea").correct

"""Each method expands into the requests the s1 paper describes for it."""

from __future__ import annotations

import pytest

from evals.methods import PlanError, Sweep, parse_methods, plan

SWEEP = Sweep(max_thinking=(8, 16), min_thinking=(4,), num_ignore=(2,), steps=(3,), tokens_per_step=10, samples=(1, 4))


def test_budget_points_cap_floor_and_ignore() -> None:
    points = plan(["budget"], SWEEP)
    assert [(p.label, p.thinking_budget, p.bounds) for p in points] == [
        ("max_thinking=8", {"max_tokens": 8}, (None, 8)),
        ("max_thinking=16", {"max_tokens": 16}, (None, 16)),
        ("min_thinking=4", {"min_tokens": 4, "wait_text": "Wait"}, (4, None)),
        ("num_ignore=2", {"num_ignore": 2, "wait_text": "Wait"}, (None, None)),
    ]


# s1's own prompts, copied here from simplescaling/s1 eval/lm-evaluation-harness/lm_eval/tasks/aime/utils.py
# (PROMPTLONG, PROMPTSHORT), independent of evals/methods.py.
S1_LONG = (
    "Answer after a long amount of thinking. If you feel like you are finished early, spend the extra time trying "
    "to double-check your work until you are absolutely sure that you have the correct answer."
)
S1_SHORT = "Answer after a short amount of thinking. Do not spend excessive time double-checking your work."


def test_conditional_prompts_alone_and_with_budget_forcing() -> None:
    plain, forced = plan(["token-conditional"], SWEEP)[0], plan(["token-conditional+budget"], SWEEP)[0]
    assert plain.prompt_suffix == forced.prompt_suffix == "Think for up to 8 tokens."
    assert plain.thinking_budget is None and forced.thinking_budget == {"max_tokens": 8}
    (steps,) = plan(["step-conditional"], SWEEP)
    assert steps.prompt_suffix == "Think for up to 3 steps." and steps.thinking_budget is None


def test_class_conditional_prompts_are_s1s_own_words() -> None:
    short, long = plan(["class-conditional"], SWEEP)
    assert (short.budget, short.prompt_suffix) == ("short", S1_SHORT)
    assert (long.budget, long.prompt_suffix) == ("long", S1_LONG)


def test_step_conditional_with_budget_forcing_stops_at_the_countdown_not_at_n_times_100() -> None:
    """s1's run: max_tokens_thinking=auto, until_thinking=<|im_start|>0 (the countdown's last step)."""
    (steps,) = plan(["step-conditional+budget"], SWEEP)
    assert steps.prompt_suffix == "Think for up to 3 steps."
    assert steps.thinking_budget == {"max_tokens": "auto", "until": "<|im_start|>0"}
    assert steps.bounds == (None, 30)  # Control still judges a step as tokens_per_step tokens


def test_rejection_tries_stop_at_cap_plus_one_and_majority_samples() -> None:
    rejection = plan(["rejection"], Sweep(max_thinking=(8, 16), max_tries=5))
    assert [(p.rejection_cap, p.thinking_budget, p.max_tries) for p in rejection] == [
        (8, {"max_tokens": 9}, 5),
        (16, {"max_tokens": 17}, 5),
    ]
    majority = plan(["majority"], SWEEP)
    assert [(p.samples, p.sampled, p.bounds) for p in majority] == [(1, True, (None, None)), (4, True, (None, None))]


def test_unknown_or_empty_methods_are_refused() -> None:
    with pytest.raises(PlanError, match="unknown class-conditional\\+budget"):
        parse_methods("budget,class-conditional+budget")
    with pytest.raises(PlanError, match="budget list is empty"):
        plan(["majority"], Sweep(samples=()))

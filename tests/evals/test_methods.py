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


def test_conditional_prompts_alone_and_with_budget_forcing() -> None:
    plain, forced = plan(["token-conditional"], SWEEP)[0], plan(["token-conditional+budget"], SWEEP)[0]
    assert plain.prompt_suffix == forced.prompt_suffix == "Think for up to 8 tokens."
    assert plain.thinking_budget is None and forced.thinking_budget == {"max_tokens": 8}
    (steps,) = plan(["step-conditional+budget"], SWEEP)
    assert steps.prompt_suffix == "Think for up to 3 steps." and steps.thinking_budget == {"max_tokens": 30}
    assert [p.budget for p in plan(["class-conditional"], SWEEP)] == ["short", "long"]


def test_rejection_and_majority_sample() -> None:
    rejection = plan(["rejection"], SWEEP)
    assert [(p.rejection_cap, p.thinking_budget, p.sampled) for p in rejection] == [(8, None, True), (16, None, True)]
    majority = plan(["majority"], SWEEP)
    assert [(p.samples, p.sampled, p.bounds) for p in majority] == [(1, True, (None, None)), (4, True, (None, None))]


def test_unknown_or_empty_methods_are_refused() -> None:
    with pytest.raises(PlanError, match="unknown class-conditional\\+budget"):
        parse_methods("budget,class-conditional+budget")
    with pytest.raises(PlanError, match="budget list is empty"):
        plan(["majority"], Sweep(samples=()))

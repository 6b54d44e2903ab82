"""The strict `thinking_budget` parser and the spec's JSON round trip (pure logic)."""

from __future__ import annotations

import json

import pytest

from budget.spec import BudgetError, BudgetSpec, parse_thinking_budget


def test_int_is_the_cap_and_auto_is_the_automatic_cap() -> None:
    assert parse_thinking_budget(7) == BudgetSpec(max_tokens=7)
    assert parse_thinking_budget(0) == BudgetSpec(max_tokens=0)
    assert parse_thinking_budget("auto").auto
    assert parse_thinking_budget({"max_tokens": "auto"}).max_tokens == "auto"


def test_object_with_every_key() -> None:
    value = {
        "max_tokens": 100,
        "min_tokens": 10,
        "num_ignore": 2,
        "wait_text": "Hmm",
        "final_answer_text": "Answer:",
        "sampling": {"temperature": 0.6, "top_k": 20, "repetition_penalty": 1.1},
        "profile": "exact",
        "cap_message": "Time is up.",
        "grace_tokens": 16,
    }
    spec = parse_thinking_budget(value)
    assert spec.max_tokens == 100 and spec.min_tokens == 10 and spec.num_ignore == 2
    assert spec.wait_text == "Hmm" and spec.final_answer_text == "Answer:"
    assert dict(spec.sampling) == {"temperature": 0.6, "top_k": 20, "repetition_penalty": 1.1}
    assert spec.profile == "exact" and spec.cap_message == "Time is up." and spec.grace_tokens == 16


def test_absent_keys_take_defaults_and_null_cap_means_no_cap() -> None:
    spec = parse_thinking_budget({"min_tokens": 3, "max_tokens": None})
    assert spec == BudgetSpec(min_tokens=3)
    assert spec.wait_text == "Wait" and spec.profile is None and dict(spec.sampling) == {}


def test_num_ignore_without_wait_text_is_allowed() -> None:
    spec = parse_thinking_budget({"num_ignore": 2, "wait_text": ""})
    assert spec.num_ignore == 2 and spec.wait_text == ""


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"max_tokens": 1, "nope": 2}, "thinking_budget.nope"),
        ({"max_tokens": "1"}, "thinking_budget.max_tokens"),
        ({"max_tokens": "AUTO"}, "thinking_budget.max_tokens"),
        ({"max_tokens": True}, "thinking_budget.max_tokens"),
        ({"max_tokens": 2.0}, "thinking_budget.max_tokens"),
        ({"max_tokens": -1}, "thinking_budget.max_tokens"),
        ({"min_tokens": -2}, "thinking_budget.min_tokens"),
        ({"min_tokens": None}, "thinking_budget.min_tokens"),
        ({"num_ignore": True}, "thinking_budget.num_ignore"),
        ({"num_ignore": "1"}, "thinking_budget.num_ignore"),
        ({"grace_tokens": -1}, "thinking_budget.grace_tokens"),
        ({"wait_text": 5}, "thinking_budget.wait_text"),
        ({"final_answer_text": None}, "thinking_budget.final_answer_text"),
        ({"cap_message": ["x"]}, "thinking_budget.cap_message"),
        ({"max_tokens": 5, "min_tokens": 6}, "thinking_budget.min_tokens"),
        ({"profile": "s1"}, "thinking_budget.profile"),
        ({"profile": "harness", "cap_message": "x"}, "thinking_budget.cap_message"),
        ({"profile": "harness", "grace_tokens": 4}, "thinking_budget.grace_tokens"),
        ({"sampling": 0.5}, "thinking_budget.sampling"),
        ({"sampling": {"seed": 1}}, "thinking_budget.sampling.seed"),
        ({"sampling": {"temperature": "0"}}, "thinking_budget.sampling.temperature"),
        ({"sampling": {"temperature": True}}, "thinking_budget.sampling.temperature"),
        ({"sampling": {"temperature": -0.1}}, "thinking_budget.sampling.temperature"),
        ({"sampling": {"temperature": float("nan")}}, "thinking_budget.sampling.temperature"),
        ({"sampling": {"top_p": 0}}, "thinking_budget.sampling.top_p"),
        ({"sampling": {"top_k": 2.5}}, "thinking_budget.sampling.top_k"),
        ({"sampling": {"repetition_penalty": 0}}, "thinking_budget.sampling.repetition_penalty"),
        ({"sampling": {"presence_penalty": 2.5}}, "thinking_budget.sampling.presence_penalty"),
        (-3, "thinking_budget"),
        (True, "thinking_budget"),
        (1.5, "thinking_budget"),
        ("5", "thinking_budget"),
        ([5], "thinking_budget"),
    ],
)
def test_invalid_values_name_the_field(value: object, param: str) -> None:
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget(value)
    assert err.value.param == param
    assert param in err.value.message


def test_param_prefix_names_the_request_spelling() -> None:
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget(-1, param="thinking.budget_tokens")
    assert err.value.param == "thinking.budget_tokens"
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget({"max_tokens": 2, "min_tokens": 3}, param="x.budget")
    assert err.value.param == "x.budget.min_tokens" and "thinking_budget" not in err.value.message


@pytest.mark.parametrize(
    "spec",
    [
        BudgetSpec(),
        BudgetSpec.disabled(),
        BudgetSpec(max_tokens="auto", num_ignore=2, wait_text="", profile="harness"),
        BudgetSpec(
            max_tokens=9,
            min_tokens=3,
            final_answer_text="",
            sampling={"temperature": 1.0, "top_k": 5},
            cap_message="Stop.",
            grace_tokens=3,
            profile="exact",
        ),
    ],
)
def test_to_dict_round_trips_through_json(spec: BudgetSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    back = BudgetSpec.from_dict(data)
    assert back == spec
    assert back.to_dict() == spec.to_dict()
    assert type(back.sampling.get("top_k", 0)) is int


def test_from_dict_is_strict() -> None:
    with pytest.raises(BudgetError) as err:
        BudgetSpec.from_dict({"enabled": "no"})
    assert err.value.param == "thinking_budget.enabled"
    with pytest.raises(BudgetError) as err:
        BudgetSpec.from_dict({"max_tokens": 4, "extra": 1}, param="vllm_xargs.s1serve_budget")
    assert err.value.param == "vllm_xargs.s1serve_budget.extra"
    with pytest.raises(BudgetError):
        BudgetSpec.from_dict([1, 2])


def test_with_profile_fills_only_a_missing_profile() -> None:
    assert BudgetSpec().with_profile("harness").profile == "harness"
    assert BudgetSpec(profile="exact").with_profile("harness").profile == "exact"
    with pytest.raises(BudgetError) as err:
        BudgetSpec(cap_message="x").with_profile("harness")
    assert err.value.param == "thinking_budget.cap_message"


def test_check_context_ignores_auto() -> None:
    BudgetSpec(max_tokens="auto").check_context(1)
    with pytest.raises(BudgetError):
        BudgetSpec(max_tokens=10).check_context(9)

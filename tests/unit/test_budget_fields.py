"""Request translation: every budget spelling in a request body -> one BudgetSpec (pure logic, no engine)."""

from __future__ import annotations

import json

import pytest

from budget.formats import S1, THINK, detect_format
from budget.spec import BudgetError, BudgetSpec
from budget.splitter import TriggerHoldback
from server.engine.xargs import BUDGET_KEY, FORCED_KEY, spec_from_extra_args, spec_to_json
from server.http.budget_fields import EffortBudgets, resolve_budget

EFFORTS = EffortBudgets.parse("low=10,high=300")


def spec_of(endpoint: str = "chat", **fields) -> BudgetSpec | None:  # noqa: ANN003
    body = {"messages": [{"role": "user", "content": "x"}], **fields}
    return resolve_budget(body, endpoint, EFFORTS)


def test_no_fields_is_plain_generation() -> None:
    assert spec_of() is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking_budget": 7}, BudgetSpec(max_tokens=7)),
        (
            {"thinking_budget": {"max_tokens": 7, "min_tokens": 3, "num_ignore": 1, "wait_text": "Hmm"}},
            BudgetSpec(max_tokens=7, min_tokens=3, num_ignore=1, wait_text="Hmm"),
        ),
        ({"thinking_budget": {"min_tokens": 3}}, BudgetSpec(min_tokens=3)),
        ({"max_thinking_tokens": 7, "min_thinking_tokens": 2}, BudgetSpec(max_tokens=7, min_tokens=2)),
        ({"thinking_token_budget": 7}, BudgetSpec(max_tokens=7)),
        ({"thinking": {"type": "enabled", "budget_tokens": 7}}, BudgetSpec(max_tokens=7)),
        ({"thinking": {"type": "disabled"}}, BudgetSpec.disabled()),
        ({"reasoning_effort": "low"}, BudgetSpec(max_tokens=10, fit_to_context=True)),
        (
            {"reasoning_effort": "medium"},
            BudgetSpec(max_tokens=4096, fit_to_context=True),
        ),  # unset levels keep the defaults
        ({"reasoning_effort": "high"}, BudgetSpec(max_tokens=300, fit_to_context=True)),
        ({"reasoning_effort": "none"}, BudgetSpec.disabled()),
        ({"reasoning_effort": "minimal"}, BudgetSpec(max_tokens=256, fit_to_context=True)),
        ({"reasoning_effort": "xhigh"}, BudgetSpec(max_tokens=32768, fit_to_context=True)),
        ({"reasoning_effort": "max"}, BudgetSpec(max_tokens=None, fit_to_context=True)),
    ],
)
def test_every_spelling_maps_to_one_spec(fields: dict, expected: BudgetSpec) -> None:
    assert spec_of(**fields) == expected


def test_two_spellings_are_rejected_naming_them() -> None:
    with pytest.raises(BudgetError) as err:
        spec_of(thinking_budget=5, reasoning_effort="low")
    assert err.value.param == "reasoning_effort" and "thinking_budget" in err.value.message


def test_flat_min_above_max_names_the_flat_field() -> None:
    with pytest.raises(BudgetError) as err:
        spec_of(max_thinking_tokens=3, min_thinking_tokens=4)
    assert err.value.param == "min_thinking_tokens"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"thinking_budget": {"max_tokens": 1, "nope": 2}}, "thinking_budget.nope"),
        ({"thinking_budget": {"max_tokens": "1"}}, "thinking_budget.max_tokens"),
        ({"thinking_budget": 1.5}, "thinking_budget"),
        ({"thinking_budget": {"max_tokens": -1}}, "thinking_budget.max_tokens"),
        ({"max_thinking_tokens": True}, "max_thinking_tokens"),
        ({"thinking_token_budget": -2}, "thinking_token_budget"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
def test_malformed_fields_are_rejected_naming_the_field(fields: dict, param: str) -> None:
    with pytest.raises(BudgetError) as err:
        spec_of(**fields)
    assert err.value.param == param


def test_spellings_leave_the_body_but_effort_stays_for_the_template() -> None:
    body = {"messages": [], "thinking_budget": 5, "max_tokens": 9}
    assert resolve_budget(body, "chat", EFFORTS) == BudgetSpec(max_tokens=5)
    assert body == {"messages": [], "max_tokens": 9, "vllm_xargs": {FORCED_KEY: 1}}
    body = {"messages": [], "reasoning_effort": "low"}
    assert resolve_budget(body, "chat", EFFORTS) == BudgetSpec(max_tokens=10, fit_to_context=True)
    assert body["reasoning_effort"] == "low"


def test_anthropic_thinking_on_messages_names_budget_tokens_and_keeps_disabled() -> None:
    body = {"thinking": {"type": "enabled", "budget_tokens": 12}}
    assert resolve_budget(body, "messages", EFFORTS) == BudgetSpec(max_tokens=12)
    assert "thinking" not in body  # vLLM would apply its own budget and its 1024-token minimum
    body = {"thinking": {"type": "disabled"}}
    assert resolve_budget(body, "messages", EFFORTS) == BudgetSpec.disabled()
    assert body["thinking"] == {"type": "disabled"}  # the template still hears it
    with pytest.raises(BudgetError) as err:
        resolve_budget({"thinking": {"type": "enabled", "budget_tokens": -3}}, "messages", EFFORTS)
    assert err.value.param == "thinking.budget_tokens"


def test_responses_reasoning_effort_is_a_spelling() -> None:
    budget = resolve_budget({"reasoning": {"effort": "low"}}, "responses", EFFORTS)
    assert budget == BudgetSpec(max_tokens=10, fit_to_context=True)
    with pytest.raises(BudgetError) as err:
        resolve_budget({"reasoning": {"effort": "low"}, "thinking_budget": 3}, "responses", EFFORTS)
    assert "reasoning.effort" in err.value.message


def test_spec_round_trips_through_vllm_xargs() -> None:
    spec = BudgetSpec(max_tokens=40, min_tokens=8, num_ignore=2, wait_text="Hmm", final_answer_text="A:")
    xargs = {BUDGET_KEY: spec_to_json(spec), "other": 1}
    assert json.loads(json.dumps(xargs))[BUDGET_KEY] == xargs[BUDGET_KEY]  # a plain JSON string, as vLLM requires
    assert spec_from_extra_args(xargs) == spec
    assert spec_from_extra_args({"other": 1}) is None and spec_from_extra_args(None) is None
    with pytest.raises(BudgetError):
        spec_from_extra_args({BUDGET_KEY: "{not json"})


def test_effort_parser_rejects_unknown_levels_and_reads_none() -> None:
    with pytest.raises(ValueError):
        EffortBudgets.parse("extreme=5")
    assert EffortBudgets.parse("high=none").caps["high"] is None


def test_format_detection_order() -> None:
    assert detect_format(model_name="x", chat_template=None, recorded="s1") is S1
    assert detect_format(model_name="simplescaling/s1.1-32B", chat_template=None) is S1
    assert detect_format(model_name="m", chat_template="{{ '<think>' }}") is THINK
    assert detect_format(model_name="m", chat_template="") is THINK


def test_trigger_holdback_releases_all_but_a_partial_trigger() -> None:
    h = TriggerHoldback("</think>")
    assert h.feed("abc <") == "abc "
    assert h.feed("/th") == ""
    assert h.feed("e") == "</the"  # not the trigger after all
    assert h.feed("x</think>tail") == "x"
    h = TriggerHoldback("</think>")
    assert h.feed("ok </") == "ok " and h.flush() == "</"

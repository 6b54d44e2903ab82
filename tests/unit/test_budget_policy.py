"""Request fields -> BudgetSpec, and the streaming thinking splitter (pure logic, no engine)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from budget.formats import S1, THINK, detect_format
from budget.spec import BudgetError, BudgetSpec
from budget.splitter import ThinkingSplitter, TriggerHoldback
from server.budget_policy import EffortBudgets, resolve_budget
from server.protocol import ChatCompletionRequest

EFFORTS = EffortBudgets.parse("low=10,high=300")


def spec_of(**fields) -> BudgetSpec | None:  # noqa: ANN003
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **fields})
    return resolve_budget(request, EFFORTS)


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
        ({"reasoning_effort": "low"}, BudgetSpec(max_tokens=10)),
        ({"reasoning_effort": "medium"}, BudgetSpec(max_tokens=4096)),  # unset levels keep the defaults
        ({"reasoning_effort": "high"}, BudgetSpec(max_tokens=300)),
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
    "fields",
    [
        {"thinking_budget": {"max_tokens": 1, "nope": 2}},
        {"thinking_budget": {"max_tokens": "1"}},
        {"thinking_budget": 1.5},
        {"thinking": {"type": "enabled"}},
        {"reasoning_effort": "max"},
    ],
)
def test_protocol_rejects_malformed_fields(fields: dict) -> None:
    with pytest.raises(ValidationError):
        spec_of(**fields)


def test_effort_parser_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError):
        EffortBudgets.parse("extreme=5")


def test_format_detection_order() -> None:
    assert detect_format(model_name="x", chat_template=None, recorded="s1") is S1
    assert detect_format(model_name="simplescaling/s1.1-32B", chat_template=None) is S1
    assert detect_format(model_name="m", chat_template="{{ '<think>' }}") is THINK
    assert detect_format(model_name="m", chat_template="") is THINK


def feed_all(splitter: ThinkingSplitter, pieces: list[str]) -> list[tuple[str, str]]:
    out = [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush()
    merged: list[tuple[str, str]] = []
    for segment, text in out:
        if merged and merged[-1][0] == segment:
            merged[-1] = (segment, merged[-1][1] + text)
        else:
            merged.append((segment, text))
    return merged


def test_splitter_finds_delimiters_split_across_deltas() -> None:
    pieces = ["<th", "ink>\nabc </th", "ink", ">\n\nthe answer"]
    assert feed_all(ThinkingSplitter(THINK, opened=False), pieces) == [("thinking", "abc "), ("answer", "the answer")]


def test_splitter_in_opened_prompt_and_without_thinking() -> None:
    assert feed_all(ThinkingSplitter(THINK, opened=True), ["\nx</think>\n\ny"]) == [("thinking", "x"), ("answer", "y")]
    assert feed_all(ThinkingSplitter(THINK, opened=False), ["a < b", " is true"]) == [("answer", "a < b is true")]


def test_trigger_holdback_releases_all_but_a_partial_trigger() -> None:
    h = TriggerHoldback("</think>")
    assert h.feed("abc <") == "abc "
    assert h.feed("/th") == ""
    assert h.feed("e") == "</the"  # not the trigger after all
    assert h.feed("x</think>tail") == "x"
    h = TriggerHoldback("</think>")
    assert h.feed("ok </") == "ok " and h.flush() == "</"

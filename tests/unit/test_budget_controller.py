"""Budget forcing decisions on scripted token streams (fake codec and engine, no model)."""

from __future__ import annotations

import pytest

from budget.controller import FormatTokens, strip_text_delimiter
from budget.formats import S1, THINK
from budget.spec import BudgetError, BudgetSpec
from tests.unit.scripted import THINK_VOCAB, FakeCodec, run_controller

S1_VOCAB = [
    "a",
    "b",
    "c",
    " ",
    "\n",
    "Wait",
    "Hmm",
    "Final",
    " Answer",
    ":",
    "<|im_start|>",
    "think",
    "answer",
    "<eos>",
    "ans",
]


@pytest.fixture
def think() -> FakeCodec:
    return FakeCodec(THINK_VOCAB)


@pytest.fixture
def s1() -> FakeCodec:
    return FakeCodec(S1_VOCAB)


def text(codec: FakeCodec, ids: list[int]) -> str:
    return codec.decode(ids)


def test_format_tokens_single_and_multi_token_triggers(think: FakeCodec, s1: FakeCodec) -> None:
    assert FormatTokens.build(S1, s1.encode).single_token_trigger
    multi = FormatTokens.build(THINK, think.encode)
    assert not multi.single_token_trigger
    assert multi.trigger_ids == (think.id("</"), think.id("think"), think.id(">"))


def test_no_budget_pressure_natural_end_keeps_thinking_and_answers(s1: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=50), S1, s1, ["a", "b", "<|im_start|>", "\n", "ans", "<eos>"])
    # The trigger is replaced by the full end delimiter; the model writes the answer after it.
    assert text(s1, ctl.completion_ids) == "ab<|im_start|>answer\nans<eos>"
    assert ctl.report.public() == {"thinking_tokens": 2, "answer_tokens": 3, "waits_inserted": 0, "forced_end": False}


def test_multi_token_delimiter_split_across_tokens_is_detected_and_stripped(think: FakeCodec) -> None:
    script = ["a", "b", "</", "think", ">", "ans", "<eos>"]
    ctl, engine, _ = run_controller(BudgetSpec(max_tokens=50), THINK, think, script)
    assert engine.rounds[0].stop == ("</think>",) and engine.rounds[0].stop_token_ids == ()
    assert text(think, ctl.thinking_ids) == "ab"
    assert text(think, ctl.completion_ids) == "ab</think>ans<eos>"
    assert ctl.report.thinking_tokens == 2


def test_token_straddling_the_delimiter_keeps_its_leading_text(think: FakeCodec) -> None:
    # "x</" carries an "x" of thinking before the delimiter begins.
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=50), THINK, think, ["a", "x</", "think", ">", "ans", "<eos>"])
    assert text(think, ctl.thinking_ids) == "ax"
    assert ctl.report.thinking_tokens == 2


def test_strip_text_delimiter_without_match_returns_ids_unchanged(think: FakeCodec) -> None:
    ids = think.encode("abc")
    assert strip_text_delimiter(ids, think.decode, "</think>") == (ids, "")


def test_eos_inside_thinking_is_an_end_attempt(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, num_ignore=1)
    ctl, _, _ = run_controller(spec, S1, s1, ["a", "<eos>", "b", "<eos>", "ans", "<eos>"])
    # First EOS overridden with Wait, the second accepted as the end of thinking.
    assert text(s1, ctl.completion_ids) == "aWaitb<|im_start|>answerans<eos>"
    assert ctl.report.waits_inserted == 1
    assert ctl.report.thinking_tokens == 3


def test_cap_forces_end_with_final_answer_exactly_at_max(s1: FakeCodec) -> None:
    script = ["a", "b", "c", "a", "b", "c", "ans", "<eos>"]
    ctl, engine, _ = run_controller(BudgetSpec(max_tokens=4), S1, s1, script)
    assert engine.rounds[0].max_tokens == 4
    assert ctl.report.thinking_tokens == 4 and ctl.report.forced_end
    # A newline is added because the thinking did not end in one (s1's rule).
    # The answer round continues the script where the thinking was cut.
    assert text(s1, ctl.completion_ids) == "abca\n<|im_start|>answer\nFinal Answer:bcans<eos>"
    assert ctl.report.inserted["final_answer"] == 3  # "Final", " Answer", ":"


def test_cap_after_newline_adds_no_extra_newline(s1: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=2), S1, s1, ["a", "\n", "ans", "<eos>"])
    assert text(s1, ctl.completion_ids) == "a\n<|im_start|>answer\nFinal Answer:ans<eos>"


def test_cap_reached_during_wait_insertion_forces_end_instead(s1: FakeCodec) -> None:
    # Wait is one token here: thinking 4 of max 4 after the attempt leaves no room for it.
    spec = BudgetSpec(max_tokens=4, min_tokens=4, wait_text="Wait Wait")
    ctl, _, _ = run_controller(spec, S1, s1, ["a", "b", "c", "<|im_start|>", "ans", "<eos>"])
    # 3 thinking tokens + "Wait Wait" (3 tokens) would cross 4: forced end, nothing inserted.
    assert ctl.report.waits_inserted == 0 and ctl.report.forced_end
    assert ctl.report.thinking_tokens == 3
    assert "Wait" not in text(s1, ctl.completion_ids)


def test_min_with_wait_text_overrides_early_attempts(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, min_tokens=4)
    script = ["a", "<|im_start|>", "b", "<|im_start|>", "c", "<|im_start|>", "ans", "<eos>"]
    ctl, _, _ = run_controller(spec, S1, s1, script)
    # a(1) W(2) b(3) W(4) -> min reached; the third attempt ends thinking.
    assert text(s1, ctl.thinking_ids) == "aWaitbWaitc"
    assert ctl.report.waits_inserted == 2 and ctl.report.thinking_tokens == 5


def test_min_without_wait_text_masks_the_delimiter(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, min_tokens=3, wait_text="")
    script = ["a", "<|im_start|>", "b", "c", "<|im_start|>", "ans", "<eos>"]
    ctl, engine, _ = run_controller(spec, S1, s1, script)
    assert engine.rounds[0].min_tokens == 3
    assert engine.masked == 1  # the early trigger never reached the sequence
    assert text(s1, ctl.thinking_ids) == "abc" and ctl.report.waits_inserted == 0


def test_min_without_wait_text_on_text_trigger_bans_the_words(think: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, min_tokens=2, wait_text="")
    ctl, engine, _ = run_controller(spec, THINK, think, ["a", "b", "</", "think", ">", "ans", "<eos>"])
    assert engine.rounds[0].bad_words == ("</think>",) and engine.rounds[0].min_tokens == 2
    assert ctl.report.thinking_tokens == 2


def test_num_ignore_overrides_the_first_n_attempts_then_accepts(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, num_ignore=2, wait_text="Hmm")
    script = ["a", "<|im_start|>", "b", "<|im_start|>", "c", "<|im_start|>", "ans", "<eos>"]
    ctl, _, actions = run_controller(spec, S1, s1, script)
    assert text(s1, ctl.thinking_ids) == "aHmmbHmmc"
    assert ctl.report.waits_inserted == 2
    assert [i.kind for a in actions for i in a.inserts] == ["wait", "wait", "delimiter"]


def test_zero_budget_answers_at_once_with_forced_end(s1: FakeCodec) -> None:
    ctl, engine, actions = run_controller(BudgetSpec(max_tokens=0), S1, s1, ["ans", "<eos>"])
    assert engine.rounds[0].segment == "answer"
    assert ctl.report.thinking_tokens == 0 and ctl.report.forced_end
    assert text(s1, ctl.completion_ids) == "<|im_start|>answer\nFinal Answer:ans<eos>"


def test_disabled_thinking_closes_the_segment_without_final_answer(think: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec.disabled(), THINK, think, ["ans", "<eos>"])
    assert text(think, ctl.completion_ids) == "</think>\n\nans<eos>"
    assert ctl.report.thinking_tokens == 0 and not ctl.report.forced_end


def test_total_limit_bounds_thinking_and_inserted_text(s1: FakeCodec) -> None:
    ctl, engine, actions = run_controller(BudgetSpec(max_tokens=50), S1, s1, ["a"] * 10, total_limit=5)
    assert engine.rounds[0].max_tokens == 5
    assert actions[-1].finish_reason == "length"
    assert len(ctl.completion_ids) == 5 and ctl.segment == "thinking"


def test_forced_end_that_does_not_fit_the_total_finishes_with_length(s1: FakeCodec) -> None:
    # cap 3 reached at total 3 of 5: the 6-token forced end does not fit in the 2 left.
    ctl, _, actions = run_controller(BudgetSpec(max_tokens=3), S1, s1, ["a", "b", "c"], total_limit=5)
    assert actions[-1].finish_reason == "length" and len(ctl.completion_ids) == 3


def test_thinking_never_exceeds_cap_with_many_waits(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=6, min_tokens=6)
    script = ["<|im_start|>", "a", "<|im_start|>", "b", "<|im_start|>", "c", "a", "ans", "<eos>"]
    ctl, _, _ = run_controller(spec, S1, s1, script)
    assert ctl.report.thinking_tokens <= 6


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_tokens": 5, "min_tokens": 6}, "thinking_budget.min_tokens"),
        ({"max_tokens": -1}, "thinking_budget.max_tokens"),
        ({"min_tokens": -2}, "thinking_budget.min_tokens"),
        ({"max_tokens": 2.5}, "thinking_budget.max_tokens"),
        ({"num_ignore": True}, "thinking_budget.num_ignore"),
    ],
)
def test_invalid_specs_name_the_field(kwargs: dict, param: str) -> None:
    with pytest.raises(BudgetError) as err:
        BudgetSpec(**kwargs)
    assert err.value.param == param


def test_cap_beyond_context_is_rejected() -> None:
    with pytest.raises(BudgetError) as err:
        BudgetSpec(max_tokens=100).check_context(99)
    assert err.value.param == "thinking_budget.max_tokens"
    BudgetSpec(max_tokens=99).check_context(99)

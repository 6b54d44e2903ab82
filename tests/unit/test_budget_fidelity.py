"""Forcing rules that bring the controller in line with s1's evaluation harness, and the two
optional features (cap message, grace tokens), on scripted token streams (fake codec and engine)."""

from __future__ import annotations

import pytest

from budget.controller import AUTO_ANSWER_RESERVE, EndAttempt, FormatTokens, ThinkingController, sentence_end
from budget.formats import S1, THINK
from budget.spec import BudgetError, BudgetSpec
from tests.unit.scripted import FakeCodec, run_controller

VOCAB = [
    "a",
    "b",
    "c",
    " ",
    "\n",
    ".",
    ". ",
    "x.",
    "Wait",
    "Hmm Hmm",
    "Final",
    " Answer",
    ":",
    "<|im_start|>",
    "think",
    "answer",
    "<eos>",
    "ans",
    "Stop",
    "!",
    "</think>",
    "<think>",
]
T = "<|im_start|>"


@pytest.fixture
def s1() -> FakeCodec:
    return FakeCodec(VOCAB)


def text(codec: FakeCodec, ids: list[int]) -> str:
    return codec.decode(ids)


# -- 1. the opener -----------------------------------------------------------------------------


def test_opener_is_the_bare_start_delimiter(s1: FakeCodec) -> None:
    # s1's harness appends `<|im_start|>think` and lets the model write the newline.
    assert FormatTokens.build(S1, s1.encode).start_ids == (s1.id(T), s1.id("think"))
    assert FormatTokens.build(THINK, s1.encode).start_ids == (s1.id("<think>"),)


def test_newline_the_model_writes_after_the_opener_counts_as_thinking(s1: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=3), S1, s1, ["\n", "a", "b", "ans", "<eos>"])
    assert text(s1, ctl.thinking_ids) == "\nab" and ctl.report.thinking_tokens == 3


# -- 2. min_tokens=1 in every round once end attempts are ignored --------------------------------


def test_num_ignore_runs_every_thinking_round_with_min_tokens_one(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, num_ignore=1)
    # After Wait the model tries to end at once: the engine masks that attempt (min_tokens=1).
    script = ["a", T, T, "b", T, "ans", "<eos>"]
    ctl, engine, _ = run_controller(spec, S1, s1, script)
    thinking_rounds = [r for r in engine.rounds if r.segment == "thinking"]
    assert [r.min_tokens for r in thinking_rounds] == [1, 1]
    assert engine.masked == 1
    assert text(s1, ctl.thinking_ids) == "aWaitb"
    assert ctl.report.waits_inserted == 1 and ctl.report.ends_ignored == 1


def test_min_with_wait_text_gets_min_tokens_one_after_an_override(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, min_tokens=3)
    ctl, engine, _ = run_controller(spec, S1, s1, ["a", T, T, "b", "c", T, "ans", "<eos>"])
    assert [r.min_tokens for r in engine.rounds if r.segment == "thinking"] == [0, 1]
    assert text(s1, ctl.thinking_ids) == "aWaitbc"


# -- 3. wait text that exactly fills the cap ------------------------------------------------------


def test_wait_text_exactly_filling_the_cap_closes_the_thinking_and_answers(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=4, num_ignore=1)
    ctl, engine, actions = run_controller(spec, S1, s1, ["a", "b", "c", T, "ans", "<eos>"])
    # 3 thinking tokens + Wait = 4 = the cap: forced end, then the answer round.
    assert text(s1, ctl.completion_ids) == "abcWait\n<|im_start|>answer\nFinal Answer:ans<eos>"
    assert actions[-1].finish_reason == "stop" and engine.rounds[-1].segment == "answer"
    assert ctl.report.forced_end and ctl.report.thinking_tokens == 4 and ctl.report.waits_inserted == 1


# -- 4. num_ignore without a string ---------------------------------------------------------------


def test_num_ignore_without_wait_text_drops_the_attempt_and_continues(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, num_ignore=2, wait_text="")
    ctl, engine, _ = run_controller(spec, S1, s1, ["a", T, "b", "<eos>", "c", T, "ans", "<eos>"])
    assert text(s1, ctl.thinking_ids) == "abc"
    assert ctl.report.waits_inserted == 0 and ctl.report.ends_ignored == 2
    assert ctl.report.public()["ends_ignored"] == 2
    assert all(r.min_tokens == 1 for r in engine.rounds if r.segment == "thinking")


# -- 5. max_tokens="auto" ---------------------------------------------------------------------------


def test_auto_cap_is_s1s_arithmetic(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    # A prompt of 18 tokens and the opener <|im_start|> think (2): 20 tokens.
    ctl = ThinkingController(BudgetSpec(max_tokens="auto"), tokens, s1, 300, prompt_tokens=20)
    # s1: max tokens - prompt - opener - len("<|im_start|>answer\nFinal Answer:") (6 tokens) - 100.
    assert ctl.cap == 300 - 18 - 2 - 6 - AUTO_ANSWER_RESERVE == 174
    assert ctl.start().round.max_tokens == 174
    assert ctl.report.thinking_cap == 174


def test_auto_needs_the_prompt_length_and_room(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    with pytest.raises(ValueError):
        ThinkingController(BudgetSpec(max_tokens="auto"), tokens, s1, 300)
    with pytest.raises(BudgetError) as err:
        ThinkingController(BudgetSpec(max_tokens="auto"), tokens, s1, 100, prompt_tokens=20)
    assert err.value.param == "thinking_budget.max_tokens"


def test_auto_clamps_min_to_the_resolved_cap(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    ctl = ThinkingController(BudgetSpec(max_tokens="auto", min_tokens=500), tokens, s1, 300, prompt_tokens=20)
    assert ctl.min_tokens == ctl.cap


# -- 6. thinking-only sampling ------------------------------------------------------------------------


def test_sampling_overrides_apply_to_thinking_rounds_only(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=50, num_ignore=1, sampling={"temperature": 0.7, "top_k": 3})
    _, engine, _ = run_controller(spec, S1, s1, ["a", T, "b", T, "ans", "<eos>"])
    assert [dict(r.sampling) for r in engine.rounds] == [{"temperature": 0.7, "top_k": 3}] * 2 + [{}]


# -- text triggers: a masking ban lifts at the floor ------------------------------------------------


def test_bad_words_round_ends_at_the_floor_so_the_ban_lifts(s1: FakeCodec) -> None:
    codec = FakeCodec([*VOCAB, "</", ">"])
    codec.vocab.remove("</think>")  # a multi-token trigger
    codec = FakeCodec(codec.vocab)
    spec = BudgetSpec(max_tokens=50, min_tokens=2, wait_text="")
    ctl, engine, _ = run_controller(spec, THINK, codec, ["a", "b", "c", "</", "think", ">", "ans", "<eos>"])
    assert engine.rounds[0].bad_words == ("</think>",) and engine.rounds[0].max_tokens == 2
    assert engine.rounds[1].bad_words == () and engine.rounds[1].max_tokens == 48
    assert text(codec, ctl.thinking_ids) == "abc"


# -- the harness profile -----------------------------------------------------------------------------


def harness(**kw: object) -> BudgetSpec:
    return BudgetSpec(profile="harness", **kw)  # type: ignore[arg-type]


def test_harness_rounds_each_get_the_full_cap_and_later_ones_are_provisional(s1: FakeCodec) -> None:
    ctl, engine, _ = run_controller(
        harness(max_tokens=6, num_ignore=2), S1, s1, ["a", T, "b", T, "c", T, "ans", "<eos>"]
    )
    thinking = [r for r in engine.rounds if r.segment == "thinking"]
    assert [r.max_tokens for r in thinking] == [6, 6, 6]
    assert [r.provisional for r in thinking] == [False, True, True]
    assert [r.min_tokens for r in thinking] == [1, 1, 1]
    # 1 + Wait + 1 + Wait + 1 = 5 tokens inside the cap of 6: nothing is cut.
    assert text(s1, ctl.thinking_ids) == "aWaitbWaitc"
    assert ctl.report.thinking_tokens == 5 and not ctl.report.forced_end and ctl.report.cut_tokens == 0


def test_harness_cut_in_a_round_that_ended_on_a_stop_token_appends_only_the_delimiter(s1: FakeCodec) -> None:
    # Round 1 stops on the trigger after crossing the cap: the harness cuts the joined ids to
    # the cap and, since the round "stopped", appends the bare end delimiter (no Final Answer).
    script = ["a", "b", T, "c", "c", "c", T, "ans", "<eos>"]
    ctl, _, _ = run_controller(harness(max_tokens=5, num_ignore=1), S1, s1, script)
    assert text(s1, ctl.completion_ids) == "abWaitcc<|im_start|>answerans<eos>"
    assert ctl.report.cut_tokens == 1 and ctl.report.thinking_tokens == 5 and ctl.report.forced_end
    # The exact profile ends the same thinking with the forced end instead.
    exact, _, _ = run_controller(BudgetSpec(max_tokens=5, num_ignore=1), S1, s1, script)
    assert text(s1, exact.completion_ids).startswith("abWaitcc\n<|im_start|>answer\nFinal Answer:")


def test_harness_newline_test_reads_the_uncut_text(s1: FakeCodec) -> None:
    # Cut after "c"; the uncut round went on to a newline, so the harness adds no newline.
    script = ["a", T, "b", "c", "a", "\n", "ans", "<eos>"]
    ctl, _, _ = run_controller(harness(max_tokens=4, num_ignore=1), S1, s1, script)
    assert text(s1, ctl.completion_ids) == "aWaitbc<|im_start|>answer\nFinal Answer:ans<eos>"
    exact, _, _ = run_controller(BudgetSpec(max_tokens=4, num_ignore=1), S1, s1, script)
    assert text(s1, exact.completion_ids).startswith("aWaitbc\n<|im_start|>answer\nFinal Answer:")


def test_harness_wait_crossing_the_cap_is_inserted_then_cut(s1: FakeCodec) -> None:
    spec = harness(max_tokens=4, num_ignore=1, wait_text="Hmm Hmm")  # 1 token in this vocabulary
    codec = FakeCodec([v for v in VOCAB if v != "Hmm Hmm"] + ["Hmm", " "])
    ctl, _, actions = run_controller(spec, S1, codec, ["a", "b", "c", T, "a", "a", "a", "a", "ans", "<eos>"])
    # "Hmm", " ", "Hmm" after 3 tokens: the cut keeps "Hmm" only.
    assert text(codec, ctl.thinking_ids) == "abcHmm"
    assert ctl.report.waits_inserted == 1 and ctl.report.inserted["wait"] == 1
    assert not any(i.kind == "wait" for a in actions for i in a.inserts)  # never shown as an insert
    exact, _, _ = run_controller(BudgetSpec(max_tokens=4, num_ignore=1, wait_text="Hmm Hmm"), S1, codec,
                                 ["a", "b", "c", T, "ans", "<eos>"])  # fmt: skip
    assert exact.report.waits_inserted == 0 and text(codec, exact.thinking_ids) == "abc"


def test_harness_drops_min_tokens_when_num_ignore_is_set(s1: FakeCodec) -> None:
    script = ["a", T, "b", T, "ans", "<eos>"]
    ctl, engine, _ = run_controller(harness(max_tokens=50, min_tokens=10, num_ignore=1), S1, s1, script)
    assert [r.min_tokens for r in engine.rounds if r.segment == "thinking"] == [1, 1]
    assert text(s1, ctl.thinking_ids) == "aWaitb"  # below min, yet the second attempt ends it


def test_harness_min_only_masks_and_ignores_the_wait_text(s1: FakeCodec) -> None:
    ctl, engine, _ = run_controller(harness(max_tokens=50, min_tokens=3), S1, s1, ["a", T, "b", "c", T, "ans", "<eos>"])
    assert engine.rounds[0].min_tokens == 3 and engine.masked == 1
    assert text(s1, ctl.thinking_ids) == "abc" and ctl.report.waits_inserted == 0


def test_harness_answer_round_gets_the_whole_request_limit(s1: FakeCodec) -> None:
    ctl, engine, _ = run_controller(harness(max_tokens=2), S1, s1, ["a", "b", "ans", "<eos>"], total_limit=40)
    assert engine.rounds[-1].segment == "answer" and engine.rounds[-1].max_tokens == 40


def test_harness_context_holds_pending_thinking_beyond_the_output(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    ctl = ThinkingController(harness(max_tokens=3, num_ignore=2), tokens, s1, 100)
    ctl.start()
    ctl.finish_round([s1.id("a"), s1.id("b"), s1.id(T)], EndAttempt.TRIGGER, "stop")
    action = ctl.finish_round([s1.id("c"), s1.id("c"), s1.id(T)], EndAttempt.TRIGGER, "stop")
    assert action.round is not None and action.round.provisional
    assert text(s1, ctl.completion_ids) == "abWait"
    assert text(s1, ctl.context_ids) == "abWaitccWait"


def test_harness_needs_a_one_token_trigger_for_min_and_num_ignore() -> None:
    codec = FakeCodec(["a", "</", "think", ">", "<", "\n", "Wait", "Final", " Answer", ":"])
    tokens = FormatTokens.build(THINK, codec.encode)
    with pytest.raises(BudgetError) as err:
        ThinkingController(harness(max_tokens=9, num_ignore=1), tokens, codec, 100)
    assert err.value.param == "thinking_budget.profile"
    ThinkingController(harness(max_tokens=9), tokens, codec, 100)  # the plain path stops on text


def test_default_profile_comes_from_the_server_unless_the_request_names_one(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    assert ThinkingController(BudgetSpec(), tokens, s1, 10, default_profile="harness").profile == "harness"
    assert ThinkingController(BudgetSpec(profile="exact"), tokens, s1, 10, default_profile="harness").profile == "exact"


# -- cap message ------------------------------------------------------------------------------------------


def test_cap_message_fits_inside_the_cap_and_counts_as_thinking(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=6, cap_message="Stop!")  # "\n" + "Stop" + "!" = 3 reserved
    ctl, engine, actions = run_controller(spec, S1, s1, ["a", "b", "c", "ans", "<eos>"])
    assert engine.rounds[0].max_tokens == 3
    assert text(s1, ctl.completion_ids) == "abc\nStop!\n<|im_start|>answer\nFinal Answer:ans<eos>"
    assert ctl.report.thinking_tokens == 6 and ctl.report.inserted["cap_message"] == 3
    assert ctl.report.public()["cap_message_tokens"] == 3
    kinds = [(i.kind, i.segment) for a in actions for i in a.inserts]
    assert kinds[0] == ("cap_message", "thinking")


def test_cap_message_is_not_used_on_a_natural_end_or_when_it_cannot_fit(s1: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=6, cap_message="Stop!"), S1, s1, ["a", T, "ans", "<eos>"])
    assert "Stop" not in text(s1, ctl.completion_ids)
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=2, cap_message="Stop!"), S1, s1, ["a", "b", "ans", "<eos>"])
    assert ctl.report.thinking_tokens == 2 and "Stop" not in text(s1, ctl.completion_ids)


# -- grace tokens -------------------------------------------------------------------------------------------


def test_grace_finishes_the_sentence_past_the_cap(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=3, grace_tokens=5)
    ctl, engine, _ = run_controller(spec, S1, s1, ["a", "b", "c", "a", "x.", " ", "b", "ans", "<eos>"])
    grace = engine.rounds[1]
    assert grace.provisional and grace.max_tokens == 5 and "\n" in grace.stop and ". " in grace.stop
    # "a", "x." then whitespace: the sentence ended at "x."; the whitespace token is dropped.
    assert text(s1, ctl.thinking_ids) == "abcax."
    assert ctl.report.grace_tokens == 2 and ctl.report.thinking_tokens == 5 and ctl.report.forced_end


def test_grace_keeps_everything_when_no_sentence_ends_and_stops_at_an_end_attempt(s1: FakeCodec) -> None:
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=2, grace_tokens=2), S1, s1, ["a", "b", "c", "c", "ans", "<eos>"])
    assert ctl.report.grace_tokens == 2 and ctl.report.thinking_tokens == 4
    ctl, _, _ = run_controller(BudgetSpec(max_tokens=2, grace_tokens=4), S1, s1, ["a", "b", "c", T, "ans", "<eos>"])
    assert text(s1, ctl.thinking_ids) == "abc" and ctl.report.grace_tokens == 1


def test_no_grace_round_when_the_thinking_already_ends_a_line(s1: FakeCodec) -> None:
    ctl, engine, _ = run_controller(BudgetSpec(max_tokens=2, grace_tokens=4), S1, s1, ["a", "\n", "ans", "<eos>"])
    assert [r.segment for r in engine.rounds] == ["thinking", "answer"] and ctl.report.grace_tokens == 0


def test_grace_then_cap_message(s1: FakeCodec) -> None:
    spec = BudgetSpec(max_tokens=5, grace_tokens=3, cap_message="Stop")
    ctl, _, _ = run_controller(spec, S1, s1, ["a", "b", "c", ". ", "ans", "<eos>"])
    # 5 - 2 reserved = 3 generated; grace keeps ". " (the punctuation's token); message after it.
    assert text(s1, ctl.thinking_ids) == "abc. \nStop"
    assert ctl.report.thinking_tokens == 3 + 1 + 2 == 6  # cap 5 plus the one grace token


@pytest.mark.parametrize(
    ("before", "pieces", "expected"),
    [
        ("", ["a", "b"], 2),
        ("", ["a", "\n", "b"], 2),
        ("", ["a", ".", " ", "b"], 2),
        ("", ["a", ".", "b", " "], 4),  # "a.b " : the dot is not followed by whitespace
        (".", [" ", "b"], 0),  # the sentence had already ended
        ("", ["x.", "\n"], 1),
    ],
)
def test_sentence_end(s1: FakeCodec, before: str, pieces: list[str], expected: int) -> None:
    assert sentence_end(before, [s1.id(p) for p in pieces], s1.decode) == expected


@pytest.mark.parametrize("spec", [BudgetSpec(max_tokens=4), BudgetSpec(max_tokens=3, num_ignore=1)])
def test_exact_profile_never_exceeds_the_total_limit(s1: FakeCodec, spec: BudgetSpec) -> None:
    ctl, engine, actions = run_controller(spec, S1, s1, ["a", "b", T] + ["c"] * 40, total_limit=20)
    assert len(ctl.completion_ids) == 20 and actions[-1].finish_reason == "length"
    assert engine.rounds[-1].segment == "answer"

"""The harness profile's edge cases and the `until` key, on scripted token streams (fake codec
and fake engine): `num_ignore: 0`, a custom final-answer text, a second EOS id, s1's
`until_thinking`."""

from __future__ import annotations

import json

import pytest

from budget.controller import EndAttempt, FormatTokens, ThinkingController
from budget.formats import S1
from budget.schema import thinking_budget_schema
from budget.spec import BudgetError, BudgetSpec, parse_thinking_budget
from tests.unit.scripted import FakeCodec, ScriptedEngine, run_controller

T = "<|im_start|>"
VOCAB = ["a", "b", "c", "\n", "Wait", "Final", " Answer", ":", T, "think", "answer", "<eos>", "<eot>", "ans", "0", "1"]


@pytest.fixture
def s1() -> FakeCodec:
    return FakeCodec(VOCAB)


def text(codec: FakeCodec, ids: list[int]) -> str:
    return codec.decode(ids)


def thinking_rounds(engine: ScriptedEngine) -> list:
    return [r for r in engine.rounds if r.segment == "thinking"]


# -- num_ignore: 0 ----------------------------------------------------------------------------------


def test_num_ignore_zero_is_told_apart_from_no_num_ignore() -> None:
    assert parse_thinking_budget({"num_ignore": 0}).num_ignore_set
    assert not parse_thinking_budget({"max_tokens": 5}).num_ignore_set
    assert not parse_thinking_budget({"num_ignore": None}, allow_null=True).num_ignore_set
    assert BudgetSpec(num_ignore=2).num_ignore_set
    for spec in (parse_thinking_budget({"num_ignore": 0}), BudgetSpec(max_tokens=4), BudgetSpec(num_ignore=3)):
        back = BudgetSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert back == spec and back.num_ignore_set == spec.num_ignore_set


def test_harness_num_ignore_zero_runs_min_tokens_one_and_drops_the_min_budget(s1: FakeCodec) -> None:
    """Fake engine: s1's harness with `thinking_n_ignore=0` takes its ignore branch: one round
    with min_tokens=1 (min_tokens_thinking dropped), ended at the first attempt."""
    spec = parse_thinking_budget({"max_tokens": 50, "min_tokens": 10, "num_ignore": 0, "profile": "harness"})
    script = [T, "a", T, "b", "ans", "<eos>"]  # an attempt first (masked by min_tokens=1), then one after "a"
    ctl, engine, _ = run_controller(spec, S1, s1, script)
    assert [r.min_tokens for r in thinking_rounds(engine)] == [1]
    assert engine.masked == 1
    assert text(s1, ctl.completion_ids) == "a" + T + "answer" + "bans<eos>"
    assert text(s1, ctl.thinking_ids) == "a" and ctl.report.waits_inserted == 0
    # Without num_ignore the harness keeps the min budget: the first 10 tokens are masked.
    plain = parse_thinking_budget({"max_tokens": 50, "min_tokens": 10, "profile": "harness"})
    _, engine, _ = run_controller(plain, S1, s1, [T, "a", T, "b"] + ["c"] * 10 + [T, "ans", "<eos>"])
    assert [r.min_tokens for r in thinking_rounds(engine)] == [10]


def test_exact_num_ignore_zero_is_no_ignoring(s1: FakeCodec) -> None:
    """Fake engine: the exact profile reads `num_ignore: 0` as no ignoring; min_tokens stays."""
    spec = parse_thinking_budget({"max_tokens": 50, "min_tokens": 2, "num_ignore": 0})
    ctl, engine, _ = run_controller(spec, S1, s1, ["a", T, "b", T, "ans", "<eos>"])
    assert thinking_rounds(engine)[0].min_tokens == 0
    assert text(s1, ctl.thinking_ids) == "aWaitb" and ctl.report.waits_inserted == 1


# -- final_answer_text ---------------------------------------------------------------------------------


def test_harness_refuses_a_custom_final_answer_text() -> None:
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget({"final_answer_text": "Answer:", "profile": "harness"})
    assert err.value.param == "thinking_budget.final_answer_text"
    assert "thinking_budget.final_answer_text" in err.value.message
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget({"final_answer_text": ""}, default_profile="harness")
    assert err.value.param == "thinking_budget.final_answer_text"
    with pytest.raises(BudgetError):
        BudgetSpec(final_answer_text="So:").with_profile("harness")
    assert parse_thinking_budget({"final_answer_text": "Final Answer:", "profile": "harness"}).profile == "harness"
    assert parse_thinking_budget({"final_answer_text": "Answer:"}).final_answer_text == "Answer:"


# -- a second EOS id under the harness profile -------------------------------------------------------------


def streamed_ids(ctl: ThinkingController, engine: ScriptedEngine, secondary: set[int]) -> list[int]:
    """Fake stream: what the server's engine loop shows for each round, by its rule. A thinking
    round that runs live (not provisional, no stop strings) streams its ids as they come, less
    the last id when it stops (the end attempt); a held-back round shows what the controller
    kept. `secondary`: stop ids the engine adds from the model's generation config."""
    shown: list[int] = []
    action = ctl.start()
    while True:
        for insert in action.inserts:
            shown.extend(insert.ids)
        if action.round is None:
            return shown
        rnd = action.round
        out: list[int] = []
        attempt, reason = None, "length"
        while len(out) < rnd.max_tokens:
            token = engine.codec.id(engine.script.pop(0))
            out.append(token)
            if token == engine.codec.id(engine.eos):
                attempt, reason = (EndAttempt.EOS if rnd.segment == "thinking" else None), "stop"
                break
            if rnd.segment == "thinking" and (token in rnd.stop_token_ids or token in secondary):
                attempt, reason = EndAttempt.TRIGGER, "stop"  # vLLM's stop_reason: the stop id
                break
        live = rnd.segment == "answer" or not (rnd.stop or rnd.provisional)
        before = len(ctl.completion_ids)
        action = ctl.finish_round(out, attempt, reason)
        if live:
            shown.extend(out[:-1] if reason == "stop" and rnd.segment == "thinking" else out)
        else:
            inserted = sum(len(i.ids) for i in action.inserts)
            shown.extend(ctl.completion_ids[before : len(ctl.completion_ids) - inserted])


@pytest.mark.parametrize("profile", ["harness", "exact"])
def test_a_second_eos_id_leaves_the_stream_equal_to_the_completion(s1: FakeCodec, profile: str) -> None:
    """Fake engine and stream: a generation config's second EOS id (`<eot>` here) stops a
    thinking round with that id as its stop reason. The stream drops it as the end attempt, so
    the controller must drop it too, or the streamed ids fall one short of completion_tokens."""
    eot = s1.id("<eot>")
    spec = BudgetSpec(max_tokens=20, num_ignore=1, profile=profile)  # type: ignore[arg-type]
    tokens = FormatTokens.build(S1, s1.encode)
    ctl = ThinkingController(spec, tokens, s1, 100)
    engine = ScriptedEngine(s1, ["a", "<eot>", "b", T, "ans", "<eos>"])
    shown = streamed_ids(ctl, engine, {eot})
    assert shown == ctl.completion_ids
    assert eot not in ctl.thinking_ids and text(s1, ctl.thinking_ids) == "aWaitb"


# -- until (s1's until_thinking) ------------------------------------------------------------------------------


def test_until_is_declared_validated_and_in_the_schema() -> None:
    assert parse_thinking_budget({"until": "<|im_start|>0"}).until == "<|im_start|>0"
    assert BudgetSpec().until == ""
    with pytest.raises(BudgetError) as err:
        parse_thinking_budget({"until": ["a", "b"]})
    assert err.value.param == "thinking_budget.until"
    budget_object = next(b for b in thinking_budget_schema()["anyOf"] if b.get("type") == "object")
    assert budget_object["properties"]["until"]["type"] == "string"


@pytest.mark.parametrize("profile", ["exact", "harness"])
def test_until_replaces_the_trigger_as_s1s_until_thinking(s1: FakeCodec, profile: str) -> None:
    """Fake engine: with `until: "<|im_start|>0"` (two tokens) the format's trigger no longer
    ends the thinking; the text does, matched as a stop string and stripped, and the thinking is
    closed with the end delimiter, as the harness does for step-conditional runs."""
    spec = BudgetSpec(max_tokens="auto", until=T + "0", profile=profile)  # type: ignore[arg-type]
    tokens = FormatTokens.build(S1, s1.encode)
    engine = ScriptedEngine(s1, [T, "1", "a", T, "0", "ans", "<eos>"])
    ctl = ThinkingController(spec, tokens, s1, 200, prompt_tokens=10)
    action = ctl.start()
    while action.round is not None:
        ids, attempt, reason = engine.run(action.round)
        action = ctl.finish_round(ids, attempt, reason)
    first = engine.rounds[0]
    assert first.stop == (T + "0",) and first.stop_token_ids == ()
    assert text(s1, ctl.thinking_ids) == T + "1a"
    assert text(s1, ctl.completion_ids) == T + "1a" + T + "answer" + "ans<eos>"
    assert not ctl.report.forced_end
    # The auto cap is unchanged by it: s1's arithmetic on the forced end.
    assert ctl.cap == 200 - 10 - len(s1.encode(S1.end + "\nFinal Answer:")) - 100


def test_until_of_one_token_stops_on_its_id(s1: FakeCodec) -> None:
    """Fake engine: a one-token `until` is a stop id, so min_tokens and num_ignore work under
    the harness profile too."""
    spec = BudgetSpec(max_tokens=20, num_ignore=1, until="0", profile="harness")
    ctl, engine, _ = run_controller(spec, S1, s1, ["a", T, "b", "0", "c", "0", "ans", "<eos>"])
    assert thinking_rounds(engine)[0].stop_token_ids == (s1.id("0"),)
    assert text(s1, ctl.thinking_ids) == "a" + T + "bWaitc"


def test_harness_until_of_several_tokens_refuses_min_and_num_ignore(s1: FakeCodec) -> None:
    tokens = FormatTokens.build(S1, s1.encode)
    with pytest.raises(BudgetError) as err:
        ThinkingController(BudgetSpec(max_tokens=9, num_ignore=1, until=T + "0", profile="harness"), tokens, s1, 100)
    assert err.value.param == "thinking_budget.until"
    ThinkingController(BudgetSpec(max_tokens=9, num_ignore=1, until=T + "0"), tokens, s1, 100)  # exact: text stops

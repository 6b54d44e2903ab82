"""Answer-convergence early exit: the agreement rule, the probe schedule and the forced end, on
scripted token streams and scripted probe outputs (fake codec and engine, no model)."""

from __future__ import annotations

import pytest

from budget.early_exit import AnswerAgreement, EarlyExit, closed_answer, parse_flag, probe_answer
from budget.formats import THINK
from budget.spec import BudgetError, BudgetSpec, parse_thinking_budget
from tests.unit.scripted import THINK_VOCAB, FakeCodec, run_controller

VOCAB = [*THINK_VOCAB, " \\boxed{", "{", "}"]
TRIGGER = ["</", "think", ">"]


@pytest.fixture
def codec() -> FakeCodec:
    return FakeCodec(VOCAB)


def spec(**kw: object) -> BudgetSpec:
    return parse_thinking_budget(kw)


# -- the pure rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        ("42}", "42"),
        ("  42 .}\n", "42"),  # whitespace and a trailing period are not part of the answer
        ("\\frac{1}{2}} and more", "\\frac{1}{2}"),  # braces inside the answer are balanced
        ("x  =\n 3}", "x = 3"),
        ("42", None),  # the brace never closed: the probe ran out of tokens
        ("}", None),  # empty
        (" . }", None),
        ("wait, 42}", None),  # hesitation
        ("Hmm 42}", None),
        ("42 but maybe 41}", None),
        ("known 3}", "known 3"),  # whole words only: "no" inside "known" is not a hesitation
    ],
)
def test_a_probe_answer_is_the_closed_unhesitating_text(output: str, answer: str | None) -> None:
    assert probe_answer(output) == answer


def test_closed_answer_waits_for_the_brace_the_probe_text_opened() -> None:
    assert closed_answer("\\frac{1}{2") is None
    assert closed_answer("{a}}") == "{a}"


def test_the_last_agree_answers_must_all_be_the_same_answer() -> None:
    rule = AnswerAgreement(3)
    assert [rule.add(a) for a in ["1", "1", "2", "2"]] == [False, False, False, False]
    assert rule.add("2") is True
    rule = AnswerAgreement(2)
    assert [rule.add(a) for a in ["5", None, "5", None, None]] == [False, False, False, False, False]
    assert AnswerAgreement(1).add("0") is True
    assert AnswerAgreement(1).add(None) is False


def test_the_server_flag_parses_every_and_agree() -> None:
    assert parse_flag("") == EarlyExit()
    assert parse_flag("128") == EarlyExit(every=128)
    assert parse_flag("64,2") == EarlyExit(every=64, agree=2)
    for bad in ("8", "64,0", "a", "1,2,3", "64,-1"):
        with pytest.raises(ValueError, match="--early-exit"):
            parse_flag(bad)


# -- the field ----------------------------------------------------------------------------------


def test_the_field_takes_true_false_or_an_object() -> None:
    assert spec(early_exit=True).probing == EarlyExit()
    assert spec(early_exit={"every": 64}).probing == EarlyExit(every=64)
    assert spec(early_exit=False).probing is None
    assert spec(max_tokens=5).early_exit is None  # not named: the server's default may apply
    on = spec(early_exit={"agree": 2, "probe_text": "Answer: {", "probe_tokens": 8})
    assert BudgetSpec.from_dict(on.to_dict()) == on


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"every": 8}, "thinking_budget.early_exit.every"),
        ({"every": "256"}, "thinking_budget.early_exit.every"),
        ({"agree": 0}, "thinking_budget.early_exit.agree"),
        ({"probe_tokens": 0}, "thinking_budget.early_exit.probe_tokens"),
        ({"probe_tokens": 5000}, "thinking_budget.early_exit.probe_tokens"),
        ({"probe_text": ""}, "thinking_budget.early_exit.probe_text"),
        ({"probe_text": 3}, "thinking_budget.early_exit.probe_text"),
        ({"often": 3}, "thinking_budget.early_exit.often"),
        ("yes", "thinking_budget.early_exit"),
        (1, "thinking_budget.early_exit"),
    ],
)
def test_bad_values_name_the_field(value: object, param: str) -> None:
    with pytest.raises(BudgetError) as err:
        spec(early_exit=value)
    assert err.value.param == param
    assert param in err.value.message


def test_the_harness_profile_refuses_early_exit_and_ignores_the_server_default() -> None:
    with pytest.raises(BudgetError) as err:
        spec(early_exit=True, profile="harness")
    assert err.value.param == "thinking_budget.early_exit"
    harness = spec(profile="harness")
    assert harness.with_early_exit(EarlyExit()) is harness
    assert spec().with_early_exit(EarlyExit(every=32)).probing == EarlyExit(every=32)
    assert spec(early_exit=False).with_early_exit(EarlyExit()).probing is None


# -- the controller -------------------------------------------------------------------------------


def test_agreeing_probes_end_the_thinking_as_a_forced_end(codec: FakeCodec) -> None:
    budget = spec(max_tokens=100, early_exit={"every": 16, "agree": 2})
    ctl, engine, _ = run_controller(budget, THINK, codec, ["a"] * 32 + ["ans", "<eos>"], probe_outputs=["7}", "7}"])
    assert [len(ids) for ids, _ in engine.probes] == [16, 32]  # one probe every 16 thinking tokens
    assert all(r.max_tokens == 16 for r in engine.rounds[:-1])  # thinking rounds stop where a probe is due
    r = ctl.report
    assert (r.early_exit, r.forced_end, r.probes, r.probe_tokens) == (True, True, 2, 4)
    assert r.thinking_tokens == 32
    out = codec.decode(ctl.completion_ids)
    assert out == "a" * 32 + "\n</think>\nFinal Answer:ans<eos>"
    # the probe asked for the answer after the end delimiter, as the forced end would write it
    probe = engine.probes[0][1]
    assert codec.decode(list(probe.ids)) == "\n</think>\nFinal Answer: \\boxed{"
    assert probe.max_tokens == 32
    assert ctl.report.public()["early_exit"] is True


def test_no_probe_before_min_tokens_nor_while_ignores_remain(codec: FakeCodec) -> None:
    budget = spec(max_tokens=90, min_tokens=40, early_exit={"every": 16, "agree": 99})
    script = ["a"] * 200
    ctl, engine, _ = run_controller(budget, THINK, codec, script + ["<eos>"], probe_outputs=["7}"] * 9)
    assert [len(ids) for ids, _ in engine.probes] == [48, 64, 80]  # 16 and 32 are below the min budget
    assert (ctl.report.early_exit, ctl.report.thinking_tokens, ctl.report.forced_end) == (False, 90, True)

    budget = spec(max_tokens=70, num_ignore=1, early_exit={"every": 16, "agree": 99})
    script = ["a"] * 20 + TRIGGER + ["a"] * 100 + ["<eos>"]
    ctl, engine, _ = run_controller(budget, THINK, codec, script, probe_outputs=["7}"] * 9)
    # the point at 16 comes before the end attempt at 20 is overridden ("Wait" counts as thinking)
    assert [len(ids) for ids, _ in engine.probes] == [32, 48, 64]
    assert ctl.report.waits_inserted == 1


def test_probes_that_never_agree_leave_the_tokens_unchanged(codec: FakeCodec) -> None:
    script = ["a"] * 10 + TRIGGER + ["b"] * 8 + TRIGGER + ["a"] * 20 + TRIGGER + ["ans", "<eos>"]
    # EOS right after a probe point: the override's one-token floor was met before the split
    at_point = ["a"] * 16 + ["<eos>"] + ["b"] * 20 + ["<eos>"] + ["a"] * 12 + ["<eos>", "ans", "<eos>"]
    cases = [
        (script, {"max_tokens": 60, "num_ignore": 2}),
        (script, {"min_tokens": 30}),
        (script, {"max_tokens": 24, "num_ignore": 1}),
        (at_point, {"num_ignore": 1}),
        (at_point, {"num_ignore": 2, "wait_text": ""}),
    ]
    for script, budget in cases:
        plain, _, _ = run_controller(spec(**budget), THINK, codec, list(script))
        early = spec(**budget, early_exit={"every": 16, "agree": 50})
        probed, engine, _ = run_controller(early, THINK, codec, list(script), probe_outputs=["7}", "8}"] * 5)
        assert engine.probes, budget
        assert probed.completion_ids == plain.completion_ids, budget
        assert probed.report.thinking_tokens == plain.report.thinking_tokens
        assert (probed.report.early_exit, plain.report.early_exit) == (False, None)


def test_a_text_trigger_cut_by_a_probe_split_is_found_across_the_seam(codec: FakeCodec) -> None:
    """The split round ends in "</": it is held out of the thinking and of the probe; the next
    round writes "think>" (the engine's stop string cannot see the whole trigger) and goes on;
    the controller finds the trigger across the seam and drops what followed it, as a
    resubmitted round regenerates it."""
    plain, _, _ = run_controller(spec(), THINK, codec, ["a"] * 15 + TRIGGER + ["ans", "<eos>"])
    budget = spec(early_exit={"every": 16, "agree": 50})
    script = ["a"] * 15 + TRIGGER + ["b"] * 14 + ["ans", "<eos>"]  # the 14 b: written past the unseen trigger
    ctl, engine, _ = run_controller(budget, THINK, codec, script, probe_outputs=["7}"])
    assert [len(ids) for ids, _ in engine.probes] == [15]  # the held "</" is not thinking the probe reads
    assert all(r.provisional for r in engine.rounds if r.segment == "thinking")  # settled before shown
    assert ctl.completion_ids == plain.completion_ids
    assert ctl.report.thinking_tokens == 15 and not ctl.report.forced_end


def test_the_cap_comes_first_and_no_cap_message_on_an_early_exit(codec: FakeCodec) -> None:
    budget = spec(max_tokens=20, early_exit={"every": 16, "agree": 2})
    ctl, engine, _ = run_controller(budget, THINK, codec, ["a"] * 40 + ["ans", "<eos>"], probe_outputs=["7}"])
    assert len(engine.probes) == 1 and ctl.report.thinking_tokens == 20
    assert (ctl.report.forced_end, ctl.report.early_exit) == (True, False)

    budget = spec(max_tokens=60, cap_message="Out of time.", early_exit={"every": 16, "agree": 1})
    vocab = FakeCodec([*VOCAB, "Out", " of", " time", "."])
    ctl, _, _ = run_controller(budget, THINK, vocab, ["a"] * 40 + ["ans", "<eos>"], probe_outputs=["7}"])
    assert ctl.report.early_exit and ctl.report.inserted["cap_message"] == 0
    assert "Out of time" not in vocab.decode(ctl.completion_ids)


def test_a_probe_without_room_in_the_context_is_skipped(codec: FakeCodec) -> None:
    budget = spec(early_exit={"every": 16, "agree": 1, "probe_tokens": 30})
    script = ["a"] * 40 + TRIGGER + ["ans", "<eos>"]
    ctl, engine, _ = run_controller(budget, THINK, codec, script, context_left=50, probe_outputs=[])
    assert engine.probes == [] and ctl.report.probes == 0  # 16 + probe ids + 30 > 50
    assert ctl.report.thinking_tokens == 40 and ctl.report.early_exit is False


def test_a_custom_probe_text_follows_the_end_delimiter(codec: FakeCodec) -> None:
    budget = spec(early_exit={"every": 16, "agree": 1, "probe_text": "ans{"})
    ctl, engine, _ = run_controller(budget, THINK, codec, ["a"] * 16 + ["ans", "<eos>"], probe_outputs=["b}"])
    assert codec.decode(list(engine.probes[0][1].ids)) == "\n</think>\nans{"
    assert ctl.report.early_exit is True


# -- the server's default ---------------------------------------------------------------------


def test_the_server_default_fills_budgets_naming_none_and_requests_without_one() -> None:
    from server.http.budget_fields import EffortBudgets, resolve_budget

    default = EarlyExit(every=64, agree=2)

    def resolve(**fields: object) -> BudgetSpec | None:
        body = {"messages": [{"role": "user", "content": "x"}], **fields}
        return resolve_budget(body, "chat", EffortBudgets(), default_early_exit=default)

    assert resolve().probing == default  # no budget: early exit alone, no cap
    assert resolve().max_tokens is None
    assert resolve(thinking_budget=100).probing == default
    assert resolve(thinking_budget={"max_tokens": 9, "early_exit": False}).probing is None
    assert resolve(thinking_budget={"early_exit": {"every": 32}}).probing == EarlyExit(every=32)
    assert resolve(reasoning_effort="none").probing is None  # no thinking, nothing to probe
    assert resolve(thinking_budget={"max_tokens": 9, "profile": "harness"}).probing is None
    off = resolve_budget({"messages": []}, "chat", EffortBudgets())
    assert off is None  # without the flag a request without a budget stays plain


def test_the_serve_flag_and_its_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import serve_parser

    parser = serve_parser()
    assert parser.parse_args(["--early-exit"]).early_exit == ""
    assert parser.parse_args(["--early-exit=128,2"]).early_exit == "128,2"
    assert parser.parse_args([]).early_exit is None
    from server.cli import serve

    for argv, says in (
        (["--early-exit=8"], "EVERY must be >= 16"),
        (["--early-exit", "--budget-profile", "harness"], "not part of s1's harness"),
    ):
        with pytest.raises(SystemExit) as exit_:
            serve(argv)  # refused while parsing, before any engine starts
        assert exit_.value.code == 2 and says in capsys.readouterr().err

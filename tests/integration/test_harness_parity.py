"""s1serve's controller against an independent port of s1's evaluation harness.

The port is benchmarks/harness_port.py; tests/oracle/ runs it and the controller on one engine.

For every case, on a tiny s1-format model and a tiny think-format model, greedy: the controller
driven by plain `vllm.LLM.generate` rounds under the harness profile returns the port's token ids
exactly; under the exact (default) profile it returns them too, except where docs/fidelity.md
documents a difference, and there it returns exactly what that page says.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.tiny_model import build_think_model
from tests.oracle.results import oracle_results
from tests.oracle.run import CASE_NAMES, DRIVER_CASES, SEED

pytestmark = pytest.mark.engine

FORCED = [name for name in CASE_NAMES + DRIVER_CASES if name != "no-budget"]
CUT = {"auto-ignore-2", "cap-after-wait", "exact-fill", "long-wait"}  # the harness cuts a round at the cap


@pytest.fixture(scope="module", params=["s1", "think"])
def oracle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All cases on one model, one engine."""
    fmt = request.param
    if fmt == "s1":
        model = request.getfixturevalue("tiny_model")
    else:
        # Greedy, this model first tries to end its thinking after about 55 tokens.
        model = build_think_model(tmp_path_factory.mktemp("models") / "tiny-think", trigger_scale=4.0)
    return oracle_results(model, fmt, tmp_path_factory)


def test_without_a_budget_the_harness_is_plain_generation(oracle: dict[str, Any]) -> None:
    case = oracle["cases"]["no-budget"]
    assert case["port"]["opener"] == [] and case["port"]["completion"] == case["plain"]


@pytest.mark.parametrize("name", FORCED)
def test_harness_profile_is_token_identical(oracle: dict[str, Any], name: str) -> None:
    case = oracle["cases"][name]
    port, ctl = case["port"], case["harness"]
    assert ctl["completion"] == port["completion"]
    assert ctl["thinking"] == port["thinking"]
    assert ctl["report"]["thinking_tokens"] == len(port["thinking"])
    if case["budget"].get("max_tokens") is not None:  # without a cap the harness caps at max_tokens
        assert ctl["cap"] == port["thinking_cap"]


@pytest.mark.parametrize("name", FORCED)
def test_exact_profile_matches_or_differs_as_documented(oracle: dict[str, Any], name: str) -> None:
    case = oracle["cases"][name]
    port, ctl = case["port"], case["exact"]
    assert case["category"] == case["expect"], "the case did not take the path it is named after"
    assert ctl["completion"] == case["expected_exact"]
    total = case["max_gen"]
    if case["category"] == "same":
        # Identical, except that the answer is bounded by max_tokens in total.
        assert ctl["completion"] == port["completion"][:total]
    elif case["category"] == "cut":
        # Same thinking (less a wait text the cap cut in two, which the exact profile does not
        # insert); the exact profile closes it with the forced end where the harness, its last
        # round having stopped on a stop token, appends only the end delimiter.
        n = len(ctl["thinking"])
        assert ctl["thinking"] == port["thinking"][:n]
        assert port["thinking"][n:] == case["wait_ids"][: len(port["thinking"]) - n]
        assert ctl["report"]["forced_end"] and ctl["report"]["inserted"]["final_answer"] > 0
        assert ctl["completion"] != port["completion"][:total]
        if port["final_finish"] == "stop":
            assert case["harness"]["report"]["inserted"]["final_answer"] == 0
    elif case["category"] == "strip":  # until: the harness keeps a stop text its encoding does not match
        n = oracle["fixed"]["until_at"]
        assert ctl["thinking"] == port["thinking"][:n] and len(port["thinking"]) in (n, n + 2)
        assert not ctl["report"]["forced_end"]
    elif case["category"] == "ignore0":  # the harness drops min_tokens for thinking_n_ignore=0 too
        assert ctl["completion"] == case["harness_without_ignore"]["completion"][:total]
        assert len(port["thinking"]) < case["budget"]["min_tokens"] <= len(ctl["thinking"])
    else:  # min-ignore: the harness drops min_tokens once num_ignore is set
        more = case["harness_with_exact_waits"]
        assert ctl["report"]["waits_inserted"] > 1 == port["ignore_str_count"]
        assert ctl["completion"] == more["completion"][:total]


def test_cases_exercise_their_paths(oracle: dict[str, Any]) -> None:
    cases = oracle["cases"]
    fixed, probe = oracle["fixed"], oracle["probe"]
    first_attempt = probe["ignore_str_starts"][0]
    port = {name: c["port"] for name, c in cases.items()}
    exact = {name: c["exact"] for name, c in cases.items() if name != "no-budget"}

    for name in ("max-only", "auto"):  # the cap binds in the first round
        assert port[name]["final_finish"] == "length" and len(port[name]["thinking"]) == port[name]["thinking_cap"]
        assert exact[name]["report"]["forced_end"]
    # What the port computed for each generate call: its thinking rounds, then the answer.
    calls = {name: c["port_calls"] for name, c in cases.items()}
    for name in FORCED:
        assert len(calls[name]) == len(port[name]["rounds"]) + 1
    min_tokens = cases["min-only"]["budget"]["min_tokens"]
    assert first_attempt < min_tokens <= len(port["min-only"]["thinking"])  # the mask mattered
    assert [c["min_tokens"] for c in calls["min-only"]] == [min_tokens, 0]
    for name, k in (("ignore-1", 1), ("ignore-3", 3)):
        assert port[name]["ignore_str_count"] == k == exact[name]["report"]["waits_inserted"]
    assert len(port["ignore-no-string"]["rounds"]) == 3 and port["ignore-no-string"]["ignore_str_count"] == 0
    assert exact["ignore-no-string"]["report"]["ends_ignored"] == 2
    assert exact["ignore-no-string"]["report"]["waits_inserted"] == 0
    # Every thinking round after an ignore may not end at once (min_tokens=1), in both.
    for name in ("ignore-1", "ignore-3", "ignore-no-string", "min-ignore", "num-ignore-0"):
        assert [c["min_tokens"] for c in calls[name][:-1]] == [1] * len(port[name]["rounds"])
        assert all(r["min_tokens"] >= 1 for r in exact[name]["rounds"] if r["segment"] == "thinking")
    # auto: s1's arithmetic, and the controller resolved the same cap.
    overhead = fixed["auto_overhead"]
    for name in ("auto", "auto-ignore-2"):
        assert port[name]["thinking_cap"] == cases[name]["max_gen"] - overhead == exact[name]["cap"]
    for name in CUT:
        assert port[name]["cut"]
    # exact-fill: the wait text fills the cap; the thinking ends with it and the answer follows.
    fill = exact["exact-fill"]
    assert fill["report"]["thinking_tokens"] == cases["exact-fill"]["budget"]["max_tokens"]
    wait_ids = fill["thinking"][-fixed["wait_len"] :]
    assert len(wait_ids) == fixed["wait_len"] and fill["report"]["waits_inserted"] == 1
    assert fill["rounds"][-1]["segment"] == "answer" and fill["report"]["forced_end"]
    # The harness profile holds back rounds that may be cut.
    assert any(r["provisional"] for r in cases["cap-after-wait"]["harness"]["rounds"])
    # Thinking-only sampling changed the thinking, and only thinking rounds carried it.
    assert port["sampling"]["thinking"] != cases["sampling"]["without_sampling"]["thinking"]
    for r in exact["sampling"]["rounds"]:
        assert r["sampling"] == ({"repetition_penalty": 1.3} if r["segment"] == "thinking" else {})


def test_later_cases_exercise_their_paths(oracle: dict[str, Any]) -> None:
    cases, a0 = oracle["cases"], oracle["probe"]["ignore_str_starts"][0]
    port = {name: c["port"] for name, c in cases.items()}
    # min == max: one round masked up to the cap, which forces the end.
    c = cases["min-equals-max"]
    cap = c["budget"]["max_tokens"]
    assert [call["min_tokens"] for call in c["port_calls"][:-1]] == [cap]
    assert port["min-equals-max"]["final_finish"] == "length" and len(port["min-equals-max"]["thinking"]) == cap
    assert c["exact"]["report"]["forced_end"] and c["exact"]["report"]["waits_inserted"] == 0
    # A wait text longer than the room left: the harness appends it and cuts it; exact does not insert it.
    c = cases["long-wait"]
    assert len(c["wait_ids"]) > 1 and port["long-wait"]["ignore_str_starts"] == [a0]
    assert c["exact"]["report"]["waits_inserted"] == 0 and len(c["exact"]["thinking"]) == a0
    # A tight total: max_tokens ends the exact profile inside the thinking; the harness thinks on.
    c = cases["tight-total"]
    assert c["exact"]["finish_reason"] == "length" and len(c["exact"]["completion"]) == c["max_gen"]
    assert c["exact"]["report"]["waits_inserted"] == 1 and len(port["tight-total"]["thinking"]) > c["max_gen"]
    # num_ignore 0: one round with min_tokens=1, ended by the first attempt, below min_tokens.
    c = cases["num-ignore-0"]
    assert len(port["num-ignore-0"]["thinking"]) == a0 == len(c["harness"]["thinking"])
    assert [r["min_tokens"] for r in c["harness"]["rounds"] if r["segment"] == "thinking"] == [1]


def test_seeds_choices_batches_and_stop_text(oracle: dict[str, Any]) -> None:
    cases, fixed = oracle["cases"], oracle["fixed"]
    # Sampled thinking in one round: its seed is the request's, in s1serve and in the harness.
    c = cases["seeded-sampling"]
    assert c["port"]["thinking"] != c["without_sampling"]["thinking"]
    assert c["exact"]["rounds"][0]["seed"] == SEED == c["port_calls"][0]["seed"]
    assert [r["segment"] for r in c["exact"]["rounds"]] == ["thinking", "answer"]
    # n = 2: choice i's first round is seeded seed + i; it is the harness run with that seed.
    c = cases["n-2"]
    assert c["port_by_seed"][0]["thinking"] != c["port_by_seed"][1]["thinking"]
    for profile in ("exact", "harness"):
        for i, choice in enumerate(c["choices"][profile]):
            want = c["port_by_seed"][i]["completion"]
            assert choice["completion"] == (want[: c["max_gen"]] if profile == "exact" else want)
    # auto in a batch: the harness's cap comes from the longest prompt, s1serve's from the request's own.
    c = cases["auto-batch"]
    assert c["port_calls"][0]["prompts"] == 2
    assert c["port"]["thinking_cap"] == c["max_gen"] - fixed["auto_overhead_long"] == c["budget"]["max_tokens"]
    assert c["auto_alone"]["cap"] == c["max_gen"] - fixed["auto_overhead"] > c["port"]["thinking_cap"]
    # until: the stop text, not the trigger, ended the thinking where it first appears.
    c = cases["until"]
    assert fixed["until_at"] is not None and c["port_calls"][0]["stop"][0] == c["budget"]["until"]
    assert len(c["port"]["thinking"]) in (fixed["until_at"], fixed["until_at"] + 2)
    assert c["port"]["final_finish"] == "stop" and len(c["port"]["rounds"]) == 1


def test_an_eos_inside_the_thinking_is_an_end_attempt(oracle: dict[str, Any]) -> None:
    """A model that writes EOS inside its thinking: the harness treats it as an end attempt (the
    EOS text is one of its thinking stops), ignores it once and strips it; so does s1serve."""
    c = oracle["cases"]["eos-in-thinking"]
    eos = int(next(iter(oracle["fixed"]["eos_bias"])))
    first = c["port_calls"][0]
    assert first["stop_reasons"] == [None] and eos in first["stop_token_ids"]  # EOS, not the trigger, stopped it
    assert first["min_tokens"] == 1 and c["port"]["ignore_str_count"] == 1
    for profile in ("exact", "harness"):
        run = c[profile]
        assert eos not in run["thinking"]
        assert run["report"]["waits_inserted"] == 1 and run["report"]["ends_ignored"] == 1
        assert not run["report"]["forced_end"]

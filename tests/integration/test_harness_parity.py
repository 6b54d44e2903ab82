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
from tests.oracle.run import CASE_NAMES

pytestmark = pytest.mark.engine

FORCED = [name for name in CASE_NAMES if name != "no-budget"]
CUT = {"auto-ignore-2", "cap-after-wait", "exact-fill"}  # the harness cuts a round at the cap


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
        # Same thinking; the exact profile closes it with the forced end where the harness,
        # its last round having stopped on a stop token, appends only the end delimiter.
        n = len(ctl["thinking"])
        assert ctl["thinking"] == port["thinking"][:n] and n == len(port["thinking"])
        assert ctl["report"]["forced_end"] and ctl["report"]["inserted"]["final_answer"] > 0
        assert ctl["completion"] != port["completion"][:total]
        if port["final_finish"] == "stop":
            assert case["harness"]["report"]["inserted"]["final_answer"] == 0
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
    min_tokens = cases["min-only"]["budget"]["min_tokens"]
    assert first_attempt < min_tokens <= len(port["min-only"]["thinking"])  # the mask mattered
    assert port["min-only"]["rounds"][0]["min_tokens"] == min_tokens
    for name, k in (("ignore-1", 1), ("ignore-3", 3)):
        assert port[name]["ignore_str_count"] == k == exact[name]["report"]["waits_inserted"]
    assert len(port["ignore-no-string"]["rounds"]) == 3 and port["ignore-no-string"]["ignore_str_count"] == 0
    assert exact["ignore-no-string"]["report"]["ends_ignored"] == 2
    assert exact["ignore-no-string"]["report"]["waits_inserted"] == 0
    # Every thinking round after an ignore may not end at once (min_tokens=1), in both.
    for name in ("ignore-1", "ignore-3", "ignore-no-string", "min-ignore"):
        assert all(r["min_tokens"] == 1 for r in port[name]["rounds"])
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

"""The benchmark's planning and arithmetic, without a server: warm-up plan, medians of
repetitions, the probe cost (P5) and the F scenario's request."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import plan, report
from benchmarks.client import Event, RequestRecord
from benchmarks.workload import SHAPES, Workload


def test_warm_up_covers_every_path_at_every_measured_concurrency_before_any_level() -> None:
    steps = plan.warm_up_plan([16, 1, 4], ["B", "C", "D", "BD", "F"])
    assert steps == [(c, s) for c in (1, 4, 16) for s in ("B", "C", "D", "F")]
    # BD takes B's plain path; a stock server has only that one.
    assert plan.warm_up_plan([4], ["D", "BD"]) == [(4, "B"), (4, "D")]
    assert plan.warm_up_plan([2, 8], ["A"]) == [(2, "B"), (8, "B")]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_warm_requests_take_each_path_briefly(shape: str) -> None:
    warm = plan.warm_workload(SHAPES[shape])
    assert warm.output_len <= 64
    assert warm.cap < warm.output_len  # C's cap binds: a forced end
    assert warm.min_thinking >= 1 and warm.num_ignore >= 1  # D: a floor and at least one wait
    assert warm.min_thinking < warm.d_cap < warm.output_len
    # F: at least one probe before its cap, and none of them agree
    assert 16 <= warm.early_exit_every < warm.cap
    budget = warm.body("F", 0)[1]["thinking_budget"]
    assert budget["early_exit"] == {"every": warm.early_exit_every, "agree": SHAPES[shape].early_exit_agree}


def test_f_is_c_with_probes_that_never_agree() -> None:
    wl = SHAPES["long"]
    c_tokens, c_body = wl.body("C", 0)
    f_tokens, f_body = wl.body("F", 0)
    early_exit = f_body["thinking_budget"].pop("early_exit")
    assert (f_tokens, f_body) == (c_tokens, c_body)
    assert early_exit["every"] == 256
    assert early_exit["agree"] > wl.cap // early_exit["every"]  # more than the probes a request can run


def test_aggregate_takes_the_median_of_each_field_and_keeps_the_repetitions() -> None:
    reps = [
        {"output_tok_s": 30.0, "requests": 4, "ttft_ms_p50": None, "interventions": {"wait": {"added_tpot_p50": 1.0}}},
        {"output_tok_s": 10.0, "requests": 4, "ttft_ms_p50": 5.0, "interventions": {}},
        {"output_tok_s": 20.0, "requests": 4, "ttft_ms_p50": 7.0, "interventions": {"wait": {"added_tpot_p50": 3.0}}},
    ]
    row = plan.aggregate(reps)
    assert row["output_tok_s"] == 20.0 and row["requests"] == 4
    assert row["ttft_ms_p50"] == 6.0  # a repetition without the value does not count
    assert row["interventions"] == {"wait": {"added_tpot_p50": 2.0}}
    assert row["repeats"] == reps
    with pytest.raises(ValueError):
        plan.aggregate([])


def _level(tok_s: float, tpot: float = 100.0, probes: int = 0) -> dict[str, Any]:
    return {
        "output_tok_s": tok_s,
        "requests": 4,
        "errors": 0,
        "tpot_ms_mean": tpot,
        "tokens_per_request": 1280,
        "output_tokens": 4 * 1280,
        "probes": probes,
        "interventions": {},
    }


def test_ratios_are_medians_of_per_repetition_ratios_not_ratios_of_medians() -> None:
    c_reps = [_level(10.0), _level(20.0), _level(30.0)]
    f_reps = [_level(9.0, probes=12), _level(10.0, probes=12), _level(33.0, probes=12)]
    results = {"C": {"4": plan.aggregate(c_reps)}, "F": {"4": plan.aggregate(f_reps)}}
    summary = report.ratios(results, 4)
    assert summary["repetitions"] == 3
    per = [r["by_concurrency"]["4"]["P5_F_over_C"] for r in summary["by_repetition"]]
    assert per == pytest.approx([0.9, 0.5, 1.1])
    assert summary["by_concurrency"]["4"]["P5_F_over_C"] == pytest.approx(0.9)  # the ratio of medians is 0.5
    assert summary["by_concurrency"]["4"]["P5_probes_per_request"] == 3
    assert "P5 F/C tok/s" in report.markdown(results, summary)


def test_a_level_measured_once_pairs_with_every_repetition() -> None:
    results = {
        "D": {"4": plan.aggregate([_level(10.0), _level(12.0), _level(14.0)])},
        "E": {"4": _level(5.0)},  # the offline loop runs once
    }
    summary = report.ratios(results, 4)
    assert [r["P3_D_over_E"] for r in summary["by_repetition"]] == pytest.approx([2.0, 2.4, 2.8])
    assert summary["P3_D_over_E"] == pytest.approx(2.4)


def test_probe_cost_in_tpot_from_the_tpot_difference() -> None:
    # 1,280 tokens at 100 ms, 3 probes per request that each stall the stream 3 s (30 steps).
    n, tpot_c, probes, stall = 1280, 100.0, 3, 3000.0
    tpot_f = tpot_c + probes * stall / (n - 1)
    cost = report.probe_cost(_level(9.0, tpot=tpot_f, probes=4 * probes), _level(10.0, tpot=tpot_c))
    assert cost["P5_F_over_C"] == pytest.approx(0.9)
    assert cost["P5_probes_per_request"] == probes
    assert cost["P5_tpot_ms_per_probe"] == pytest.approx(stall / (n - 1))
    assert cost["P5_added_tpot_per_probe"] == pytest.approx(stall / tpot_c)
    # No probes ran (the thinking ended before `every`): no cost to report, the ratio still is.
    none = report.probe_cost(_level(10.0), _level(10.0))
    assert none["P5_F_over_C"] == 1.0 and none["P5_added_tpot_per_probe"] is None


def test_probe_gaps_are_the_k_largest_stream_gaps_in_tpot() -> None:
    wl = Workload()
    times = [0.01 * i for i in range(40)]
    times = [t + (0.11 if i >= 10 else 0) + (0.11 if i >= 25 else 0) for i, t in enumerate(times)]
    events = [Event(t, "reasoning", "x") for t in times]
    events.insert(30, Event(times[29] + 0.5, "content", wl.final_answer_text))  # a forced end's gap is no probe's
    record = RequestRecord(prompt_index=0, max_tokens=64, events=events, completion_tokens=41)
    record.thinking = {"probes": 2}
    assert report.probe_gaps(record, wl) == pytest.approx([11.0, 11.0], rel=0.05)
    record.thinking = {"probes": 0}
    assert report.probe_gaps(record, wl) == []

"""The s1 metrics on points whose values are worked out by hand in each test."""

from __future__ import annotations

import pytest

from evals.checkers import same_answer
from evals.metrics import (
    control,
    majority_vote,
    percentile,
    performance,
    scaling,
    scaling_report,
    scaling_unit,
    wilson_interval,
)


def test_control_counts_budgets_inside_their_bounds() -> None:
    # Caps 100, 200, 400: the mean thinking 90 and 200 are within (200 == cap counts), 450 exceeds 400.
    assert control([90, 200, 450], [(None, 100), (None, 200), (None, 400)]) == pytest.approx(2 / 3)


def test_control_applies_min_bounds_and_skips_unbounded_budgets() -> None:
    # A min of 50 met (60), a min of 50 missed (40); the unbounded budget is left out: 1 of 2.
    assert control([60, 40, 999], [(50, None), (50, None), (None, None)]) == 0.5
    assert control([10, 20], [(None, None), (None, None)]) is None


def test_scaling_is_the_mean_slope_over_all_pairs_in_points_per_thousand_tokens() -> None:
    # (1000, 0.2), (2000, 0.4), (4000, 0.3): slopes per token are 0.2/1000, 0.1/3000 and -0.1/2000.
    # Mean = (2e-4 + 3.333e-5 - 5e-5) / 3 = 6.111e-5 per token = 6.111 points per 1000 tokens.
    assert scaling([(2000, 0.4), (1000, 0.2), (4000, 0.3)]) == pytest.approx(6.1111, abs=1e-3)


def test_scaling_of_a_flat_curve_is_zero_and_needs_two_amounts() -> None:
    assert scaling([(100, 0.5), (300, 0.5), (900, 0.5)]) == 0
    assert scaling([(100, 0.5)]) is None
    assert scaling([(100, 0.5), (100, 0.7)]) is None  # same amount: no slope


def test_scaling_of_a_falling_curve_is_negative() -> None:
    # One pair: from 0.6 at 500 tokens to 0.4 at 1500 tokens = -0.2 per 1000 tokens = -20 points.
    assert scaling([(500, 0.6), (1500, 0.4)]) == pytest.approx(-20)


def test_performance_is_the_best_accuracy() -> None:
    assert performance([0.2, 0.57, 0.5]) == 0.57
    assert performance([]) is None


def test_majority_vote_picks_the_most_frequent_answer() -> None:
    assert majority_vote(["3", "5", "5", "3", "5"], str.__eq__) == "5"


def test_majority_vote_tie_goes_to_the_answer_seen_first() -> None:
    assert majority_vote(["7", "9", "9", "7"], str.__eq__) == "7"
    assert majority_vote(["9", "7", "7", "9"], str.__eq__) == "9"


def test_majority_vote_ignores_missing_answers_and_groups_equal_ones() -> None:
    # None does not vote; 1/2, 0.5 and \frac{1}{2} are one answer (3 votes) against 2 votes for 1/3.
    answers = [None, "1/3", "1/2", "0.5", None, "\\frac{1}{3}", "\\frac{1}{2}"]
    assert majority_vote(answers, lambda a, b: same_answer("math", a, b)) == "1/2"
    assert majority_vote([None, None], str.__eq__) is None


def test_percentile_interpolates_like_numpy() -> None:
    # numpy.percentile([10, 20, 30, 40], 50) = 25; at 95: rank 2.85 -> 30 + 0.85 * 10 = 38.5.
    assert percentile([40, 10, 30, 20], 50) == 25
    assert percentile([40, 10, 30, 20], 95) == pytest.approx(38.5)
    assert percentile([], 50) is None


def test_wilson_interval_brackets_the_proportion_and_stays_in_range() -> None:
    # For 5/10 the 95 % Wilson interval is symmetric about 0.5: 0.2366 .. 0.7634.
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    low, high = wilson_interval(0, 5)
    assert low == 0 and 0 < high < 1
    low, high = wilson_interval(5, 5)
    assert 0 < low < 1 and high == pytest.approx(1.0)


def test_scaling_report_counts_pairs_and_flags_near_equal_amounts() -> None:
    # 1000 vs 1001 tokens, 1.3 points apart: 0.013 per token = 1300 points per 1000 tokens, which swamps
    # the two honest slopes 0.3 / 3000 -> 10 and 0.287 / 2999 -> 9.5698 (per 1000 tokens).
    report = scaling_report([(1000, 0.2), (1001, 0.213), (4000, 0.5)])
    assert report.pairs == 3
    assert report.close_pairs == [(1000, 1001)]
    assert report.value == pytest.approx((1300 + 10 + 9.5698) / 3, abs=1e-3)
    assert report.value_without_close == pytest.approx((10 + 9.5698) / 2, abs=1e-3)


def test_scaling_report_leaves_pairs_apart_alone() -> None:
    # 1000 and 1060 are 5.7 % apart, beyond the 5 % gap; equal amounts are no pair at all.
    report = scaling_report([(1000, 0.2), (1060, 0.3), (1060, 0.4)])
    assert report.pairs == 2 and report.close_pairs == []
    assert scaling_unit("completion_tokens") == "accuracy percentage points per 1000 completion tokens"

"""The s1 paper's test-time scaling metrics (Control, Scaling, Performance) and the statistics beside them.

Pure functions over numbers, so they can be checked on hand-computed points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TypeVar

T = TypeVar("T")

# Scaling is reported as accuracy percentage points gained per 1,000 thinking tokens: a slope in raw
# fractions per token is a tiny number (around 1e-5) that reads as zero in a table. The paper's Table 3
# prints Scaling without a unit, so its numbers and these are not on a stated common scale.
SCALING_UNIT = "accuracy percentage points per 1000 thinking tokens"
# Two compute amounts closer than this share of the larger one make a slope that dwarfs the others
# (1,000 vs 1,001 tokens with 1.3 points between them is a slope of 13,333): such pairs are flagged.
CLOSE_PAIR_GAP = 0.05


@dataclass(frozen=True)
class ScalingReport:
    value: float | None  # the paper's Scaling over every pair of distinct amounts, in SCALING_UNIT
    pairs: int  # pairs of points with distinct amounts: the pairs averaged
    close_pairs: list[tuple[float, float]]  # pairs closer than the gap, each (smaller, larger) amount
    value_without_close: float | None  # the same average over the pairs that are not close


def scaling_unit(compute: str = "thinking_tokens") -> str:
    """SCALING_UNIT for the compute measure in use: thinking tokens, or completion tokens."""
    return f"accuracy percentage points per 1000 {compute.removesuffix('_tokens')} tokens"


def within(value: float, lower: float | None, upper: float | None) -> bool:
    """Whether a thinking amount lies inside the requested [min, max] (a missing bound is open)."""
    return (lower is None or value >= lower) and (upper is None or value <= upper)


def control(amounts: Sequence[float], bounds: Sequence[tuple[float | None, float | None]]) -> float | None:
    """Share of evaluated budgets whose thinking stays inside the requested bounds.

    The paper's Control = 1/|A| * sum over a in A of 1(a_min <= a <= a_max). Budgets that request no
    bound at all (neither min nor max) cannot be in or out of control and are left out; with none left
    the method has no Control (None).
    """
    pairs = [(a, b) for a, b in zip(amounts, bounds, strict=True) if b != (None, None)]
    if not pairs:
        return None
    return sum(within(a, lo, hi) for a, (lo, hi) in pairs) / len(pairs)


def scaling_report(points: Sequence[tuple[float, float]], close_gap: float = CLOSE_PAIR_GAP) -> ScalingReport:
    """Scaling (see `scaling`) with its fine print: how many pairs it averages and which are close."""
    slopes, close, far = [], [], []
    for (a, fa), (b, fb) in combinations(sorted(points), 2):
        if math.isclose(a, b):
            continue
        slope = (fb - fa) / (b - a) * 100 * 1000
        slopes.append(slope)
        if b - a < close_gap * max(abs(a), abs(b)):
            close.append((a, b))
        else:
            far.append(slope)
    return ScalingReport(mean(slopes), len(slopes), close, mean(far))


def scaling(points: Sequence[tuple[float, float]]) -> float | None:
    """Average slope over all pairs of (thinking tokens, accuracy in 0..1) points, in SCALING_UNIT.

    The paper's Scaling = 1/C(|A|,2) * sum over a < b of (f(b) - f(a)) / (b - a): the average slope of
    the piecewise-linear accuracy curve between every two evaluated amounts of thinking. Pairs at the
    same amount have no slope and are skipped; fewer than two distinct amounts give None.
    """
    return scaling_report(points).value


def performance(accuracies: Sequence[float]) -> float | None:
    """The paper's Performance: the best accuracy the method reaches over its budgets."""
    return max(accuracies) if accuracies else None


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion; it stays inside [0, 1] even at 0/n and n/n."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), numpy's default method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def majority_vote(answers: Sequence[T | None], same: Callable[[T, T], bool]) -> T | None:
    """The most frequent answer, grouping answers that `same` calls equal; None answers do not vote.

    A tie goes to the group whose first member came earliest, so the vote is deterministic and, at
    n = 1, equals the single sample's answer.
    """
    groups: list[list[T]] = []
    for answer in answers:
        if answer is None:
            continue
        for group in groups:
            if same(group[0], answer):
                group.append(answer)
                break
        else:
            groups.append([answer])
    if not groups:
        return None
    best = max(len(g) for g in groups)
    return next(g[0] for g in groups if len(g) == best)

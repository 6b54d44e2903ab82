"""Warm-up and repetition planning: which requests warm a server before it is measured, and how
repeated measurements of one level combine into one row and one median ratio.

Pure: no server, no engine. `benchmarks.run` drives it, `benchmarks.report` reads its output.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from benchmarks.workload import Workload

# Every request path a measured scenario takes: plain (B), capped with a forced end (C),
# floor with waits (D), capped with answer probes (F). BD takes B's path.
WARM_PATHS = ("B", "C", "D", "F")


def warm_workload(workload: Workload) -> Workload:
    """Short requests that still take every path of `workload`: a binding cap, a floor with
    at least one wait, and one answer probe before the cap (probes come every `every` thinking
    tokens, at least 16)."""
    every = 16
    return dataclasses.replace(
        workload,
        output_len=64,
        cap=2 * every,
        min_thinking=every,
        num_ignore=1,
        d_cap=48,
        early_exit_every=every,
        output_lens={},
    )


def warm_up_plan(levels: Iterable[int], scenarios: Iterable[str]) -> list[tuple[int, str]]:
    """(concurrency, scenario) warm-up runs: every path the measured scenarios take, at every
    measured concurrency (ascending), so no measured level is the first at its batch size on
    any path. A stock server (no budget paths) warms with B's plain requests."""
    wanted = set(scenarios)
    paths = [s for s in WARM_PATHS if s in wanted or (s == "B" and "BD" in wanted)]
    if not paths:
        paths = ["B"]
    return [(c, s) for c in sorted(set(levels)) for s in paths]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _combine(values: Sequence[Any]) -> Any:
    """Numbers: their median (ints stay ints when every repetition agrees); dicts: key by key;
    anything else: the first repetition's."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, bool) or not isinstance(first, (int, float, dict)):
        return first
    if isinstance(first, dict):
        keys = dict.fromkeys(k for v in values if isinstance(v, dict) for k in v)
        return {k: _combine([v[k] for v in values if isinstance(v, dict) and k in v]) for k in keys}
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if isinstance(first, int) and all(v == first for v in numbers):
        return first
    return median(numbers)


def aggregate(repeats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One level's repetitions as one row: each numeric field the median over repetitions
    (nested dicts key by key), other fields the first repetition's, and every repetition kept
    under `repeats`."""
    if not repeats:
        raise ValueError("no repetitions to aggregate")
    row = _combine(list(repeats))
    row["repeats"] = [dict(r) for r in repeats]
    return row


def repetition(results: dict[str, dict[str, dict[str, Any]]], i: int) -> dict[str, dict[str, dict[str, Any]]]:
    """The results as repetition `i` saw them: each level's i-th repetition. A level measured
    fewer times (scenario E runs once) gives its last repetition; one with no `repeats` is
    itself."""
    view: dict[str, dict[str, dict[str, Any]]] = {}
    for s, levels in results.items():
        for c, row in levels.items():
            reps = row.get("repeats") or [row]
            view.setdefault(s, {})[c] = reps[min(i, len(reps) - 1)]
    return view


def repetition_count(results: dict[str, dict[str, dict[str, Any]]]) -> int:
    return max((len(row.get("repeats") or [row]) for levels in results.values() for row in levels.values()), default=1)


Results = dict[str, dict[str, dict[str, Any]]]  # scenario -> str(concurrency) -> metrics


def median_of_repetitions(
    results: Results, rows: Callable[[Results], dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`rows` (a function of one repetition's results giving flat or one-level-nested numbers)
    applied to every repetition; returns the key-by-key median and the per-repetition values."""
    per = [rows(repetition(results, i)) for i in range(repetition_count(results))]
    return _combine_optional(per), per


def _combine_optional(per: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for p in per for k in p):
        values = [p.get(key) for p in per]
        if any(isinstance(v, dict) for v in values):
            out[key] = _combine_optional([v for v in values if isinstance(v, dict)])
        elif all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            out[key] = median(values)
        else:
            out[key] = next((v for v in values if v is not None), None)
    return out

"""From request records to metrics, the P1-P5 ratios, a Markdown table and a plot."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import plan
from benchmarks.client import RequestRecord
from benchmarks.workload import SCENARIO_TITLES, Workload

GOALS = {
    "P1_throughput": ">= 1.00",
    "P1_ttft_p50": "<= 1.05",
    "P2": ">= 0.95",
    "P3": ">= 1.5",
    "P4": "<= 1.0 TPOT",
    "P5": ">= 0.9 at every=256",
}


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def interventions(record: RequestRecord, workload: Workload) -> list[dict[str, Any]]:
    """The stall at every forcing intervention visible in a stream.

    An inserted wait text arrives as its own reasoning delta, an inserted final-answer text
    as its own content delta. The stall is the gap from the last generated delta before it to
    the first generated delta after it; `added_tpot` is that gap in units of the request's
    TPOT, minus the one TPOT an uninterrupted stream would have taken.
    """
    tpot = request_tpot(record)
    events = record.events
    found = []
    for i, e in enumerate(events):
        kind = _marker_kind(e, workload)
        if kind is None or i == 0 or i + 1 >= len(events) or not tpot:
            continue
        before, after = events[i - 1], events[i + 1]
        if _marker_kind(before, workload) or _marker_kind(after, workload):
            continue  # back-to-back insertions: no generated token to time against
        gap = after.t - before.t
        found.append({"kind": kind, "gap_ms": gap * 1e3, "tpot_ms": tpot * 1e3, "added_tpot": gap / tpot - 1.0})
    return found


def _marker_kind(e: Any, workload: Workload) -> str | None:
    """'wait' or 'final_answer' when the stream event is exactly that inserted text."""
    if e.kind == "reasoning" and e.text == workload.wait_text:
        return "wait"
    if e.kind == "content" and e.text == workload.final_answer_text:
        return "final_answer"
    return None


def request_tpot(record: RequestRecord) -> float | None:
    tokens = record.completion_tokens or 0
    if tokens < 2 or len(record.events) < 2:
        return None
    return (record.events[-1].t - record.events[0].t) / (tokens - 1)


def probe_gaps(record: RequestRecord, workload: Workload) -> list[float]:
    """The stall of each answer probe, measured in the stream: a request with k probes pauses k
    times, so its k largest gaps between generated deltas (none next to inserted text) are the
    probes'. Each is given as `added_tpot` like P4's: the gap over the request's TPOT without
    those gaps, minus one."""
    k = int((record.thinking or {}).get("probes") or 0)
    events, tokens = record.events, record.completion_tokens or 0
    gaps = [
        b.t - a.t
        for a, b in zip(events, events[1:], strict=False)
        if not _marker_kind(a, workload) and not _marker_kind(b, workload)
    ]
    if k == 0 or len(gaps) <= k or tokens - 1 - k <= 0:
        return []
    top = sorted(gaps, reverse=True)[:k]
    tpot = (events[-1].t - events[0].t - sum(top)) / (tokens - 1 - k)
    return [g / tpot - 1.0 for g in top] if tpot > 0 else []


def level_metrics(records: list[RequestRecord], wall: float, workload: Workload) -> dict[str, Any]:
    ok = [r for r in records if r.error is None and r.events]
    tokens = sum(r.completion_tokens or 0 for r in ok)
    ttft = [r.events[0].t * 1e3 for r in ok]
    tpot = [t * 1e3 for t in (request_tpot(r) for r in ok) if t]
    stalls = [s for r in ok for s in interventions(r, workload)]
    out: dict[str, Any] = {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "error_examples": sorted({r.error for r in records if r.error})[:3],
        "output_tokens": tokens,
        "wall_s": wall,
        "output_tok_s": tokens / wall if wall > 0 else 0.0,
        "ttft_ms_p50": _pct(ttft, 50),
        "ttft_ms_p99": _pct(ttft, 99),
        "tpot_ms_p50": _pct(tpot, 50),
        "tpot_ms_p99": _pct(tpot, 99),
        "waits_inserted": sum((r.thinking or {}).get("waits_inserted", 0) for r in ok),
        "forced_ends": sum(bool((r.thinking or {}).get("forced_end")) for r in ok),
        "tpot_ms_mean": float(np.mean(tpot)) if tpot else None,
        "tokens_per_request": tokens / len(ok) if ok else None,
        "probes": sum(int((r.thinking or {}).get("probes") or 0) for r in ok),
        "probe_tokens": sum(int((r.thinking or {}).get("probe_tokens") or 0) for r in ok),
        "interventions": {},
    }
    gaps = [g for r in ok for g in probe_gaps(r, workload)]
    if gaps:
        out["probe_gap_added_tpot_p50"] = _pct(gaps, 50)
    for kind in ("wait", "final_answer"):
        added = [s["added_tpot"] for s in stalls if s["kind"] == kind]
        if added:
            out["interventions"][kind] = {
                "count": len(added),
                "added_tpot_p50": _pct(added, 50),
                "added_tpot_p90": _pct(added, 90),
                "gap_ms_p50": _pct([s["gap_ms"] for s in stalls if s["kind"] == kind], 50),
            }
    return out


def reference_metrics(result: dict[str, Any]) -> dict[str, Any]:
    reqs = result["requests"]
    tokens = sum(r["completion_tokens"] for r in reqs)
    return {
        "requests": len(reqs),
        "errors": 0,
        "output_tokens": tokens,
        "wall_s": result["wall_s"],
        "output_tok_s": tokens / result["wall_s"] if result["wall_s"] > 0 else 0.0,
        "batch_size": result["batch_size"],
        "waits_inserted": sum(r["waits_inserted"] for r in reqs),
        "forced_ends": sum(r["forced_end"] for r in reqs),
        "rounds": sum(r["rounds"] for r in reqs),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def probe_cost(f: dict[str, Any] | None, c: dict[str, Any] | None) -> dict[str, float | None]:
    """P5, what F's probes cost against C (the same requests without them), from one level each.

    Probes add no tokens, only time, so they raise TPOT: a request of n tokens that pauses p
    times for s seconds each has TPOT_F = TPOT_C + p·s / (n − 1). Hence
    `tpot_ms_per_probe` = (TPOT_F − TPOT_C) / p, the TPOT one probe per request adds, and
    `added_tpot_per_probe` = (TPOT_F − TPOT_C)·(n − 1) / (p·TPOT_C) = s / TPOT_C, the stall of
    one probe in TPOTs (decode steps), comparable to P4's added TPOT per wait.
    """
    out: dict[str, float | None] = {
        "P5_F_over_C": _ratio(f and f["output_tok_s"], c and c["output_tok_s"]),
        "P5_probes_per_request": None,
        "P5_tpot_ms_per_probe": None,
        "P5_added_tpot_per_probe": None,
        "P5_probe_gap_added_tpot_p50": f.get("probe_gap_added_tpot_p50") if f else None,
    }
    served = f and (f["requests"] - f["errors"])
    if not (f and c and served and f.get("probes")):
        return out
    per_request = f["probes"] / served
    tpot_f, tpot_c, n = f.get("tpot_ms_mean"), c.get("tpot_ms_mean"), f.get("tokens_per_request")
    out["P5_probes_per_request"] = per_request
    if tpot_f is not None and tpot_c and n:
        out["P5_tpot_ms_per_probe"] = (tpot_f - tpot_c) / per_request
        out["P5_added_tpot_per_probe"] = (tpot_f - tpot_c) * (n - 1) / (per_request * tpot_c)
    return out


def _level_row(results: dict[str, dict[str, dict[str, Any]]], key: str) -> dict[str, Any]:
    def get(s: str, field: str) -> float | None:
        return results.get(s, {}).get(key, {}).get(field)

    row = {
        "P1_throughput": _ratio(get("B", "output_tok_s"), get("A", "output_tok_s")),
        "P1_ttft_p50": _ratio(get("B", "ttft_ms_p50"), get("A", "ttft_ms_p50")),
        "P2_C_over_B": _ratio(get("C", "output_tok_s"), get("B", "output_tok_s")),
        "P2_D_over_BD": _ratio(get("D", "output_tok_s"), get("BD", "output_tok_s")),
        "P2_D_over_B": _ratio(get("D", "output_tok_s"), get("B", "output_tok_s")),
    }
    for s, kind in (("C", "final_answer"), ("D", "wait")):
        stall = results.get(s, {}).get(key, {}).get("interventions", {}).get(kind)
        row[f"P4_{s}_added_tpot_p50"] = stall["added_tpot_p50"] if stall else None
    row.update(probe_cost(results.get("F", {}).get(key), results.get("C", {}).get(key)))
    return row


def ratios(results: dict[str, dict[str, dict[str, Any]]], ref_concurrency: int) -> dict[str, Any]:
    """results[scenario][str(concurrency)] -> metrics (with `repeats`, see plan.aggregate).
    Every ratio is between peers of one repetition of one run; each is reported as the median
    over repetitions, the per-repetition values under `by_repetition`."""
    levels = sorted({int(c) for s in ("A", "B", "C", "D", "F") for c in results.get(s, {})})

    def one(view: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
        e = view.get("E", {}).get(str(ref_concurrency))
        d = view.get("D", {}).get(str(ref_concurrency))
        return {
            "by_concurrency": {str(c): _level_row(view, str(c)) for c in levels},
            "P3_D_over_E": _ratio(d and d["output_tok_s"], e and e["output_tok_s"]),
        }

    median, per = plan.median_of_repetitions(results, one)
    return {
        "goals": GOALS,
        "repetitions": len(per),
        "by_concurrency": median.get("by_concurrency", {}),
        "P3_concurrency": ref_concurrency,
        "P3_D_over_E": median.get("P3_D_over_E"),
        "by_repetition": per,
    }


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(results: dict[str, dict[str, dict[str, Any]]], summary: dict[str, Any]) -> str:
    lines = [
        "| scenario | conc. | requests | output tokens | output tok/s | TTFT p50 ms | TTFT p99 ms "
        "| TPOT p50 ms | TPOT p99 ms | waits | forced ends | probes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in ("A", "B", "C", "D", "BD", "F", "E"):
        for c, m in sorted(results.get(s, {}).items(), key=lambda kv: int(kv[0])):
            label = f"{s} {SCENARIO_TITLES[s]}"
            errors = f" ({m['errors']} failed)" if m.get("errors") else ""
            lines.append(
                f"| {label} | {c} | {m['requests']}{errors} | {m['output_tokens']} | {_fmt(m['output_tok_s'])} "
                f"| {_fmt(m.get('ttft_ms_p50'))} | {_fmt(m.get('ttft_ms_p99'))} | {_fmt(m.get('tpot_ms_p50'))} "
                f"| {_fmt(m.get('tpot_ms_p99'))} | {m.get('waits_inserted', 0)} | {m.get('forced_ends', 0)} "
                f"| {m.get('probes', 0)} |"
            )
    reps = summary.get("repetitions", 1)
    lines += [
        "",
        f"Rows: medians of {reps} repetition(s) per level; ratios: medians of the {reps} per-repetition ratios.",
        "",
        "| conc. | P1 B/A tok/s (≥ 1.00) | P1 B/A TTFT p50 (≤ 1.05) | P2 C/B tok/s (≥ 0.95) "
        "| P2 D/BD tok/s (≥ 0.95) | P4 C cap, added TPOT (≤ 1) | P4 D wait, added TPOT (≤ 1) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in sorted(summary["by_concurrency"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {c} | {_fmt(r['P1_throughput'], 2)} | {_fmt(r['P1_ttft_p50'], 2)} | {_fmt(r['P2_C_over_B'], 2)} "
            f"| {_fmt(r['P2_D_over_BD'], 2)} | {_fmt(r['P4_C_added_tpot_p50'], 2)} "
            f"| {_fmt(r['P4_D_added_tpot_p50'], 2)} |"
        )
    lines += [
        "",
        f"P3 D/E output tok/s at {summary['P3_concurrency']} concurrent (≥ 1.5): {_fmt(summary['P3_D_over_E'], 2)}",
    ]
    if "F" in results:
        lines += [
            "",
            "| conc. | P5 F/C tok/s (≥ 0.9) | probes per request | TPOT ms added per probe "
            "| one probe, added TPOT (from TPOT) | one probe, added TPOT (stream gaps, p50) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for c, r in sorted(summary["by_concurrency"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {c} | {_fmt(r.get('P5_F_over_C'), 2)} | {_fmt(r.get('P5_probes_per_request'), 1)} "
                f"| {_fmt(r.get('P5_tpot_ms_per_probe'), 2)} | {_fmt(r.get('P5_added_tpot_per_probe'), 1)} "
                f"| {_fmt(r.get('P5_probe_gap_added_tpot_p50'), 1)} |"
            )
    return "\n".join(lines) + "\n"


def path_comparison(summaries: dict[str, dict[str, Any]], ref_concurrency: int) -> str:
    """The forcing paths side by side at the P3 concurrency."""
    key = str(ref_concurrency)
    lines = [
        f"### forcing paths side by side, {ref_concurrency} concurrent",
        "",
        "| path | P1 B/A tok/s | P2 C/B tok/s | P2 D/BD tok/s | P3 D/E tok/s | P4 C forced end, added TPOT "
        "| P4 D wait, added TPOT | P5 F/C tok/s | P5 one probe, added TPOT |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path, summary in summaries.items():
        r = summary["by_concurrency"].get(key, {})
        lines.append(
            f"| {path} | {_fmt(r.get('P1_throughput'), 2)} | {_fmt(r.get('P2_C_over_B'), 2)} "
            f"| {_fmt(r.get('P2_D_over_BD'), 2)} | {_fmt(summary.get('P3_D_over_E'), 2)} "
            f"| {_fmt(r.get('P4_C_added_tpot_p50'), 2)} | {_fmt(r.get('P4_D_added_tpot_p50'), 2)} "
            f"| {_fmt(r.get('P5_F_over_C'), 2)} | {_fmt(r.get('P5_added_tpot_per_probe'), 1)} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, dict[str, Any]]], path: str, title: str) -> bool:
    """Throughput and TTFT p50 against concurrency for A-D; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s, marker in (("A", "o"), ("B", "s"), ("C", "^"), ("D", "v")):
        levels = sorted(results.get(s, {}), key=int)
        if not levels:
            continue
        xs = [int(c) for c in levels]
        label = f"{s}: {SCENARIO_TITLES[s]}"
        left.plot(xs, [results[s][c]["output_tok_s"] for c in levels], marker=marker, label=label)
        right.plot(xs, [results[s][c]["ttft_ms_p50"] or 0 for c in levels], marker=marker, label=label)
    for ax, ylabel in ((left, "output tokens/s"), (right, "TTFT p50 (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

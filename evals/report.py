"""summary.md: the s1 paper's Table 3 layout (Control, Scaling, Performance, |A|), then each method's points."""

from __future__ import annotations

from typing import Any

from evals.metrics import CLOSE_PAIR_GAP


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _compute_name(method: dict[str, Any]) -> str:
    return "completion tokens" if method.get("compute") == "completion_tokens" else "thinking tokens"


def method_notes(methods: dict[str, Any]) -> list[str]:
    """One line per caveat: compute measured as completion tokens, and pairs of points too close to trust."""
    notes = []
    for name, m in methods.items():
        if m.get("compute") == "completion_tokens":
            notes.append(
                f"- **{name}**: the model wrote no thinking segment (0 thinking tokens at every point), so compute "
                f"is measured as completion tokens per question and its Scaling is in {m['scaling_unit']}."
            )
        if m.get("failed_samples"):
            broken = [p for p in m["points"] if p["failed_samples"]]
            where = ", ".join(f"{p['label']}: {p['failed_samples']}" for p in broken)
            reasons = sorted({r for p in broken for r in p["failed_reasons"]})
            notes.append(
                f"- **Failed samples, {name}**: {m['failed_samples']} ({where}). Each counts as a wrong answer and "
                f"is left out of the token statistics. Why: {'; '.join(reasons[:3])}."
            )
        close = m.get("scaling_close_pairs") or []
        if close:
            shown = ", ".join(f"{a:.0f} vs {b:.0f}" for a, b in close[:3])
            notes.append(
                f"- **Warning, {name}**: {len(close)} of {m['scaling_pairs']} pairs of points are closer than "
                f"{100 * CLOSE_PAIR_GAP:.0f}% in compute ({shown} tokens); their slopes can dominate Scaling. "
                f"Over the other pairs Scaling is {_num(m['scaling_without_close_pairs'], 2)}."
            )
    return notes


def early_exit_table(methods: dict[str, Any]) -> list[str]:
    """Early exit beside plain budget forcing at the caps both ran: accuracy, mean thinking, tokens saved."""
    if "early-exit" not in methods or "budget" not in methods:
        return []
    plain = {p["budget"]: p for p in methods["budget"]["points"] if p["kind"] == "max_thinking"}
    pairs = [(p, plain[p["budget"]]) for p in methods["early-exit"]["points"] if p["budget"] in plain]
    if not pairs:
        return []
    lines = [
        "",
        "## early-exit against budget forcing",
        "",
        "Tokens saved: mean thinking per question under budget forcing minus under early exit, at the same cap; "
        "the probes' own tokens are not thinking and are listed beside it.",
        "",
        "| cap | accuracy budget | accuracy early-exit | mean thinking budget | mean thinking early-exit "
        "| tokens saved | early exits | mean probe tokens |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for early, forced in sorted(pairs, key=lambda pair: pair[0]["budget"]):
        a, b = forced["mean_thinking_tokens"], early["mean_thinking_tokens"]
        saved = "n/a" if a is None or b is None else f"{a - b:.0f}" + (f" ({100 * (a - b) / a:.0f}%)" if a else "")
        lines.append(
            f"| {early['budget']} | {_pct(forced['accuracy'])} | {_pct(early['accuracy'])} | {_num(a)} | {_num(b)} "
            f"| {saved} | {_pct(early.get('early_exit_share'))} | {_num(early.get('mean_probe_tokens'))} |"
        )
    return lines


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"# Test-time scaling: {summary['model']} on {summary['dataset']} ({summary['questions']} questions)",
        "",
        f"Scaling is the s1 paper's average slope over every pair of points, in {summary['scaling_unit']} "
        "(the paper's Table 3 prints Scaling without a unit); *Scaling pairs* is how many pairs it averages. "
        "Control counts budgets whose mean thinking stays within the requested min/max; n/a where no budget "
        "requests a bound. Mean thinking is per question: with several samples (majority) it sums them. "
        "Every sample is regraded from its stored output against this run's gold answers.",
        "",
        "| Method | Control | Scaling | Performance | \\|A\\| | Scaling pairs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in summary["methods"].items():
        lines.append(
            f"| {name} | {_pct(m['control'])} | {_num(m['scaling'], 2)} | {_pct(m['performance'])} | {m['budgets']} "
            f"| {m.get('scaling_pairs', 'n/a')} |"
        )
    notes = method_notes(summary["methods"])
    if notes:
        lines += ["", *notes]
    lines += early_exit_table(summary["methods"])
    for name, m in summary["methods"].items():
        lines += [
            "",
            f"## {name}",
            "",
            "| budget | accuracy (95% CI) | mean thinking | thinking p50 / p95 per sample | mean answer | waits "
            f"| forced ends | within | failed | compute ({_compute_name(m)}) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for p in m["points"]:
            low, high = p["accuracy_ci95"]
            within = {None: "n/a", True: "yes", False: "no"}[p["within_bounds"]]
            lines.append(
                f"| {p['label']} | {_pct(p['accuracy'])} ({_pct(low)}–{_pct(high)}) "
                f"| {_num(p['mean_thinking_tokens'])} | {_num(p['p50_thinking_tokens'])} / "
                f"{_num(p['p95_thinking_tokens'])} | {_num(p['mean_answer_tokens'])} "
                f"| {_num(p['mean_waits_inserted'], 2)} | {_pct(p['forced_end_share'])} | {within} "
                f"| {p.get('failed_samples', 0)} "
                f"| {_num(p.get('compute_tokens'))} |"
            )
    for name, reason in summary.get("failed_methods", {}).items():
        lines += ["", f"**{name} did not run**: {reason}"]
    earlier = summary.get("earlier_methods") or {}
    if earlier:
        shown = ", ".join(f"{name} ({entry['settings']['model']})" for name, entry in earlier.items())
        lines += ["", f"From earlier runs into this folder, summarised from their stored rows: {shown}."]
    if summary.get("max_tokens"):
        lines += ["", f"Bound on all a sample generates (max_tokens): {summary['max_tokens']['how']}."]
    lines += [
        "",
        f"{summary['requests_sent']} requests in this run, {summary['wall_s']:.1f} s wall time, "
        f"{_num(summary['output_tokens_per_second'], 1)} output tokens/s over the run.",
        "",
    ]
    return "\n".join(lines)

"""summary.md: the s1 paper's Table 3 layout (Control, Scaling, Performance, |A|), then each method's points."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"# Test-time scaling: {summary['model']} on {summary['dataset']} ({summary['questions']} questions)",
        "",
        f"Scaling is in {summary['scaling_unit']}. Control counts budgets whose mean thinking stays within the "
        "requested min/max; n/a where no budget requests a bound. Mean thinking is per question: with several "
        "samples (majority) it sums them.",
        "",
        "| Method | Control | Scaling | Performance | \\|A\\| |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, m in summary["methods"].items():
        lines.append(
            f"| {name} | {_pct(m['control'])} | {_num(m['scaling'], 2)} | {_pct(m['performance'])} | {m['budgets']} |"
        )
    for name, m in summary["methods"].items():
        lines += [
            "",
            f"## {name}",
            "",
            "| budget | accuracy (95% CI) | mean thinking | thinking p50 / p95 per sample | mean answer | waits "
            "| forced ends | within |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for p in m["points"]:
            low, high = p["accuracy_ci95"]
            within = {None: "n/a", True: "yes", False: "no"}[p["within_bounds"]]
            lines.append(
                f"| {p['label']} | {_pct(p['accuracy'])} ({_pct(low)}–{_pct(high)}) "
                f"| {_num(p['mean_thinking_tokens'])} | {_num(p['p50_thinking_tokens'])} / "
                f"{_num(p['p95_thinking_tokens'])} | {_num(p['mean_answer_tokens'])} "
                f"| {_num(p['mean_waits_inserted'], 2)} | {_pct(p['forced_end_share'])} | {within} |"
            )
    for name, reason in summary.get("failed_methods", {}).items():
        lines += ["", f"**{name} did not run**: {reason}"]
    lines += [
        "",
        f"{summary['requests_sent']} requests in this run, {summary['wall_s']:.1f} s wall time, "
        f"{_num(summary['output_tokens_per_second'], 1)} output tokens/s over the run.",
        "",
    ]
    return "\n".join(lines)

"""scaling.png: accuracy against mean thinking tokens on a log-2 x-axis, one line per method, as in the s1 figures.

Budgets are ticked at powers of two (512, 1k, 2k, 4k, ...), every method has a legend entry (also one
with no point to draw), and points a log axis cannot show are named below the plot in plain words. A
method whose model wrote no thinking is drawn against completion tokens, and its legend entry says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def tick_label(value: float) -> str:
    """512 -> "512", 1024 -> "1k", 16384 -> "16k", 1048576 -> "1M"."""
    if value >= 1 << 20:
        return f"{value / (1 << 20):g}M"
    if value >= 1024:
        return f"{value / 1024:g}k"
    return f"{value:g}"


def power_of_two_ticks(xs: list[float]) -> list[float]:
    """Powers of two from the one at or below the smallest x to the one at or above the largest."""
    low, high = math.floor(math.log2(min(xs))), math.ceil(math.log2(max(xs)))
    return [2.0**k for k in range(low, max(high, low + 1) + 1)]


def figure(summary: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    zero, unknown, xs_all = [], [], []
    for name, method in summary["methods"].items():
        x_of = "compute_tokens" if "compute_tokens" in (method["points"] or [{}])[0] else "mean_thinking_tokens"
        shown = [p for p in method["points"] if (p[x_of] or 0) > 0 and p["accuracy"] is not None]
        unknown += [f"{name} {p['label']}" for p in method["points"] if p[x_of] is None]
        zero += [f"{name} {p['label']}" for p in method["points"] if p[x_of] is not None and p not in shown]
        label = f"{name} (x: completion tokens)" if method.get("compute") == "completion_tokens" else name
        xs = [p[x_of] for p in shown]
        if not shown:
            label += " (no point to draw)"
        ax.plot(xs, [100 * p["accuracy"] for p in shown], marker="o", label=label)
        xs_all += xs
    ax.set_xscale("log", base=2)
    if xs_all:
        ticks = power_of_two_ticks(xs_all)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xlim(ticks[0] / 1.15, ticks[-1] * 1.15)  # every tick in view, the points between them
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: tick_label(value)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Average thinking tokens per question (log scale)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{summary['model']} on {summary['dataset']}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    notes = []
    if unknown:
        notes.append("Not drawn, the server did not count their thinking tokens: " + ", ".join(unknown))
    if zero:
        notes.append("Not drawn, they thought 0 tokens, which a log scale cannot show: " + ", ".join(zero))
    if notes:
        fig.text(0.01, 0.01, "\n".join(n[:160] for n in notes), fontsize=6, va="bottom")
    fig.tight_layout(rect=(0, 0.03 * len(notes), 1, 1))
    return fig


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(summary)
    fig.savefig(path)
    plt.close(fig)

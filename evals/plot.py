"""scaling.png: accuracy against mean thinking tokens on a log x-axis, one line per method, as in the s1 figures.

A method whose model wrote no thinking is drawn against completion tokens, and its legend entry says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    skipped = []
    for name, method in summary["methods"].items():
        # A log axis cannot show zero thinking; such points (and unknown counts) are listed below the plot.
        x_of = "compute_tokens" if "compute_tokens" in (method["points"] or [{}])[0] else "mean_thinking_tokens"
        shown = [p for p in method["points"] if (p[x_of] or 0) > 0 and p["accuracy"] is not None]
        skipped += [f"{name} {p['label']}" for p in method["points"] if p not in shown]
        if shown:
            xs = [p[x_of] for p in shown]
            ys = [100 * p["accuracy"] for p in shown]
            label = f"{name} (x: completion tokens)" if method.get("compute") == "completion_tokens" else name
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 512, not 5.12x10^2
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Average thinking tokens (log scale)")
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{summary['model']} on {summary['dataset']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if skipped:
        fig.text(0.01, 0.01, "not shown (no thinking measured): " + ", ".join(skipped)[:150], fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

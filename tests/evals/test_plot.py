"""scaling.png from hand-written summaries (no server): base-2 budget ticks, a legend entry per method, and a
plain-words note for the points a log axis cannot show."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from evals.plot import figure, plot


def point(label: str, thinking: float | None, accuracy: float = 0.5) -> dict:
    return {"label": label, "mean_thinking_tokens": thinking, "compute_tokens": thinking, "accuracy": accuracy}


SUMMARY = {
    "model": "m",
    "dataset": "d",
    "methods": {
        "budget": {"points": [point("max_thinking=512", 500), point("max_thinking=4096", 3900, 0.7)]},
        "token-conditional": {"points": [point("tokens=2048", 1800), point("tokens=0", 0)]},
        "class-conditional": {"points": [point("class=short", None), point("class=long", None)]},
    },
}


def test_budgets_are_ticked_at_powers_of_two() -> None:
    fig = figure(SUMMARY)
    fig.canvas.draw()
    (ax,) = fig.axes
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    plt.close(fig)
    assert ticks == [256, 512, 1024, 2048, 4096]
    assert shown == ["256", "512", "1k", "2k", "4k"]


def test_every_method_has_a_legend_entry_and_undrawn_points_are_explained() -> None:
    fig = figure(SUMMARY)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    notes = " ".join(t.get_text() for t in fig.texts)
    plt.close(fig)
    assert legend == ["budget", "token-conditional", "class-conditional (no point to draw)"]
    assert "the server did not count their thinking tokens: class-conditional class=short" in notes
    assert "thought 0 tokens, which a log scale cannot show: token-conditional tokens=0" in notes


def test_the_file_is_a_png(tmp_path: Path) -> None:
    plot(SUMMARY, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes().startswith(b"\x89PNG")

"""`s1serve eval` end to end against a real s1serve on the embedded model: a toy, so the pipeline is tested."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks.servers import REPO_ROOT, Server, free_port
from evals.cli import main
from tests.evals.conftest import ARITHMETIC

pytestmark = pytest.mark.engine

CAPS = (8, 16, 32)
SAMPLES = (1, 2, 4)
MAJORITY_CAP = 16


def sweep_args(base_url: str, out: Path) -> list[str]:
    return [
        "--base-url",
        base_url,
        "--model",
        "SmolLM2-135M-Instruct",
        "--dataset",
        str(ARITHMETIC),
        "--methods",
        "budget,majority",
        "--max-thinking",
        ",".join(map(str, CAPS)),
        "--samples",
        ",".join(map(str, SAMPLES)),
        "--majority-max-thinking",
        str(MAJORITY_CAP),
        "--max-tokens",
        "64",
        "--concurrency",
        "4",
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def first_run(s1serve: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    assert main(sweep_args(f"{s1serve.base_url}/v1", out)) == 0
    return out


def read_samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_every_sample_is_recorded_once(first_run: Path) -> None:
    rows = read_samples(first_run)
    budget = [r for r in rows if r["method"] == "budget"]
    majority = [r for r in rows if r["method"] == "majority"]
    assert len(budget) == 5 * len(CAPS)  # one sample per question and cap
    assert len(majority) == 5 * max(SAMPLES)  # one pool per question; each n votes over its first n
    assert len({r["key"] for r in rows}) == len(rows)
    for row in rows:
        assert row["prompt"] and row["thinking_report"] is not None
        assert isinstance(row["correct"], bool)
        assert row["thinking_tokens"] == row["thinking_report"]["thinking_tokens"]


def test_budget_caps_hold_and_control_is_complete(first_run: Path) -> None:
    summary = json.loads((first_run / "summary.json").read_text())
    budget = summary["methods"]["budget"]
    assert sorted(p["budget"] for p in budget["points"]) == list(CAPS)
    assert budget["control"] == 1.0 and budget["control_samples"] == 1.0
    for row in read_samples(first_run):
        cap = row["budget"] if row["method"] == "budget" else MAJORITY_CAP
        assert row["thinking_tokens"] <= cap, row
    means = [p["mean_thinking_tokens"] for p in budget["points"]]
    assert means == sorted(means)
    assert summary["scaling_unit"]


def test_accuracy_and_performance_agree_with_the_samples(first_run: Path) -> None:
    summary = json.loads((first_run / "summary.json").read_text())
    correct: dict[int, int] = defaultdict(int)
    for row in read_samples(first_run):
        if row["method"] == "budget":
            correct[row["budget"]] += row["correct"]
    points = summary["methods"]["budget"]["points"]
    for point in points:
        assert point["n"] == 5
        assert point["accuracy"] == pytest.approx(correct[point["budget"]] / 5)
        low, high = point["accuracy_ci95"]
        assert low <= point["accuracy"] <= high
    assert summary["methods"]["budget"]["performance"] == max(p["accuracy"] for p in points)


def test_majority_points_vote_over_n_samples(first_run: Path) -> None:
    summary = json.loads((first_run / "summary.json").read_text())
    majority = summary["methods"]["majority"]
    assert sorted(p["budget"] for p in majority["points"]) == list(SAMPLES)
    rows = [r for r in read_samples(first_run) if r["method"] == "majority"]
    for point in majority["points"]:
        mine = [r for r in rows if r["sample"] < point["budget"]]  # the first n samples of each pool
        # Thinking per question is the sum over its n samples: the compute behind one voted answer.
        expected = sum(r["thinking_tokens"] for r in mine) / 5
        assert point["mean_thinking_tokens"] == pytest.approx(expected)
        # A voted answer is one some sample gave: at least one of its samples must be right.
        solved = {r["question_id"] for r in mine if r["correct"]}
        assert point["accuracy"] <= len(solved) / 5


def test_report_and_plot_are_written(first_run: Path) -> None:
    table = (first_run / "summary.md").read_text()
    assert "| Method | Control | Scaling | Performance |" in table
    assert "| budget | 100.0% |" in table
    png = (first_run / "scaling.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    image = matplotlib.image.imread(first_run / "scaling.png")
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_resumed_run_sends_no_request(first_run: Path) -> None:
    """Rerun against an address where nothing listens: any request would fail the run."""
    before = (first_run / "samples.jsonl").read_bytes()
    first = json.loads((first_run / "summary.json").read_text())
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = subprocess.run(
        [sys.executable, "-m", "evals", *sweep_args(dead, first_run)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    again = json.loads((first_run / "summary.json").read_text())
    assert again["requests_sent"] == 0
    assert again["methods"] == first["methods"]
    assert (first_run / "samples.jsonl").read_bytes() == before


def test_defaults_fit_the_served_context_and_refusals_do_not_end_the_run(s1serve: Server, tmp_path: Path) -> None:
    """The server runs with --max-model-len 2048: with no --max-tokens the run fits; with a bound the server
    refuses, every sample is recorded as failed and the run still writes its summary."""
    base = ["--base-url", f"{s1serve.base_url}/v1", "--dataset", str(ARITHMETIC), "--limit", "2"]
    base += ["--methods", "budget", "--max-thinking", "8", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "fit")]) == 0
    summary = json.loads((tmp_path / "fit" / "summary.json").read_text())
    bound = summary["max_tokens"]["value"]
    assert bound is not None and 2048 - 200 < bound < 2048 and "2048" in summary["max_tokens"]["how"]
    (point,) = summary["methods"]["budget"]["points"]
    assert point["failed_samples"] == 0 and point["n"] == 2 and point["p95_thinking_tokens"] <= 8

    assert main([*base, "--max-tokens", "4096", "--out", str(tmp_path / "over")]) == 1
    summary = json.loads((tmp_path / "over" / "summary.json").read_text())
    (point,) = summary["methods"]["budget"]["points"]
    assert point["failed_samples"] == 2 and point["accuracy"] == 0.0
    assert summary["failed_samples"] == {"budget": 2}
    assert "HTTP 400" in (tmp_path / "over" / "summary.md").read_text()


def test_early_exit_is_compared_with_budget_forcing_at_the_same_caps(s1serve: Server, tmp_path: Path) -> None:
    """Both methods at one cap on the real server: every early-exit sample carries the server's
    probe report, its thinking stays within the cap, and summary.md compares the two."""
    args = sweep_args(f"{s1serve.base_url}/v1", tmp_path)
    args[args.index("--methods") + 1] = "budget,early-exit"
    args[args.index("--max-thinking") + 1] = "48"
    assert main([*args, "--early-exit-every", "16", "--early-exit-agree", "2"]) == 0
    rows = [r for r in read_samples(tmp_path) if r["method"] == "early-exit"]
    assert rows and all(r["thinking_tokens"] <= 48 for r in rows)
    for r in rows:
        report = r["thinking_report"]
        # a probe at each multiple of 16 the thinking reached (the cap at 48 comes before a probe there)
        due = len([k for k in (16, 32) if k <= r["thinking_tokens"]])
        assert report["probes"] == due, report
        assert report["early_exit"] == (report["probes"] >= 2 and r["thinking_tokens"] < 48 and report["forced_end"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    (point,) = summary["methods"]["early-exit"]["points"]
    assert point["early_exit_share"] == sum(bool(r["thinking_report"]["early_exit"]) for r in rows) / len(rows)
    assert "## early-exit against budget forcing" in (tmp_path / "summary.md").read_text()

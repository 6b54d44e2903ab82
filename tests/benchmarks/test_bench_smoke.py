"""A short run of the benchmark program on a tiny model: every scenario runs, repeated, and the
results parse."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks.run import main
from tests.integration.tiny_model import build_forcing_model

pytestmark = pytest.mark.engine

ENGINE_ARGS = "--max-model-len 1024 --dtype float32 --seed 0 --kv-cache-memory-bytes 268435456 --enforce-eager"
LEVEL_FIELDS = {
    "requests",
    "errors",
    "output_tokens",
    "wall_s",
    "output_tok_s",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "waits_inserted",
    "forced_ends",
    "probes",
    "probe_tokens",
    "tpot_ms_mean",
    "interventions",
    "repeats",
}
RATIO_FIELDS = {
    "P1_throughput",
    "P1_ttft_p50",
    "P2_C_over_B",
    "P2_D_over_BD",
    "P2_D_over_B",
    "P4_C_added_tpot_p50",
    "P4_D_added_tpot_p50",
    "P5_F_over_C",
    "P5_added_tpot_per_probe",
}


def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    model = build_forcing_model(tmp_path / "tiny-s1", trigger_scale=25.0)
    out = tmp_path / "results"
    argv = [
        "--model",
        str(model),
        "--engine-args",
        ENGINE_ARGS,
        "--concurrency",
        "2",
        "--reference-concurrency",
        "2",
        "--min-requests",
        "3",
        "--repeats",
        "2",
        "--output-len",
        "24",
        "--out-dir",
        str(out),
        "--tag",
        "smoke",
    ]
    assert main(argv) == 0

    doc = json.loads((out / "smoke.json").read_text())
    assert {"date", "command", "machine", "model", "engine_args", "workload", "requests_per_level"} <= set(doc)
    paths = doc["forcing_paths"]
    assert set(paths) == {"sessions", "resubmission"}  # both paths, side by side in one run
    for path, entry in paths.items():
        results = entry["results"]
        assert set(results) == {"A", "B", "C", "D", "BD", "E", "F"}, path
        for scenario in ("A", "B", "C", "D", "BD", "F"):
            level = results[scenario]["2"]
            assert LEVEL_FIELDS <= set(level), (path, scenario)
            assert level["requests"] == 3 and level["errors"] == 0, (path, scenario, level.get("error_examples"))
            assert level["output_tokens"] > 0
            assert len(level["repeats"]) == 2 and all(r["errors"] == 0 for r in level["repeats"]), (path, scenario)
        # A-C and F ignore EOS: exactly the requested tokens.
        for scenario in ("A", "B", "C", "F"):
            assert results[scenario]["2"]["output_tokens"] == 3 * 24, (path, scenario)
        # BD repeats B at D's per-prompt token counts.
        assert results["BD"]["2"]["output_tokens"] == results["D"]["2"]["output_tokens"]
        e = results["E"]["2"]
        assert e["requests"] == 3 and e["output_tok_s"] > 0 and e["batch_size"] == 2
        # F's probes never agree: greedy, it streams C's tokens.
        assert results["F"]["2"]["per_prompt_tokens"] == results["C"]["2"]["per_prompt_tokens"]
        summary = entry["summary"]
        assert summary["repetitions"] == 2 and len(summary["by_repetition"]) == 2
        assert RATIO_FIELDS <= set(summary["by_concurrency"]["2"])
        assert summary["P3_concurrency"] == 2 and summary["P3_D_over_E"] is not None
    # Greedy forcing gives the same tokens on both paths.
    d = [paths[p]["results"]["D"]["2"]["per_prompt_tokens"] for p in ("sessions", "resubmission")]
    assert d[0] == d[1]
    table = (out / "smoke.md").read_text()
    for scenario in ("A vLLM", "B s1serve", "C s1serve", "D s1serve", "F s1serve", "E s1 reference"):
        assert scenario in table
    assert "forcing path: sessions" in table and "forcing paths side by side" in table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "smoke.png").stat().st_size > 0

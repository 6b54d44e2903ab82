"""The source check of vLLM touch points reads a tree without importing it, and can fail."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_vllm_touch_points.py"
spec = importlib.util.spec_from_file_location("check_vllm_touch_points", SCRIPT)
assert spec is not None and spec.loader is not None
checker = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = checker  # dataclasses look their module up there
spec.loader.exec_module(checker)

from server.vllm_touch_points import TOUCH_POINTS, TouchPoint, release_of  # noqa: E402
from server.vllm_touch_points import tested as is_tested  # noqa: E402


def test_every_touch_point_is_in_the_installed_source() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(TOUCH_POINTS)} of {len(TOUCH_POINTS)} touch points found" in run.stdout


def test_a_missing_module_name_member_or_parameter_is_found() -> None:
    tree = checker.installed_tree()
    version = tree.version()
    cases = [
        (TouchPoint("vllm.no_such_module:thing"), "no module"),
        (TouchPoint("vllm.outputs:NoSuchClass"), "has no NoSuchClass"),
        (TouchPoint("vllm.v1.engine.async_llm:AsyncLLM.no_such_method"), "has no no_such_method"),
        (TouchPoint("vllm.inputs.engine:tokens_input", ("prompt_token_ids", "no_such_keyword")), "no_such_keyword"),
        (TouchPoint("vllm.outputs:CompletionOutput", ("index", "no_such_field")), "no_such_field"),
    ]
    for point, expected in cases:
        problem = checker.check(tree, point, version)
        assert problem is not None and expected in problem, (point, problem)


def test_a_moved_name_is_looked_up_where_the_release_keeps_it() -> None:
    point = TOUCH_POINTS["make_arg_parser"]
    assert point.target_for("0.32.0").startswith("vllm.entrypoints.launchers.cli_args:")
    assert point.target_for("0.33.0") == "vllm.entrypoints.common.cli_args:make_arg_parser"
    assert point.target_for("0.33.1+cu130") == "vllm.entrypoints.common.cli_args:make_arg_parser"
    tree = checker.installed_tree()
    if release_of(tree.version()) < (0, 33):
        # The installed 0.32 has no common.cli_args: checking it as 0.33 must fail.
        assert checker.check(tree, point, "0.33.0") is not None


def test_tested_releases_ignore_local_suffixes_only() -> None:
    assert is_tested("0.32.0") and is_tested("0.33.0") and is_tested("0.32.0+cpu")
    assert not is_tested("0.34.0") and not is_tested("0.31.2") and not is_tested("0.32.1")


def test_an_untested_vllm_is_refused_at_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import server.vllm_touch_points as touch_points
    from server.cli import serve

    monkeypatch.delenv(touch_points.ALLOW_UNTESTED_ENV, raising=False)
    monkeypatch.setattr(touch_points, "installed_version", lambda: "0.34.0")
    assert serve(["--model", "nowhere"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "vLLM 0.34.0 is untested" in line and "--allow-untested-vllm" in line
    assert touch_points.untested_vllm("0.34.0", allow=True) is None
    monkeypatch.setenv(touch_points.ALLOW_UNTESTED_ENV, "1")
    assert touch_points.untested_vllm("0.34.0") is None
    assert touch_points.untested_vllm("0.33.0+cu130") is None

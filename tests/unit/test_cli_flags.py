"""Which engine flags count as given: the real vLLM argument parser, no engine started."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import explicit_dests, serve_parser


@pytest.fixture(scope="module")
def parser():
    return serve_parser()


@pytest.mark.parametrize(
    "argv",
    [
        ["--block-size", "16"],
        ["--block-size=16"],
        ["--block_size", "16"],
        ["--block_size=16"],
    ],
)
def test_every_spelling_of_a_flag_counts_as_given(parser, argv: list[str]) -> None:
    assert "block_size" in explicit_dests(parser, argv)


def test_flags_from_a_config_file_count_as_given(parser, tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("dtype: float32\nenforce-eager: true\n")
    given = explicit_dests(parser, ["--config", str(config), "--port", "9000"])
    assert {"dtype", "enforce_eager", "port"} <= given
    assert "block_size" not in given and "gpu_memory_utilization" not in given


def test_defaults_survive_the_second_parse(parser) -> None:
    explicit_dests(parser, ["--dtype", "float32"])
    args = parser.parse_args([])
    assert args.port == 8000 and args.host is None and args.api_key is None  # vLLM's defaults: every interface


def test_help_lists_s1serve_flags_first_and_points_to_vllm_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from s1serve.cli import main

    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--thinking-format", "--reasoning-effort-budgets", "--drain-timeout", "--budget-profile"):
        assert flag in out
    assert "--help=all" in out
    assert "--tensor-parallel-size " not in out  # vLLM's flags are listed on request, not here


def test_a_busy_port_fails_in_seconds_before_any_model_loads(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--model",
                str(tmp_path / "no-model"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode != 0
    assert f"port {port}" in proc.stderr and "in use" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "EngineCore" not in proc.stderr  # refused at bind time: no engine was started
    assert time.monotonic() - start < 120


def test_api_key_is_repeatable_and_space_separated(parser) -> None:
    assert parser.parse_args(["--api-key", "a=1", "--api-key", "b=2"]).api_key == ["a=1", "b=2"]
    assert parser.parse_args(["--api-key", "a=1", "b=2"]).api_key == ["a=1", "b=2"]

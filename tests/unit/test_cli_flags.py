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
    assert args.port == 8000 and args.host == "0.0.0.0" and args.api_key == []

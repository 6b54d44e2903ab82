"""`s1serve eval --help` shows each default, a one-line example, and help for every budget flag."""

from __future__ import annotations

import pytest

from evals.cli import build_parser


def help_text(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    return build_parser().format_help()


def test_help_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    text = " ".join(help_text(monkeypatch).split())  # argparse wraps lines; compare the words
    for shown in (
        "(default: 512,1024,2048,4096,8192)",
        "(default: 16,32,64,128)",
        "(default: 1,2,4,8)",
        "(default: the served context minus the longest prompt)",
        "(default: 64)",
        "(default: 1.0)",
        "(default: 0.7)",
        "(default: 0.0)",
        "(default: budget)",
        "(default: http://127.0.0.1:8000/v1)",
    ):
        assert shown in text, shown


def test_help_has_a_one_line_example_and_explains_max_thinking(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = help_text(monkeypatch).splitlines()
    examples = [line for line in lines if line.startswith("example: s1serve eval ")]
    assert len(examples) == 1 and "--dataset" in examples[0] and "--out" in examples[0]
    flag = next(i for i, line in enumerate(lines) if line.strip().startswith("--max-thinking"))
    assert "thinking-token caps" in " ".join(lines[flag : flag + 3])


def test_help_does_not_print_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-show")
    assert "sk-do-not-show" not in help_text(monkeypatch)


def test_string_defaults_still_parse_to_budget_lists() -> None:
    args = build_parser().parse_args(["--dataset", "d.jsonl", "--out", "o"])
    assert args.max_thinking == (512, 1024, 2048, 4096, 8192) and args.samples == (1, 2, 4, 8)
    assert args.min_thinking == () and args.num_ignore == () and args.steps == (16, 32, 64, 128)

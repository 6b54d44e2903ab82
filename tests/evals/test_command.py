"""`s1serve eval` and `python -m evals` reach the same program."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.servers import REPO_ROOT


def test_both_spellings_show_the_eval_flags() -> None:
    for command in (["-m", "s1serve", "eval", "--help"], ["-m", "evals", "--help"]):
        result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "--max-thinking" in result.stdout and "--methods" in result.stdout

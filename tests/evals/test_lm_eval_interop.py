"""lm-evaluation-harness's `local-chat-completions` model drives s1serve with a thinking budget via --gen_kwargs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.servers import REPO_ROOT, Server
from tests.evals.conftest import ARITHMETIC

pytestmark = pytest.mark.engine

TASK = """\
task: s1serve_arithmetic
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 48
  temperature: 0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_gen_kwargs_carry_the_flat_budget_fields(s1serve: Server, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "s1serve_arithmetic.yaml").write_text(TASK.format(data=ARITHMETIC))
    out = tmp_path / "results"
    model_args = (
        f"model=SmolLM2-135M-Instruct,base_url={s1serve.base_url}/v1/chat/completions,num_concurrent=1,max_retries=1"
    )
    command = [
        sys.executable,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "local-chat-completions",
        "--model_args",
        model_args,
        "--include_path",
        str(tasks),
        "--tasks",
        "s1serve_arithmetic",
        "--apply_chat_template",
        "--gen_kwargs",
        "max_thinking_tokens=4",
        "--output_path",
        str(out),
        "--log_samples",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OPENAI_API_KEY="unused")
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    (samples_file,) = out.rglob("samples_s1serve_arithmetic_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 5
    # A 4-token cap ends every thinking by force; s1serve then starts the answer with its final-answer text,
    # which a request without the budget would not produce.
    for sample in samples:
        assert sample["resps"][0][0].startswith("Final Answer:"), sample["resps"]
    (results_file,) = out.rglob("results_*.json")
    assert "s1serve_arithmetic" in json.loads(results_file.read_text())["results"]

"""The server's token ids equal a replay of the s1 algorithm with plain vLLM generate calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from transformers import AutoTokenizer

pytestmark = pytest.mark.engine

MESSAGES = [{"role": "user", "content": "What is the sum of two and three?"}]
MAX_TOTAL = 200
# Greedy, this model first tries to end its thinking after about 40 tokens.
CASES = {
    "no-budget": None,
    "max-only": {"max_tokens": 12},
    "min-wait": {"max_tokens": 100, "min_tokens": 60},
    "num-ignore": {"max_tokens": 140, "num_ignore": 2, "wait_text": "Hmm"},
    "min-suppress": {"max_tokens": 140, "min_tokens": 60, "wait_text": ""},
}


def test_server_token_ids_equal_reference_replay(tiny: openai.OpenAI, tiny_model: Path, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model)
    chat_ids = tok.encode(
        tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False), add_special_tokens=False
    )
    start_ids = tok.encode("<|im_start|>think\n", add_special_tokens=False)

    served = {}
    for name, budget in CASES.items():
        extra: dict = {"return_token_ids": True}
        if budget is not None:
            extra["thinking_budget"] = budget
        response = tiny.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=MAX_TOTAL, temperature=0, extra_body=extra
        )
        served[name] = response.model_dump()
        expected_prompt = chat_ids + (start_ids if budget is not None else [])
        assert served[name]["prompt_token_ids"] == expected_prompt, name

    cases = [{"prompt_ids": chat_ids, "max_total": MAX_TOTAL, "budget": b} for b in CASES.values()]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.s1_reference",
            str(tiny_model),
            str(tmp_path / "cases.json"),
            str(tmp_path / "out.json"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    (tmp_path / "reference.log").write_text(run.stderr)
    assert run.returncode == 0, "\n".join(line for line in run.stderr.splitlines() if "Error" in line)[-4000:]
    reference = json.loads((tmp_path / "out.json").read_text())

    for (name, _), expected in zip(CASES.items(), reference, strict=True):
        assert served[name]["choices"][0]["token_ids"] == expected, name

    # The cases really exercised the forcing paths they are named after.
    report = {name: served[name]["choices"][0]["thinking"] for name in CASES}
    assert report["max-only"]["forced_end"] and report["max-only"]["thinking_tokens"] <= 12
    assert report["min-wait"]["waits_inserted"] >= 1 and report["min-wait"]["thinking_tokens"] >= 60
    assert report["min-suppress"]["waits_inserted"] == 0 and report["min-suppress"]["thinking_tokens"] >= 60
    assert report["num-ignore"]["waits_inserted"] == 2
    assert report["no-budget"]["waits_inserted"] == 0

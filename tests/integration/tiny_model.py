"""A tiny random s1-format model for engine tests, built at test time (no downloads).

Random weights give near-uniform logits, so a greedy model would almost never try to end its
thinking. The lm_head row of the end trigger `<|im_start|>` is scaled up so the trigger wins
the argmax at some positions and not others: the forcing paths (override, accept, cap) all
occur within a few dozen tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from tests.training.tiny_qwen import build_model

TRIGGER = "<|im_start|>"


def build_forcing_model(folder: Path, trigger_scale: float) -> Path:
    build_model(folder, seed=1)
    weights_path = folder / "model.safetensors"
    weights = load_file(weights_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    trigger_id = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == TRIGGER)
    weights["lm_head.weight"][trigger_id] *= trigger_scale
    save_file(weights, weights_path, metadata={"format": "pt"})
    (folder / "s1serve.json").write_text(json.dumps({"thinking_format": "s1"}) + "\n")
    return folder


THINK_START, THINK_END = "<think>", "</think>"


def build_think_model(folder: Path, trigger_scale: float) -> Path:
    """The same tiny model in the `think` format: `<think>` and `</think>` become one token each
    (as in the tokenizers of DeepSeek-R1 distills and Qwen3), and `</think>`'s lm_head row is
    scaled so that the greedy model tries to end its thinking now and then."""
    from transformers import AutoTokenizer

    build_model(folder, seed=1)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens([THINK_START, THINK_END])
    tok.save_pretrained(folder)
    weights_path = folder / "model.safetensors"
    weights = load_file(weights_path)
    end_id = tok.convert_tokens_to_ids(THINK_END)
    assert end_id < weights["lm_head.weight"].shape[0], "the padded vocabulary has room for the new tokens"
    weights["lm_head.weight"][end_id] *= trigger_scale
    save_file(weights, weights_path, metadata={"format": "pt"})
    (folder / "s1serve.json").write_text(json.dumps({"thinking_format": "think"}) + "\n")
    return folder

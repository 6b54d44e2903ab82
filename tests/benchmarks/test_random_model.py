"""The random-weight model of a real shape (benchmarks/random_model.py), built in its tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.random_model import SHAPES, build


def test_qwen_7b_preset_has_qwen_7b_layer_shapes() -> None:
    # Qwen2.5-7B's config.json: hidden 3584, MLP 18944, 28 layers, 28 query heads, 4 KV heads.
    s = SHAPES["qwen2.5-7b"]
    assert (s.hidden_size, s.intermediate_size, s.num_hidden_layers) == (3584, 18944, 28)
    assert (s.num_attention_heads, s.num_key_value_heads) == (28, 4)


def test_tiny_preset_builds_a_loadable_model_with_one_token_delimiters(tmp_path: Path) -> None:
    out = build(tmp_path / "m", "tiny", trigger_scale=5.0, dtype="float32")
    tok = AutoTokenizer.from_pretrained(out)
    assert [len(tok.encode(t, add_special_tokens=False)) for t in ("<think>", "</think>")] == [1, 1]
    assert json.loads((out / "s1serve.json").read_text())["thinking_format"] == "think"
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] >= len(tok) and config["vocab_size"] % 64 == 0
    weights = load_file(out / "embed.safetensors")
    rows = weights["lm_head.weight"]
    trigger = tok.convert_tokens_to_ids("</think>")
    others = rows[: len(tok)].norm(dim=1)
    # the trigger's row is five times a typical row; padding rows never win
    assert 3.5 < float(rows[trigger].norm() / others.median()) < 7
    assert torch.count_nonzero(rows[len(tok) :]) == 0
    model = AutoModelForCausalLM.from_pretrained(out)
    logits = model(torch.tensor([[tok.convert_tokens_to_ids("<think>")]])).logits
    assert logits.shape[-1] == config["vocab_size"] and torch.isfinite(logits).all()

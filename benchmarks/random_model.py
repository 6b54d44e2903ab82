"""A random-weight model of a real model's shape, built at run time (no hub access).

For benchmarks where the weights do not matter but the shape does (GPU time per token, KV
cache per token): Qwen2.5-7B's layer shapes, with the embedded SmolLM2 tokenizer, whose
`<think>` and `</think>` are one token each, and that vocabulary's size. Random weights give
near-uniform logits and would almost never end the thinking, so the `</think>` row of the
output layer is scaled up (`trigger_scale`): a fixed bias on that logit, which makes end
attempts, and so waits, occur.

    python -m benchmarks.random_model OUT_DIR [--shape qwen2.5-7b] [--trigger-scale 3.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

# Trainer export files copied along with the tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


@dataclass(frozen=True)
class Shape:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6


SHAPES = {
    # Qwen2.5-7B(-Instruct) config.json: 28 layers, 28 query / 4 KV heads of 128, MLP 18944.
    "qwen2.5-7b": Shape(3584, 18944, 28, 28, 4),
    # The same structure, small enough to build and serve on a CPU in seconds.
    "tiny": Shape(256, 512, 2, 4, 2, max_position_embeddings=4096),
}


def build(out: Path, shape_name: str, trigger_scale: float = 3.0, seed: int = 0, dtype: str = "bfloat16") -> Path:
    """Write config, tokenizer and random safetensors (one shard per layer) to `out`."""
    from transformers import AutoTokenizer

    from server.default_model import ensure_default_model

    shape = SHAPES[shape_name]
    out.mkdir(parents=True, exist_ok=True)
    source = ensure_default_model()
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    tok = AutoTokenizer.from_pretrained(out)
    trigger = tok.convert_tokens_to_ids("</think>")
    if len(tok.encode("</think>", add_special_tokens=False)) != 1:
        raise RuntimeError("the tokenizer's </think> is not one token")
    vocab = (len(tok) + 63) // 64 * 64
    head_dim = shape.hidden_size // shape.num_attention_heads
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        **{k: v for k, v in asdict(shape).items()},
        "head_dim": head_dim,
        "vocab_size": vocab,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": dtype,
        "use_sliding_window": False,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (out / "s1serve.json").write_text(json.dumps({"thinking_format": "think", "random_weights": shape_name}) + "\n")

    gen = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    h, kv = shape.hidden_size, shape.num_key_value_heads * head_dim

    def normal(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=gen) * 0.02).to(dt)

    weight_map: dict[str, str] = {}

    def shard(name: str, tensors: dict[str, torch.Tensor]) -> None:
        save_file({k: v.contiguous() for k, v in tensors.items()}, out / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))

    lm_head = normal(vocab, h)
    lm_head[trigger] *= trigger_scale
    lm_head[len(tok) :] = 0  # padding rows beyond the tokenizer
    shard("embed.safetensors", {"model.embed_tokens.weight": normal(vocab, h), "lm_head.weight": lm_head})
    for i in range(shape.num_hidden_layers):
        p = f"model.layers.{i}."
        tensors = {
            p + "self_attn.q_proj.weight": normal(h, h),
            p + "self_attn.q_proj.bias": normal(h),
            p + "self_attn.k_proj.weight": normal(kv, h),
            p + "self_attn.k_proj.bias": normal(kv),
            p + "self_attn.v_proj.weight": normal(kv, h),
            p + "self_attn.v_proj.bias": normal(kv),
            p + "self_attn.o_proj.weight": normal(h, h),
            p + "mlp.gate_proj.weight": normal(shape.intermediate_size, h),
            p + "mlp.up_proj.weight": normal(shape.intermediate_size, h),
            p + "mlp.down_proj.weight": normal(h, shape.intermediate_size),
            p + "input_layernorm.weight": torch.ones(h, dtype=dt),
            p + "post_attention_layernorm.weight": torch.ones(h, dtype=dt),
        }
        shard(f"layer-{i:03d}.safetensors", tensors)
    shard("norm.safetensors", {"model.norm.weight": torch.ones(h, dtype=dt)})
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.random_model", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-7b")
    p.add_argument("--trigger-scale", type=float, default=3.0, help="scale of the </think> output row (end rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = p.parse_args(argv)
    path = build(args.out, args.shape, args.trigger_scale, args.seed, args.dtype)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

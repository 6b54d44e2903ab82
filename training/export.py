"""Export: a consolidated Hugging Face folder that vLLM and `s1serve serve` load as is.

The folder holds safetensors weights, config, tokenizer with its chat template, generation
config, and `s1serve.json` recording the thinking format the model was trained in, which the
server reads to pick the format without flags.

Standalone use, from a training checkpoint:
    python -m training.export --checkpoint RUN/checkpoints/step-00000315 --out RUN/final
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

logger = logging.getLogger(__name__)

FORMAT_FILE = "s1serve.json"
_SHARD_BYTES = 5 * 1024**3
_AC_PREFIX = "_checkpoint_wrapped_module."


def _shards(state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def write_hf_folder(
    state: dict[str, torch.Tensor],
    *,
    base: str,
    out: str | Path,
    thinking_format: str,
    dtype: str = "bfloat16",
) -> Path:
    """Write `state` (full weights, Hugging Face names) with the base model's config and tokenizer."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch_dtype = getattr(torch, dtype)

    config = AutoConfig.from_pretrained(base)
    config.dtype = torch_dtype
    config.use_cache = True
    state = {name.replace(_AC_PREFIX, ""): t.detach().to("cpu", torch_dtype).contiguous() for name, t in state.items()}
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)

    shards = _shards(state)
    if len(shards) == 1:
        save_file(shards[0], tmp / "model.safetensors", metadata={"format": "pt"})
    else:
        weight_map: dict[str, str] = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, tmp / name, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))

    config.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    try:
        generation = GenerationConfig.from_pretrained(base)
    except OSError:
        generation = GenerationConfig.from_model_config(config)
    generation.save_pretrained(tmp)
    (tmp / FORMAT_FILE).write_text(json.dumps({"thinking_format": thinking_format}) + "\n")

    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    from training.checkpoint import TRAINER_FILE, load_model_state

    parser = argparse.ArgumentParser(prog="training.export", description="Export a training checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a step-NNNNNNNN checkpoint folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", help="base model folder (default: the one recorded in the checkpoint)")
    parser.add_argument("--thinking-format", help="default: the one recorded in the checkpoint")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    ckpt = Path(args.checkpoint)
    trainer = json.loads((ckpt / TRAINER_FILE).read_text())
    base = args.model or trainer["base_model"]
    fmt = args.thinking_format or trainer["thinking_format"]
    out = write_hf_folder(load_model_state(ckpt), base=base, out=args.out, thinking_format=fmt, dtype=args.dtype)
    logger.info("exported step %d to %s (thinking format %s)", trainer["step"], out, fmt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

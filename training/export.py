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


def _plan_files(sizes: list[tuple[str, int]]) -> list[list[str]]:
    """Names per safetensors file, in order, each file up to 5 GB (a larger tensor gets its own)."""
    files: list[list[str]] = [[]]
    size = 0
    for name, nbytes in sizes:
        if files[-1] and size + nbytes > _SHARD_BYTES:
            files.append([])
            size = 0
        files[-1].append(name)
        size += nbytes
    return files


def _file_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _begin(out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return out, tmp


def _finish(
    tmp: Path, out: Path, *, base: str, thinking_format: str, dtype: torch.dtype, files: list[list[str]], total: int
) -> Path:
    """Index, config, tokenizer, generation config and the format record; then the rename."""
    names = _file_names(len(files))
    if len(files) > 1:
        weight_map = {tensor: fname for fname, group in zip(names, files, strict=True) for tensor in group}
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = AutoConfig.from_pretrained(base)
    config.dtype = dtype
    config.use_cache = True
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


def _tied(base: str) -> bool:
    return bool(getattr(AutoConfig.from_pretrained(base), "tie_word_embeddings", False))


def write_hf_folder(
    state: dict[str, torch.Tensor],
    *,
    base: str,
    out: str | Path,
    thinking_format: str,
    dtype: str = "bfloat16",
) -> Path:
    """Write `state` (full weights, Hugging Face names) with the base model's config and tokenizer."""
    out, tmp = _begin(out)
    torch_dtype = getattr(torch, dtype)
    state = {name.replace(_AC_PREFIX, ""): t for name, t in state.items()}
    if _tied(base):
        state.pop("lm_head.weight", None)
    sizes = [(name, t.numel() * torch_dtype.itemsize) for name, t in state.items()]
    files = _plan_files(sizes)
    for fname, group in zip(_file_names(len(files)), files, strict=True):
        shard = {name: state[name].detach().to("cpu", torch_dtype).contiguous() for name in group}
        save_file(shard, tmp / fname, metadata={"format": "pt"})
    total = sum(n for _, n in sizes)
    return _finish(tmp, out, base=base, thinking_format=thinking_format, dtype=torch_dtype, files=files, total=total)


def export_sharded(
    model: torch.nn.Module, *, base: str, out: str | Path, thinking_format: str, dtype: str = "bfloat16"
) -> Path | None:
    """Export a sharded model without holding it whole on one rank.

    Every rank joins the all-gather of one parameter at a time; rank 0 converts it to the
    export dtype and keeps it until its 5 GB file is complete and written. Rank 0's peak is one
    file plus one full fp32 tensor, not the whole model twice. Returns the folder on rank 0.
    """
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    rank = dist.get_rank()
    torch_dtype = getattr(torch, dtype)
    state = {name.replace(_AC_PREFIX, ""): t for name, t in model.state_dict().items()}
    if _tied(base):
        state.pop("lm_head.weight", None)
    sizes = [(name, t.numel() * torch_dtype.itemsize) for name, t in state.items()]
    files = _plan_files(sizes)
    out_path, tmp = _begin(out) if rank == 0 else (Path(out), Path())
    for fname, group in zip(_file_names(len(files)), files, strict=True):
        shard: dict[str, torch.Tensor] = {}
        for name in group:
            tensor = state[name]
            full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
            if rank == 0:
                shard[name] = full.detach().to("cpu", torch_dtype).contiguous()
            del full
        if rank == 0:
            save_file(shard, tmp / fname, metadata={"format": "pt"})
        del shard
    if rank != 0:
        return None
    total = sum(n for _, n in sizes)
    return _finish(
        tmp, out_path, base=base, thinking_format=thinking_format, dtype=torch_dtype, files=files, total=total
    )


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

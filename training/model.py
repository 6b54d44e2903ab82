"""Building the model without materializing it per rank, and loading the base weights into shards.

Parameters are created on the meta device (a 32B model would not fit once per rank in host
memory); buffers that are computed rather than stored, such as rotary frequencies, are kept
real so they survive sharding. Each rank then reads its own rows of every tensor from the
safetensors files into its shards: nothing is broadcast and no rank holds the whole model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import safe_open
from torch import nn
from torch.distributed.tensor import DTensor
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from training.config import ConfigError

_AC_PREFIX = "_checkpoint_wrapped_module."


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Register every new parameter on the meta device; buffers stay where they were made."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def resolve_model_path(path: str) -> str:
    """A local folder for `path`; a hub id is downloaded once per node (local rank 0) into the HF cache."""
    from training.preflight import check_model

    check_model(path)  # a missing local folder is named as such, before any hub lookup
    if Path(path).expanduser().is_dir():
        return str(Path(path).expanduser())
    import os

    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]
    failure: Exception | None = None
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        try:
            snapshot_download(path, allow_patterns=patterns)
        except Exception as e:  # noqa: BLE001 - reported below, after every rank has met
            failure = e
    dist.barrier()
    try:
        return snapshot_download(path, allow_patterns=patterns, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        reason = failure or e
        first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        raise ConfigError(
            f"--model {path}: no such model folder, and fetching it as a Hugging Face hub id failed "
            f"({type(reason).__name__}: {first})"
        ) from None


def load_config(path: str) -> PretrainedConfig:
    return AutoConfig.from_pretrained(path)


def build_meta_model(path: str, attn_implementation: str) -> nn.Module:
    config = load_config(path)
    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    model.config.use_cache = False
    return model


def materialize(model: nn.Module, device: torch.device) -> None:
    """Allocate the (sharded) parameters on `device`, keeping the computed buffers' values."""
    buffers = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    model.to_empty(device=device)
    for name, value in buffers.items():
        owner_name, _, attr = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        owner._buffers[attr] = value.to(owner._buffers[attr].device)


def weight_files(path: str) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (from the index when the weights are split)."""
    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.exists():
        raise ConfigError(f"--model {path}: no model.safetensors or model.safetensors.index.json")
    with safe_open(single, framework="pt") as f:
        return dict.fromkeys(f.keys(), single)


def load_base_weights(model: nn.Module, path: str) -> None:
    """Every rank reads only its own rows of each tensor, straight into its fp32 shard.

    safetensors slices are read from the memory-mapped files, so no rank ever holds the whole
    bf16 checkpoint or a full fp32 copy of it (64 + 128 GB for a 32B model on the old rank-0
    path); each rank's host memory peaks at one shard of one tensor.
    """
    files = weight_files(path)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    params = {name.replace(_AC_PREFIX, ""): tensor for name, tensor in model.state_dict().items()}
    if tied:
        params.pop("lm_head.weight", None)  # the same tensor as the embeddings
    missing = sorted(set(params) - set(files))
    if missing:
        raise ConfigError(f"--model {path}: weights missing for {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    handles: dict[Path, Any] = {}
    try:
        for name, param in params.items():
            file = files[name]
            if file not in handles:
                handles[file] = safe_open(file, framework="pt")
            piece = handles[file].get_slice(name)
            if list(piece.get_shape()) != list(param.shape):
                raise ConfigError(
                    f"{file}: {name} has shape {piece.get_shape()}, the model built from config.json expects "
                    f"{list(param.shape)}"
                )
            if isinstance(param, DTensor):
                local = param.to_local()
                shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
            else:
                local, shape, offset = param, tuple(param.shape), (0,) * param.dim()
            if local.numel() == 0:
                continue
            rows = tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))
            with torch.no_grad():
                local.copy_(piece[rows].to(local.dtype))
    finally:
        handles.clear()  # safe_open handles close when dropped

"""Building the model without materializing it per rank, and loading the base weights into shards.

Parameters are created on the meta device (a 32B model would not fit once per rank in host
memory); buffers that are computed rather than stored, such as rotary frequencies, are kept
real so they survive sharding. Rank 0 reads the safetensors files and the weights are
broadcast straight into each rank's shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

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
    from training.config import ConfigError
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


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(folder / name, device="cpu"))
    return state


def load_base_weights(model: nn.Module, path: str) -> None:
    """Rank 0 reads the checkpoint; set_model_state_dict broadcasts it into every rank's shards."""
    rank = dist.get_rank()
    state: dict[str, torch.Tensor] = {}
    if rank == 0:
        state = read_safetensors(path)
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        expected = {k.replace(_AC_PREFIX, "") for k in model.state_dict()}
        missing = expected - set(state)
        if missing:
            raise ValueError(f"{path}: weights missing for {sorted(missing)[:5]}")
        state = {k: v.float() for k, v in state.items() if k in expected}
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

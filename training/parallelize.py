"""All parallelism in one place: activation checkpointing and FSDP2 sharding.

Each decoder layer is its own FSDP unit (its parameters are gathered just before it runs and
freed after), then the root takes the embeddings, final norm and LM head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The repeated blocks of a Hugging Face causal LM (model.model.layers for Llama/Qwen-style models)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__}: expected decoder layers at model.model.layers")
    return layers


def parallelize(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    param_dtype: torch.dtype | None,
    activation_checkpointing: bool,
    cpu_offload: bool,
) -> nn.Module:
    """Wrap `model` in place and return it.

    With `param_dtype` bf16 the layers compute in bf16 while the sharded master weights, the
    gradients' reduce-scatter and the optimizer stay in fp32.
    """
    layers = decoder_layers(model)
    if activation_checkpointing:
        for i, layer in enumerate(layers):
            layers[i] = checkpoint_wrapper(layer, preserve_rng_state=False)
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    offload: OffloadPolicy = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cpu_offload else OffloadPolicy()
    for i, layer in enumerate(layers):
        # The last layer's parameters are needed again at once by the backward pass.
        fully_shard(layer, mesh=mesh, mp_policy=mp, offload_policy=offload, reshard_after_forward=i < len(layers) - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=offload)
    return model

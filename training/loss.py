"""The training loss without the full logits.

A 32k-token sequence over Qwen's 152k vocabulary has 5e9 logits: 10 GB in bf16 and 20 GB once
cast to fp32 for the cross-entropy, twice again for their gradients. The loss here takes the
final hidden states and the LM head weight and works through the tokens `chunk_tokens` at a
time: each chunk's logits are made, reduced to a summed cross-entropy and dropped, and the
backward pass remakes them one chunk at a time (activation checkpointing of the head). The
cost is a second LM-head matmul per token, a few percent of a step; the peak is one chunk's
logits. On GPU, Liger's fused linear + cross-entropy kernel does the same in Triton when
installed (`--loss-impl liger`).
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
LOSS_IMPLS = ("auto", "chunked", "full", "liger")


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = hidden @ weight.t()
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")


def chunked_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk_tokens: int
) -> torch.Tensor:
    """Summed fp32 cross-entropy of `hidden @ weight.T` against `labels`, never holding more than
    `chunk_tokens` rows of logits (forward or backward). `hidden` is (N, d), `labels` (N,)."""
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk_tokens):
        end = start + chunk_tokens
        chunk_labels = labels[start:end]
        if not bool((chunk_labels != IGNORE_INDEX).any()):
            continue  # prompt tokens: no loss, no logits needed
        if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
            total = total + checkpoint(_chunk_loss, hidden[start:end], weight, chunk_labels, use_reentrant=False)
        else:
            total = total + _chunk_loss(hidden[start:end], weight, chunk_labels)
    if not total.requires_grad and torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        # No labelled token on this rank (a padding micro-batch): a zero that still reaches every
        # parameter, so every rank's backward runs the same gradient collectives.
        total = total + 0.0 * (hidden.sum() + weight.sum())
    return total


def full_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The whole logits tensor at once: the reference the chunked loss is checked against."""
    return _chunk_loss(hidden, weight, labels)


def liger_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    fn = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum")
    return fn(weight, hidden, labels).float()


def resolve_loss_impl(impl: str, device_type: str) -> str:
    """`auto` is Liger's fused kernel on GPU when it is installed, else the chunked loss."""
    if impl != "auto":
        return impl
    if device_type == "cuda":
        try:
            import liger_kernel  # noqa: F401
        except ModuleNotFoundError:
            return "chunked"
        return "liger"
    return "chunked"


def install_loss_forward(model: nn.Module, impl: str, chunk_tokens: int) -> None:
    """Make `model(input_ids, attention_mask, labels)` return the summed loss instead of logits.

    The loss runs inside the model's own forward, so FSDP's hooks on the root module keep the
    LM head's gathered weight alive for it, and the gradient reaches that weight as usual.
    """
    base = model.get_submodule("model")
    head = model.get_output_embeddings()

    def forward(self: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: Any = None):
        hidden = base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.flatten(0, 1)
        flat = labels.flatten()
        if impl == "full":
            return full_cross_entropy(hidden, head.weight, flat)
        if impl == "liger":
            return liger_cross_entropy(hidden, head.weight, flat)
        return chunked_cross_entropy(hidden, head.weight, flat, chunk_tokens)

    model.forward = types.MethodType(forward, model)  # type: ignore[method-assign]

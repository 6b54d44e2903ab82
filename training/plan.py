"""A memory plan per rank, from the model's config.json alone: does the recipe fit the GPUs?

    s1serve train --nnodes 2 --nproc-per-node 8 --config training/recipes/s1.1-32b.toml --plan

No weights are read and no process starts. The numbers are estimates of what FSDP2 holds at
the peak of a step (the start of the backward pass): the sharded fp32 weights, gradients and
Adam moments; the gathered bf16 weights of the root (embeddings, LM head) and of two decoder
layers (the running one and the prefetched one); the saved activations; and the loss's logits.
Activations assume a fused attention kernel (no sequence-squared term) and count the tensors a
Llama/Qwen-style decoder layer saves for its backward pass. The CUDA context, the allocator's
fragmentation and NCCL buffers come on top: keep about a tenth of the GPU free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GB = 1e9


@dataclass
class Shapes:
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool
    o_bias: bool
    qk_norm: bool

    @classmethod
    def from_config(cls, config: Any) -> Shapes:
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        hidden, heads = int(get("hidden_size")), int(get("num_attention_heads"))
        model_type = get("model_type", "")
        attention_bias = bool(get("attention_bias", False))
        return cls(
            vocab=int(get("vocab_size")),
            hidden=hidden,
            layers=int(get("num_hidden_layers")),
            intermediate=int(get("intermediate_size")),
            heads=heads,
            kv_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim") or hidden // heads),
            tied=bool(get("tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or attention_bias,
            o_bias=attention_bias,
            qk_norm=model_type == "qwen3",
        )

    def layer_params(self) -> int:
        d, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = d * q + 2 * d * kv + q * d
        if self.qkv_bias:
            attention += q + 2 * kv
        if self.o_bias:
            attention += d
        if self.qk_norm:
            attention += 2 * self.head_dim
        return attention + 3 * d * self.intermediate + 2 * d

    def root_params(self) -> int:
        """Embeddings, final norm and (untied) LM head: the root FSDP unit."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def params(self) -> int:
        return self.layers * self.layer_params() + self.root_params()

    def layer_activation_bytes(self, act: int) -> int:
        """Bytes per token one decoder layer saves for backward, at `act` bytes per element.

        The two RMSNorms keep their input and fp32 internals; attention keeps the projections'
        input, q and k before and after rotary, q/k/v/output for the fused kernel and the
        o-projection's input; the MLP keeps its input, gate, up, the activation and the product.
        """
        d, q, kv, ff = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        norms = 2 * (act * d + 8 * d)
        attention = act * (d + 2 * (q + kv) + (2 * q + 2 * kv) + q) + 4 * self.heads
        mlp = act * (d + 4 * ff)
        return norms + attention + mlp


def memory_plan(
    config: Any,
    *,
    world: int,
    block_size: int,
    micro_batch_size: int,
    bf16: bool,
    activation_checkpointing: bool,
    cpu_offload: bool,
    loss_impl: str,
    loss_chunk_tokens: int,
    async_checkpoint: bool,
    checkpoint_contents: str,
    gpu_gb: float,
) -> list[str]:
    """The plan as printable lines."""
    s = Shapes.from_config(config)
    n = s.params()
    tokens = block_size * micro_batch_size
    act = 2 if bf16 else 4
    states = {
        "weights fp32 (sharded)": n * 4 / world,
        "gradients fp32 (sharded)": n * 4 / world,
        "Adam moments fp32 (sharded)": n * 8 / world,
    }
    gathered = (s.root_params() + 2 * s.layer_params()) * act
    layer_grads = s.layer_params() * (act + 4)  # unsharded grads, and their fp32 copy for the reduce-scatter
    one_layer = tokens * s.layer_activation_bytes(act)
    no_ac = s.layers * one_layer
    ac = s.layers * tokens * s.hidden * act + one_layer
    full_logits = tokens * s.vocab * (act + 4 + 4 + act)  # logits, fp32 copy, its gradient, the bf16 gradient
    chunk = min(loss_chunk_tokens, tokens)
    chunked_logits = chunk * s.vocab * (act + 4 + 4 + act)
    logits = full_logits if loss_impl == "full" else chunked_logits
    if activation_checkpointing:
        # Backward: saved layer inputs, then either the loss's logits or one recomputed layer.
        saved = s.layers * tokens * s.hidden * act
        act_peak = saved + max(logits, one_layer + layer_grads)
    else:
        act_peak = no_ac + logits
    on_gpu = 0.0 if cpu_offload else sum(states.values())
    peak = on_gpu + gathered + act_peak

    precision = "bf16 compute, fp32 master weights" if bf16 else "fp32"
    lines = [
        f"memory plan: {n / 1e9:.2f}B parameters ({s.layers} layers, hidden {s.hidden}, vocabulary {s.vocab}), "
        f"{world} ranks, {tokens} tokens per micro-batch, {precision}",
        "per rank, GB:",
    ]

    def row(label: str, value: float, note: str = "") -> None:
        lines.append(f"  {label:<44} {value / GB:8.1f}" + (f"   {note}" if note else ""))

    where = " (host memory: --cpu-offload)" if cpu_offload else ""
    for label, value in states.items():
        row(label + where, value)
    row("gathered weights (root + 2 layers)", gathered, f"root {s.root_params() * act / GB:.1f}")
    row("activations, no activation checkpointing", no_ac, "" if activation_checkpointing else "<- this run")
    row(
        "activations, activation checkpointing",
        ac,
        ("<- this run " if activation_checkpointing else "")
        + f"(layer inputs {(ac - one_layer) / GB:.1f} + one layer {one_layer / GB:.1f})",
    )
    row("logits, full", full_logits, "<- this run" if loss_impl == "full" else "")
    row(f"logits, chunked ({chunk} tokens)", chunked_logits, "" if loss_impl == "full" else "<- this run")
    fits = "fits" if peak <= gpu_gb * GB else "does NOT fit"
    row("peak estimate", peak, f"{fits} in {gpu_gb:g} GB ({(gpu_gb * GB - peak) / GB:+.1f} GB)")
    if not activation_checkpointing and (on_gpu + gathered + ac - one_layer + max(logits, one_layer)) <= gpu_gb * GB:
        lines.append("  --activation-checkpointing would bring it within the GPU")
    host_copy = (n * 4 if checkpoint_contents == "model" else n * 12) / world
    if async_checkpoint:
        row("host memory: async checkpoint copy", host_copy)
    lines.append(
        f"checkpoint size: {n * (4 if checkpoint_contents == 'model' else 12) / GB:.0f} GB "
        f"({checkpoint_contents}: {'fp32 weights' if checkpoint_contents == 'model' else 'fp32 weights + Adam'})"
    )
    return lines

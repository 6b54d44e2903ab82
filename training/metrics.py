"""Step metrics: a JSONL record per step (for tools and tests) and model FLOPs utilization."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig

# Dense bf16 peak FLOP/s per GPU, matched by device name.
_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12, "L40S": 362e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in _PEAK_BF16.items() if key in name), None)


def flops_per_token(config: PretrainedConfig, matmul_params: int, seq_len: float) -> float:
    """Training FLOPs per token: 6 per matmul weight, plus causal attention scores and values."""
    layers = config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 6 * layers * config.num_attention_heads * head_dim * seq_len  # 12*L*d*S, halved by the mask
    return 6 * matmul_params + attention


class MetricsLog:
    """`metrics.jsonl` in the output folder; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, *, resume_step: int) -> None:
        self.path = path
        kept: list[str] = []
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line)["step"] <= resume_step:
                    kept.append(line)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

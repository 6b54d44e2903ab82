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


def peak_memory_gb(device: torch.device) -> float:
    """Peak accelerator memory allocated by this rank, or on CPU its peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    # VmHWM, not ru_maxrss: the latter keeps the launcher's peak the worker was forked from.
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / 1e9


class ScalarLoggers:
    """TensorBoard event files in <output_dir>/tensorboard and, when asked for, Weights & Biases.

    Both see the same rows as metrics.jsonl. TensorBoard is on by default and skipped with a
    warning when its package is missing; wandb is off unless --wandb.
    """

    def __init__(
        self, out: Path, *, tensorboard: bool, wandb: bool, wandb_project: str, job: dict[str, Any], resume_step: int
    ) -> None:
        import logging

        log = logging.getLogger("training")
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ModuleNotFoundError:
                log.warning("TensorBoard event files are off: pip install tensorboard (or pass --no-tensorboard)")
            else:
                # purge_step hides events a killed run wrote after the step it resumes from.
                self._tb = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=resume_step + 1)
        if wandb:
            import wandb as wb

            self._wandb = wb.init(project=wandb_project, dir=str(out), config=job, name=out.name)

    _KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_memory_gb", "step_time_s", "label_tokens")

    def write(self, row: dict[str, Any]) -> None:
        step = int(row["step"])
        scalars = {f"train/{k}": float(row[k]) for k in self._KEYS if k in row}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

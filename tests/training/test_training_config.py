"""Configuration, recipes and the torchrun launcher command."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from training.config import JobConfig, parse_args
from training.launch import build_command
from training.sft import cosine_with_warmup

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_s1_hyperparameters() -> None:
    job = parse_args(["--model", "m", "--dataset", "d"])
    assert (job.optim.lr, job.optim.beta1, job.optim.beta2, job.optim.weight_decay) == (1e-5, 0.9, 0.95, 1e-4)
    assert (job.optim.warmup_ratio, job.train.epochs, job.train.global_batch_size) == (0.05, 5, 16)
    assert job.data.block_size == 32768 and job.data.thinking_format == "s1"


def test_recipe_then_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\npath = "base"\n[data]\ndataset = "d"\nblock-size = 4096\n[train]\nepochs = 3\n')
    job = parse_args(["--config", str(recipe), "--epochs", "2", "--no-export"])
    assert (job.model.path, job.data.block_size, job.train.epochs, job.checkpoint.export) == ("base", 4096, 2, False)
    recipe.write_text('[data]\nblok_size = 1\n[model]\npath = "m"\n')
    with pytest.raises(ValueError, match="unknown key 'blok_size'"):
        parse_args(["--config", str(recipe)])
    with pytest.raises(ValueError, match="--model"):
        parse_args(["--dataset", "d"])
    with pytest.raises(ValueError, match="unknown --thinking-format 'r1'"):  # refused before any data is read
        parse_args(["--model", "m", "--dataset", "d", "--thinking-format", "r1"])


def test_s1_recipe_matches_the_paper() -> None:
    job = parse_args(["--config", str(REPO / "training" / "recipes" / "s1.1-32b.toml")])
    assert isinstance(job, JobConfig)
    assert (job.train.epochs, job.train.global_batch_size, job.data.block_size) == (5, 16, 32768)
    assert (job.optim.lr, job.optim.weight_decay, job.optim.warmup_ratio) == (1e-5, 1e-4, 0.05)
    assert job.data.thinking_format == "s1" and job.train.mixed_precision == "bf16"


def test_schedule_warmup_then_cosine_to_zero() -> None:
    f = cosine_with_warmup(315, 0.05)
    warmup = math.ceil(315 * 0.05)
    assert f(0) == 0.0 and f(warmup // 2) == pytest.approx((warmup // 2) / warmup)
    assert f(warmup) == pytest.approx(1.0)
    assert f(315) == pytest.approx(0.0, abs=1e-12)
    values = [f(s) for s in range(warmup, 316)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_launcher_single_node() -> None:
    cmd = build_command(["--nproc-per-node", "4", "--config", "r.toml", "--resume"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc-per-node") + 1] == "4" and "--standalone" in cmd
    assert cmd[cmd.index("-m", 3) :] == ["-m", "training.sft", "--config", "r.toml", "--resume"]


def test_launcher_multi_node() -> None:
    cmd = build_command(
        ["--nnodes", "2", "--nproc-per-node", "8", "--rdzv-endpoint", "node0:29500", "--rdzv-id", "s1", "--epochs", "5"]
    )
    head = cmd[: cmd.index("training.sft")]
    assert "--standalone" not in head
    assert head[head.index("--nnodes") + 1] == "2"
    assert head[head.index("--rdzv-backend") + 1] == "c10d"
    assert head[head.index("--rdzv-endpoint") + 1] == "node0:29500"
    assert head[head.index("--rdzv-id") + 1] == "s1"
    assert cmd[-2:] == ["--epochs", "5"]

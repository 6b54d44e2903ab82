"""`s1serve train`: a thin launcher that replaces itself with torchrun running training.sft.

    s1serve train --nproc-per-node 8 --config training/recipes/s1.1-32b.toml
    s1serve train --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 --rdzv-id s1 --config ...

Launcher options are taken here; every other argument goes to training.sft unchanged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from training.config import ConfigError, JobConfig, parse_args
from training.config import build_parser as train_parser
from training.data import DataError
from training.preflight import preflight

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_nproc() -> str:
    try:
        import torch

        return str(torch.cuda.device_count() or 1)
    except ImportError:
        return "1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s1serve train",
        description="Fine-tune a reasoning model (launches torchrun -m training.sft; "
        "see `python -m training.sft --help` for the training options).",
        allow_abbrev=False,
    )
    parser.add_argument("--nproc-per-node", default=None, help="processes per node (default: GPUs, or 1)")
    parser.add_argument("--nnodes", default="1", help="nodes, or MIN:MAX for an elastic job")
    parser.add_argument("--node-rank", default=None, help="this node's rank (static rendezvous only)")
    parser.add_argument("--rdzv-backend", default=None, help="c10d (default for multi-node) or static")
    parser.add_argument("--rdzv-endpoint", default=None, help="HOST:PORT of the rendezvous, for multi-node")
    parser.add_argument("--rdzv-id", default=None, help="job id shared by all nodes")
    parser.add_argument("--max-restarts", default=None, help="torchrun restarts of failed workers")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the per-rank memory plan for this job on nnodes x nproc-per-node ranks and exit (reads only "
        "the model's config.json)",
    )
    parser.add_argument("--gpu-gb", type=float, default=80.0, help="GPU memory the plan is checked against (GB)")
    return parser


def build_command(argv: list[str]) -> list[str]:
    """The torchrun command line for `argv` (launcher options first, training options after)."""
    args, train_args = build_parser().parse_known_args(argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", args.nproc_per_node or _default_nproc()]
    cmd += ["--nnodes", args.nnodes]
    if args.rdzv_endpoint:
        cmd += ["--rdzv-backend", args.rdzv_backend or "c10d", "--rdzv-endpoint", args.rdzv_endpoint]
    elif args.rdzv_backend:
        cmd += ["--rdzv-backend", args.rdzv_backend]
    if args.rdzv_id:
        cmd += ["--rdzv-id", args.rdzv_id]
    if args.node_rank is not None:
        cmd += ["--node-rank", args.node_rank]
    if args.max_restarts is not None:
        cmd += ["--max-restarts", args.max_restarts]
    if args.nnodes == "1" and not args.rdzv_endpoint:
        cmd += ["--standalone"]
    return [*cmd, "-m", "training.sft", *train_args]


def world_size(args: argparse.Namespace) -> int:
    nproc = int(args.nproc_per_node or _default_nproc())
    nnodes = int(str(args.nnodes).split(":")[-1])
    return nproc * nnodes


def print_plan(job: JobConfig, world: int, gpu_gb: float) -> None:
    from transformers import AutoConfig

    from training.plan import memory_plan

    config = AutoConfig.from_pretrained(job.model.path)
    bf16 = job.train.mixed_precision == "bf16" or (job.train.mixed_precision == "auto" and _has_gpu())
    lines = memory_plan(
        config,
        world=world,
        block_size=job.data.block_size,
        micro_batch_size=job.train.micro_batch_size,
        bf16=bf16,
        activation_checkpointing=job.train.activation_checkpointing,
        cpu_offload=job.train.cpu_offload,
        loss_impl="full" if job.train.loss_impl == "full" else "chunked",
        loss_chunk_tokens=job.train.loss_chunk_tokens,
        async_checkpoint=job.checkpoint.async_checkpoint and job.checkpoint.checkpoint_every > 0,
        checkpoint_contents=job.checkpoint.checkpoint_contents,
        gpu_gb=gpu_gb,
    )
    print("\n".join(lines))


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def main(argv: list[str]) -> int:
    """Check the whole job, then exec torchrun; returns only on an error, for --help or --plan."""
    if any(a in ("-h", "--help") for a in argv):
        build_parser().print_help()
        print("\ntraining options (passed to training.sft):")
        train_parser().print_help()
        return 0
    args, train_args = build_parser().parse_known_args(argv)
    try:
        job = parse_args(train_args, prog="s1serve train")
        if args.plan:
            print_plan(job, world_size(args), args.gpu_gb)
            return 0
        preflight(job)  # allowed resume changes are logged by the trainer
    except (ConfigError, DataError) as e:
        print(f"s1serve train: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # a flag error, already printed in one line
        return int(e.code or 0)
    cmd = build_command(argv)
    if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        print(f"s1serve train: cannot find {cmd[0]}", file=sys.stderr)
        return 127
    # training.sft must be importable by the workers even when s1serve is not installed.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    os.execve(cmd[0], cmd, env)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

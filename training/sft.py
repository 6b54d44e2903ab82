"""Supervised fine-tuning in an s1 thinking format, with FSDP2: the torchrun entry point.

    torchrun --nproc-per-node 8 -m training.sft --config training/recipes/s1.1-32b.toml

The training itself is `training.trainer.Trainer`; this module parses the job, ties the
workers' lives to torchrun's, registers the step hooks the job asks for, and turns the errors a
user can fix into one line and exit status 2.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

import torch.distributed as dist

from training.config import ConfigError, JobConfig, parse_args
from training.data import DataError
from training.trainer import StepHook, Trainer


def die_with_parent() -> None:
    """Have the kernel SIGKILL this worker when its parent dies, however it dies.

    torchrun starts each worker in a session of its own, so a worker outlives a torchrun (or
    `s1serve train`, which becomes torchrun) that is killed with SIGKILL or loses its terminal,
    and would go on training and writing checkpoints unseen. Linux only; elsewhere stop a run
    with SIGINT or SIGTERM, which torchrun forwards to its workers.
    """
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was already gone before the request took effect
        os._exit(1)


def sigkill_after_step(step: int) -> StepHook:
    """A deterministic hard crash for the resume tests (`--debug-sigkill-after-step`).

    In-flight checkpoints are completed first, so what survives the crash is exactly the
    checkpoints up to `step`, as after a crash between two saves.
    """

    def hook(trainer: Trainer) -> None:
        if trainer.state.step != step:
            return
        trainer.wait_for_checkpoint()
        dist.barrier()
        os.kill(os.getpid(), signal.SIGKILL)

    return hook


def step_hooks(job: JobConfig) -> list[StepHook]:
    """The hooks a job's settings ask for: none for a normal run."""
    return [sigkill_after_step(job.train.debug_sigkill_after_step)] if job.train.debug_sigkill_after_step else []


def train(job: JobConfig, hooks: Sequence[StepHook] = ()) -> None:
    """Run `job` to its end on this rank, then export the Hugging Face folder when asked to."""
    trainer = Trainer(job, hooks=hooks)
    trainer.train()
    if job.checkpoint.export:
        trainer.export()
    trainer.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    die_with_parent()
    try:
        job = parse_args(argv)
        train(job, step_hooks(job))
    except (ConfigError, DataError) as e:
        # One line per problem, from rank 0 only: the other ranks hit the same check.
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"training.sft: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

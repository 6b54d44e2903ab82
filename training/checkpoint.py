"""Sharded, atomic training checkpoints with torch.distributed.checkpoint.

A checkpoint is a folder `step-00000120` holding the model and optimizer shards (DCP), the
scheduler and trainer state (`trainer.json`, written last) and each rank's RNG state. It is
written as `step-00000120.tmp` and renamed once complete, so a job killed at any moment leaves
either a whole checkpoint or a leftover temp folder that is ignored and cleaned up. The output
folder must be on a filesystem all nodes share.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

logger = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")
TRAINER_FILE = "trainer.json"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpointer:
    def __init__(self, root: Path, keep_last: int) -> None:
        self.root = root
        self.keep_last = keep_last
        self.rank = dist.get_rank()

    def _complete(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            match = _STEP_DIR.match(path.name)
            if match and (path / TRAINER_FILE).is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        done = self._complete()
        return done[-1][1] if done else None

    def clean_partial(self) -> None:
        """Remove temp folders left by a job killed while writing (rank 0 only)."""
        if self.rank == 0 and self.root.is_dir():
            for path in self.root.glob("step-*.tmp"):
                shutil.rmtree(path, ignore_errors=True)
        dist.barrier()

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        trainer: dict[str, Any],
    ) -> Path:
        final = self.root / f"step-{step:08d}"
        tmp = final.with_name(final.name + ".tmp")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp))
        torch.save(rng_state(), tmp / f"rng-rank{self.rank}.pt")
        dist.barrier()
        if self.rank == 0:
            payload = {"step": step, "scheduler": scheduler.state_dict(), **trainer}
            (tmp / TRAINER_FILE).write_text(json.dumps(payload, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for _, old in self._complete()[: -self.keep_last] if self.keep_last > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        return final

    def load(
        self,
        path: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> dict[str, Any]:
        """Restore everything in place; returns the trainer state (step, data fingerprint, ...)."""
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        trainer = json.loads((path / TRAINER_FILE).read_text())
        scheduler.load_state_dict(trainer.pop("scheduler"))
        rng_file = path / f"rng-rank{self.rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=False))
        else:
            logger.warning("%s has no RNG state for rank %d (world size changed?)", path, self.rank)
        return trainer


def load_model_state(path: Path) -> dict[str, torch.Tensor]:
    """The full (unsharded) model weights of a checkpoint, read in one process without a process group."""
    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    model: dict[str, torch.Tensor] = {}
    for key, meta in metadata.state_dict_metadata.items():
        if key.startswith("model.") and isinstance(meta, dcp.TensorStorageMetadata):
            model[key[len("model.") :]] = torch.empty(meta.size, dtype=meta.properties.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({"model": model}, checkpoint_id=str(path), no_dist=True)
    return model

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
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

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


@dataclass
class TrainState:
    """Everything a checkpoint saves and restores, as one object.

    The sharded tensors (the model's, and with `full` contents the optimizer's) go through DCP,
    the step and the schedule into trainer.json, and each rank's RNG state (the process-wide
    generators, see `rng_state`) into its own file. Save and load both go through this object,
    so they cannot disagree about what a checkpoint holds.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    """Optimizer steps taken; with the seed it is the data position (see training.data.BatchPlan)."""

    def sharded_state(self, contents: str) -> dict[str, Any]:
        """The DCP state dict: `model`, and `optim` unless `contents` is `model` (weights only)."""
        if contents == "model":
            return {"model": get_model_state_dict(self.model)}
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        return {"model": model_state, "optim": optim_state}

    def load_sharded_state(self, sharded: dict[str, Any], contents: str) -> None:
        """Put a loaded `sharded_state` back into the model (and optimizer)."""
        if contents == "model":
            set_model_state_dict(self.model, sharded["model"])
        else:
            set_state_dict(
                self.model, self.optimizer, model_state_dict=sharded["model"], optim_state_dict=sharded["optim"]
            )

    def trainer_json(self, contents: str, meta: dict[str, Any]) -> dict[str, Any]:
        """trainer.json's payload: step, contents and schedule first, then `meta` as given."""
        return {"step": self.step, "contents": contents, "scheduler": self.scheduler.state_dict(), **meta}

    def load_trainer_json(self, payload: dict[str, Any]) -> None:
        """Take the step and the schedule from a trainer.json payload (the schedule is removed from it)."""
        self.scheduler.load_state_dict(payload.pop("scheduler"))
        self.step = int(payload["step"])


@dataclass
class _InFlight:
    """A checkpoint being written in the background: finished by `_finalize` once its future is done."""

    step: int
    tmp: Path
    final: Path
    payload: dict[str, Any]
    future: Future


class Checkpointer:
    """Writes and restores checkpoints; with `async_save` the write overlaps the next steps.

    An asynchronous save copies this rank's shards to host memory (the only pause in
    training), then a background thread writes them over a gloo group of its own. The folder
    is renamed into place only once every rank's data is on disk, so an in-flight checkpoint
    lost to a crash leaves the previous complete one to resume from.
    """

    def __init__(self, root: Path, keep_last: int, *, contents: str = "full", async_save: bool = False) -> None:
        self.root = root
        self.keep_last = keep_last
        self.contents = contents
        self.rank = dist.get_rank()
        self.async_save = async_save
        # Background collectives must not share a group with the training loop's.
        self._group = dist.new_group(backend="gloo") if async_save else None
        self._in_flight: _InFlight | None = None

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
        return latest_checkpoint(self.root)

    def clean_partial(self) -> None:
        """Remove temp folders left by a job killed while writing (rank 0 only)."""
        if self.rank == 0 and self.root.is_dir():
            for path in self.root.glob("step-*.tmp"):
                shutil.rmtree(path, ignore_errors=True)
        dist.barrier()

    def save(self, state: TrainState, meta: dict[str, Any]) -> Path:
        """Start (async) or write a checkpoint of `state` at its step; returns its final path.

        `meta` (data fingerprint, schedule shape, the job) goes into trainer.json after the
        step, contents and scheduler, for resume checks and for readers of the folder.
        """
        self.wait()  # one in flight at a time: its host copy is reused memory
        final = self.root / f"step-{state.step:08d}"
        tmp = final.with_name(final.name + ".tmp")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        dist.barrier()
        sharded = state.sharded_state(self.contents)
        torch.save(rng_state(), tmp / f"rng-rank{self.rank}.pt")
        payload = state.trainer_json(self.contents, meta)
        if self.async_save:
            future = dcp.async_save(sharded, checkpoint_id=str(tmp), process_group=self._group)
            self._in_flight = _InFlight(state.step, tmp, final, payload, future)
            return final
        dcp.save(sharded, checkpoint_id=str(tmp))
        dist.barrier()
        self._finalize(tmp, final, payload)
        dist.barrier()
        return final

    def _finalize(self, tmp: Path, final: Path, payload: dict[str, Any]) -> None:
        """Rank 0: trainer state last, then the rename that makes the checkpoint count, then pruning."""
        if self.rank != 0:
            return
        (tmp / TRAINER_FILE).write_text(json.dumps(payload, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in self._complete()[: -self.keep_last] if self.keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)

    def poll(self) -> Path | None:
        """Finish a background save whose data is written; the checkpoint's path when one finished.

        On rank 0 a done future means every rank's shards are on disk (it gathers their results),
        so the rename needs no collective and the loop never waits here.
        """
        pending = self._in_flight
        if pending is None or not pending.future.done():
            return None
        self._in_flight = None
        pending.future.result()  # raises the writer's error, if any
        self._finalize(pending.tmp, pending.final, pending.payload)
        return pending.final

    def wait(self) -> Path | None:
        """Block until the background save (if any) is complete on every rank."""
        pending = self._in_flight
        if pending is None:
            return None
        self._in_flight = None
        pending.future.result()
        self._finalize(pending.tmp, pending.final, pending.payload)
        dist.barrier()
        return pending.final

    def load(self, path: Path, state: TrainState) -> dict[str, Any]:
        """Restore `state` in place from `path`; returns the rest of trainer.json (step, data fingerprint, ...)."""
        trainer = read_trainer_state(path)
        contents = trainer.get("contents", "full")
        sharded = state.sharded_state(contents)
        dcp.load(sharded, checkpoint_id=str(path))
        state.load_sharded_state(sharded, contents)
        if contents == "model" and self.rank == 0:
            logger.warning(
                "%s holds weights only: the optimizer state (Adam moments) starts afresh, so the resumed "
                "run does not match an uninterrupted one",
                path,
            )
        state.load_trainer_json(trainer)
        rng_file = path / f"rng-rank{self.rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=False))
        else:
            logger.warning("%s has no RNG state for rank %d (world size changed?)", path, self.rank)
        return trainer


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root` (one with its trainer state written)."""
    if not root.is_dir():
        return None
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / TRAINER_FILE).is_file():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def read_trainer_state(path: Path) -> dict[str, Any]:
    return json.loads((path / TRAINER_FILE).read_text())


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

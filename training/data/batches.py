"""The data order and the batches each rank runs: deterministic from the seed and the step.

A step's examples depend only on (seed, step), so a resumed run needs nothing but the step to
see the very same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from training.data.examples import IGNORE_INDEX, Example, SFTData


@dataclass(frozen=True)
class BatchPlan:
    """Deterministic data order: a seeded permutation per epoch, cut into global batches.

    A step's examples depend only on (seed, step), so resuming needs nothing but the step. The
    last batch of an epoch may be short, as in the s1 run (1,000 examples / 16 = 63 steps).
    """

    num_examples: int
    global_batch_size: int
    micro_batch_size: int
    world_size: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_examples / self.global_batch_size)

    @property
    def micro_steps(self) -> int:
        """Micro-batches per rank per step: the same on every rank, so collectives line up."""
        per_rank = math.ceil(self.global_batch_size / self.world_size)
        return math.ceil(per_rank / self.micro_batch_size)

    def schedule_steps(self, epochs: int) -> int:
        """Length of the learning-rate schedule: every epoch."""
        return self.steps_per_epoch * epochs

    def stop_step(self, epochs: int, max_steps: int) -> int:
        """The step the run ends at: the schedule's end, or --max-steps when that comes first."""
        total = self.schedule_steps(epochs)
        return min(max_steps, total) if max_steps else total

    def describe(self, epochs: int, max_steps: int) -> list[tuple[str, str]]:
        """(level, line) pairs for the start of a run; each line is literally true of the run."""
        total = self.schedule_steps(epochs)
        stop = self.stop_step(epochs, max_steps)
        spe = self.steps_per_epoch
        lines: list[tuple[str, str]] = []
        if max_steps and max_steps < total:
            lines.append(
                ("info", f"{stop} steps (--max-steps) of a {total}-step schedule: {epochs} epochs x {spe} steps")
            )
        else:
            lines.append(("info", f"{total} steps: {epochs} epochs x {spe} steps"))
            if max_steps > total:
                lines.append(("warning", f"--max-steps {max_steps} is past the end; the run stops at step {total}"))
        g, w, mb, ms = self.global_batch_size, self.world_size, self.micro_batch_size, self.micro_steps
        slots = w * ms * mb
        if slots == g:
            lines.append(("info", f"global batch {g} = {w} ranks x {ms} micro-batches x {mb}"))
        else:
            lines.append(
                (
                    "warning",
                    f"global batch {g} on {w} ranks: {ms} micro-batches of {mb} per rank fill {slots} example "
                    f"slots, {slots - g} of them empty each step (computed with no loss); a global batch "
                    f"divisible by {w * mb} wastes none",
                )
            )
        last = self.num_examples - (spe - 1) * g
        if last != g:
            lines.append(("info", f"the last step of each epoch has {last} of {g} examples"))
        return lines

    def epoch_order(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.num_examples, generator=gen).tolist()

    def global_batch(self, step: int) -> list[int]:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        return order[index * self.global_batch_size : (index + 1) * self.global_batch_size]

    def examples_seen(self, steps: int) -> int:
        """Examples consumed by the first `steps` steps (the data position)."""
        epochs, index = divmod(steps, self.steps_per_epoch)
        return epochs * self.num_examples + min(index * self.global_batch_size, self.num_examples)

    def rank_micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """This rank's examples for `step`, as micro_steps lists (empty lists where the batch ran out)."""
        mine = self.global_batch(step)[rank :: self.world_size]
        mb = self.micro_batch_size
        return [mine[i * mb : (i + 1) * mb] for i in range(self.micro_steps)]


@dataclass
class Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None

    @property
    def num_label_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def collate(examples: list[Example], pad_id: int) -> Batch:
    """Right-pad, and shift: position t predicts token t+1."""
    width = max(len(ex.input_ids) for ex in examples) - 1
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids) - 1
        ids[row, :n] = ex.input_ids[:-1]
        labels[row, :n] = ex.labels[1:]
        mask[row, :n] = 1
    return Batch(ids, labels, None if bool(mask.all()) else mask)


def micro_batches(data: SFTData, plan: BatchPlan, step: int, rank: int, pad_id: int) -> Iterator[Batch]:
    """This rank's micro-batches; a rank whose share ran out gets a fully masked stand-in."""
    for indices in plan.rank_micro_batches(step, rank):
        if indices:
            yield collate([data.examples[i] for i in indices], pad_id)
        else:
            first = data.examples[0]
            stand_in = Example(first.input_ids[:16], torch.full_like(first.labels[:16], IGNORE_INDEX))
            yield collate([stand_in], pad_id)

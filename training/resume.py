"""What a resumed job may change: the checkpoint's stored job against the new one.

A checkpoint continues one run. Settings that decide which examples are seen in which order,
or what the optimizer and schedule do with them, must stay as they were, or the resumed run is
neither the old run nor a new one. Settings that only change how a step is computed, logged,
saved or where the run stops may change. More (or fewer) epochs are allowed as long as the run
has not passed the new end; the schedule is then stretched from the resumed step on, which is
said when the job starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.config import JobConfig, flag_name

# Field -> why it may not change.
REFUSED: dict[str, str] = {
    "model.path": "the checkpoint's weights were trained from that base model",
    "data.dataset": "it changes the training examples",
    "data.split": "it changes the training examples",
    "data.dataset_format": "it changes the training examples",
    "data.trace_source": "it changes the training examples",
    "data.thinking_format": "it changes the training examples",
    "data.answer_prefix": "it changes the training examples",
    "data.block_size": "it changes the training examples",
    "data.drop_long": "it changes the training examples",
    "train.global_batch_size": "with the seed it fixes the data order and the step count",
    "train.seed": "it fixes the data order",
    "optim.lr": "the schedule and optimizer state were built with it",
    "optim.beta1": "the optimizer state was built with it",
    "optim.beta2": "the optimizer state was built with it",
    "optim.weight_decay": "the optimizer state was built with it",
    "optim.warmup_ratio": "the schedule was built with it",
    "optim.max_grad_norm": "it changes every update",
}

# Field -> what changing it does, said when the job starts.
NOTED: dict[str, str] = {
    "train.epochs": "the learning-rate schedule now spans {new_total} steps, stretched from step {step} on; "
    "the run no longer matches an uninterrupted run of either length",
    "train.mixed_precision": "the numerics change from here on",
    "model.attn_implementation": "the attention kernel changes; losses may differ in the last digits",
    "train.micro_batch_size": "only the split into micro-batches changes; the loss is the same token mean",
}


# Fields that say how this job was started, not what it trains: not reported.
SILENT = {"checkpoint.resume", "train.debug_sigkill_after_step"}


@dataclass
class ResumeCheck:
    refused: list[str]
    """One line per refused change, naming the flag, both values and why."""
    allowed: list[str]
    """One line per allowed change, naming the flag, both values and what it does."""


def _flat(job: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in job.items() for key, value in values.items()}


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def compare_jobs(saved: dict[str, Any], job: JobConfig, *, step: int, steps_per_epoch: int | None) -> ResumeCheck:
    """Compare the stored job (as `JobConfig.to_dict()` wrote it) with the new one."""
    old, new = _flat(saved), _flat(job.to_dict())
    refused: list[str] = []
    allowed: list[str] = []
    for key, value in new.items():
        if key not in old or old[key] == value or key in SILENT:
            continue
        section, name = key.split(".", 1)
        change = f"{flag_name(section, name)} {_show(old[key])} -> {_show(value)}"
        if key in REFUSED:
            refused.append(f"{change}: {REFUSED[key]}")
        elif key == "train.epochs" and steps_per_epoch:
            new_total = int(value) * steps_per_epoch
            if new_total < step:
                refused.append(
                    f"{change}: the checkpoint is at step {step}, epoch {step / steps_per_epoch:g}, past the "
                    f"new end ({value} epochs x {steps_per_epoch} steps = {new_total} steps)"
                )
            else:
                allowed.append(f"{change}: " + NOTED[key].format(new_total=new_total, step=step))
        elif key in NOTED:
            allowed.append(f"{change}: {NOTED[key]}")
        else:
            allowed.append(f"{change}: it does not change what is trained")
    return ResumeCheck(refused=refused, allowed=allowed)


def refusal_message(checkpoint: str, refused: list[str]) -> str:
    lines = "\n".join(f"  {line}" for line in refused)
    return (
        f"refusing to resume from {checkpoint}: the job differs from the checkpoint's in settings that "
        f"must stay the same:\n{lines}\nResume with the checkpoint's values (they are in its trainer.json "
        "under 'job'), or start a new run in another --output-dir."
    )

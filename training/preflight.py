"""Checks that run before any process group, weights or tokenizer exist.

`s1serve train` runs them before it starts torchrun, so a wrong flag, a missing folder, a
malformed data row or an incompatible resume is one message instead of one traceback per rank
and torchrun's failure report; the trainer runs them again for jobs started by torchrun
directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.checkpoint import latest_checkpoint, read_trainer_state
from training.config import ConfigError, DataConfig, JobConfig
from training.data import DataError, Records, check_columns, local_data_files, looks_local, read_records
from training.resume import ResumeCheck, compare_jobs, refusal_message


def check_model(path: str) -> None:
    """A local folder must look like a Hugging Face model; anything path-like that is absent is named as such."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"--model {path}: the folder has no config.json (expected a Hugging Face model folder)")
        if not any(folder.glob("*.safetensors")):
            raise ConfigError(f"--model {path}: the folder has no *.safetensors weights")
        return
    if folder.exists():
        raise ConfigError(f"--model {path}: is a file; expected a model folder")
    if looks_local(path):
        raise ConfigError(f"--model {path}: no such model folder")


def check_rows(records: Records, cfg: DataConfig) -> None:
    """Every row has the columns its format reads (no tokenizer needed)."""
    if not records.rows:
        raise DataError(f"no usable training examples: {', '.join(records.sources) or cfg.dataset} has no rows")
    for row, origin in zip(records.rows, records.origins, strict=True):
        try:
            check_columns(row, cfg)
        except DataError as e:
            raise DataError(f"{origin}: {e}") from None


def check_data(cfg: DataConfig) -> None:
    """Local data is read and its columns checked; a hub id is left to the trainer."""
    if local_data_files(cfg.dataset, cfg.split) is None and not looks_local(cfg.dataset):
        return
    check_rows(read_records(cfg.dataset, cfg.split), cfg)


def check_resume(job: JobConfig) -> tuple[Path, dict[str, Any], ResumeCheck] | None:
    """The checkpoint a --resume job would continue, its state, and what changed; raises on refused changes."""
    if not job.checkpoint.resume:
        return None
    latest = latest_checkpoint(Path(job.train.output_dir) / "checkpoints")
    if latest is None:
        return None
    state = read_trainer_state(latest)
    saved = state.get("job")
    if not isinstance(saved, dict):
        return None
    check = compare_jobs(saved, job, step=int(state["step"]), steps_per_epoch=state.get("steps_per_epoch"))
    if check.refused:
        raise ConfigError(refusal_message(str(latest), check.refused))
    return latest, state, check


def check_loggers(job: JobConfig) -> None:
    """Optional packages the job asks for (also the fused loss kernel)."""
    if job.train.loss_impl == "liger":
        try:
            import liger_kernel  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError(
                "--loss-impl liger needs the liger-kernel package on a GPU host: pip install liger-kernel "
                "(or use --loss-impl chunked)"
            ) from None
    if job.train.wandb:
        try:
            import wandb  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError("--wandb needs the wandb package: pip install wandb (or leave out --wandb)") from None


def preflight(job: JobConfig) -> ResumeCheck | None:
    """Everything that can be checked before torchrun starts; returns the resume comparison, if resuming."""
    check_model(job.model.path)
    check_data(job.data)
    check_loggers(job)
    found = check_resume(job)
    return found[2] if found else None

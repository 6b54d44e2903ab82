"""Training configuration: plain dataclasses, filled from a recipe file and command-line flags.

Every field is one flag (`--block-size 4096`); a recipe (TOML or JSON, one table per section)
sets the same fields, and flags given on the command line win over the recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget.formats import FORMATS


@dataclass
class ModelConfig:
    path: str = ""
    """Base model: a local Hugging Face folder (safetensors, config, tokenizer)."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers (`sdpa`, `flash_attention_2`, `eager`)."""


@dataclass
class DataConfig:
    dataset: str = ""
    """JSONL/JSON/Parquet file, a folder of them, or a Hugging Face dataset id."""
    split: str = "train"
    dataset_format: str = "auto"
    """`auto`, `s1k`, `s1k-1.1` or `messages`."""
    trace_source: str = "deepseek"
    """For s1K-1.1: train on the `deepseek` or the `gemini` traces."""
    thinking_format: str = "s1"
    """Delimiters of the thinking segment, from budget.formats (`s1` or `think`)."""
    answer_prefix: str = "Answer: "
    """Put before answers that lack it, as s1 did; empty to disable."""
    block_size: int = 32768
    """Longest training sequence in tokens; longer examples are truncated (or dropped)."""
    drop_long: bool = False
    """Drop examples longer than block_size instead of truncating them."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 1e-4
    warmup_ratio: float = 0.05
    """Fraction of the steps with linear warmup; cosine decay to 0 afterwards."""
    max_grad_norm: float = 1.0


@dataclass
class TrainConfig:
    output_dir: str = "runs/s1"
    epochs: int = 5
    global_batch_size: int = 16
    """Examples per optimizer step across all ranks (gradient accumulation fills the rest)."""
    micro_batch_size: int = 1
    """Examples per forward pass on one rank."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: epochs decide). The schedule still spans them."""
    seed: int = 42
    mixed_precision: str = "auto"
    """`bf16` (bf16 compute, fp32 master weights and reductions), `fp32`, or `auto` (bf16 on GPU)."""
    activation_checkpointing: bool = False
    cpu_offload: bool = False
    """Keep sharded parameters, gradients and optimizer state in CPU memory."""
    log_every: int = 1
    progress: bool = True
    debug_sigkill_after_step: int = 0
    """Testing aid: SIGKILL the job after this step, to prove resume after a hard crash."""


@dataclass
class CheckpointConfig:
    checkpoint_every: int = 50
    """Steps between sharded checkpoints (0 disables them)."""
    keep_last: int = 2
    resume: bool = False
    """Continue from the latest checkpoint in <output_dir>/checkpoints, if any."""
    export_dir: str = ""
    """Where the final Hugging Face folder goes (default <output_dir>/final)."""
    export_dtype: str = "bfloat16"
    export: bool = True


@dataclass
class JobConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(JobConfig))


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(JobConfig)
    return {name: hints[name] for name in SECTIONS}


def _field_type(section: type, name: str) -> type:
    hint = typing.get_type_hints(section)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


# Flags whose name differs from their field.
_FLAG_NAMES = {"model.path": "--model"}


def _flag(section_name: str, name: str) -> str:
    return _FLAG_NAMES.get(f"{section_name}.{name}", "--" + name.replace("_", "-"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="training.sft",
        description="Supervised fine-tuning of a reasoning model in an s1 thinking format (FSDP2).",
    )
    parser.add_argument("--config", help="recipe file (TOML or JSON) with [model], [data], [optim], ... tables")
    for section_name, section in _section_types().items():
        group = parser.add_argument_group(section_name)
        for f in dataclasses.fields(section):
            kind = _field_type(section, f.name)
            if kind is bool:
                group.add_argument(
                    _flag(section_name, f.name),
                    dest=f"{section_name}.{f.name}",
                    action=argparse.BooleanOptionalAction,
                    default=None,
                )
            else:
                group.add_argument(
                    _flag(section_name, f.name),
                    dest=f"{section_name}.{f.name}",
                    type=kind,
                    default=None,
                    metavar=f.name.upper(),
                )
    return parser


def load_recipe(path: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def parse_args(argv: list[str] | None = None) -> JobConfig:
    """Defaults, then the recipe, then flags."""
    args = build_parser().parse_args(argv)
    job = JobConfig()
    if args.config:
        recipe = load_recipe(args.config)
        for section_name, values in recipe.items():
            if section_name not in SECTIONS:
                raise ValueError(f"{args.config}: unknown section [{section_name}]; expected one of {SECTIONS}")
            section = getattr(job, section_name)
            for key, value in values.items():
                key = key.replace("-", "_")
                if not hasattr(section, key):
                    raise ValueError(f"{args.config}: unknown key {key!r} in [{section_name}]")
                setattr(section, key, value)
    for dest, value in vars(args).items():
        if value is None or "." not in dest:
            continue
        section_name, key = dest.split(".", 1)
        setattr(getattr(job, section_name), key, value)
    validate(job)
    return job


def validate(job: JobConfig) -> None:
    if not job.model.path:
        raise ValueError("--model (the base model folder) is required")
    if not job.data.dataset:
        raise ValueError("--dataset is required")
    if job.data.dataset_format not in ("auto", "s1k", "s1k-1.1", "messages"):
        raise ValueError(f"unknown --dataset-format {job.data.dataset_format!r}")
    if job.data.thinking_format not in FORMATS:
        raise ValueError(f"unknown --thinking-format {job.data.thinking_format!r}; choose one of {sorted(FORMATS)}")
    if job.data.trace_source not in ("deepseek", "gemini"):
        raise ValueError(f"unknown --trace-source {job.data.trace_source!r}")
    if job.train.mixed_precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"unknown --mixed-precision {job.train.mixed_precision!r}")
    if job.train.global_batch_size < 1 or job.train.micro_batch_size < 1:
        raise ValueError("batch sizes must be positive")
    if job.data.block_size < 8:
        raise ValueError("--block-size is too small")

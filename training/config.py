"""Training configuration: plain dataclasses, filled from a recipe file and command-line flags.

Every field is one flag (`--block-size 4096`); a recipe (TOML or JSON, one table per section)
sets the same fields, and flags given on the command line win over the recipe.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget.formats import FORMATS


@dataclass
class ModelConfig:
    path: str = ""
    """Base model: a local Hugging Face folder (safetensors, config, tokenizer) or a hub id."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers (`sdpa`, `flash_attention_2`, `eager`)."""


@dataclass
class DataConfig:
    dataset: str = ""
    """JSONL/JSON/Parquet file, a folder of them, or a Hugging Face dataset id."""
    split: str = "train"
    """Split to read: a folder's files named after it, or the hub dataset's split."""
    dataset_format: str = "auto"
    """`auto` (told from each row's columns), `s1k`, `s1k-1.1` or `messages`."""
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
    """Peak learning rate of AdamW."""
    beta1: float = 0.9
    """AdamW's first-moment decay."""
    beta2: float = 0.95
    """AdamW's second-moment decay."""
    weight_decay: float = 1e-4
    """AdamW's decoupled weight decay."""
    warmup_ratio: float = 0.05
    """Fraction of the steps with linear warmup; cosine decay to 0 afterwards."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""


@dataclass
class TrainConfig:
    output_dir: str = "runs/s1"
    """Folder for job.json, metrics, TensorBoard events, checkpoints and the export."""
    epochs: int = 5
    """Passes over the data; with the global batch it fixes the schedule's length."""
    global_batch_size: int = 16
    """Examples per optimizer step across all ranks (gradient accumulation fills the rest)."""
    micro_batch_size: int = 1
    """Examples per forward pass on one rank."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs); the schedule still spans the epochs."""
    seed: int = 42
    """Seeds the data order (one permutation per epoch) and the random state."""
    mixed_precision: str = "auto"
    """`bf16` (bf16 compute, fp32 master weights and reductions), `fp32`, or `auto` (bf16 on GPU)."""
    activation_checkpointing: bool = False
    """Recompute each decoder layer in the backward pass instead of keeping its activations."""
    cpu_offload: bool = False
    """Keep sharded parameters, gradients and optimizer state in CPU memory."""
    loss_impl: str = "auto"
    """`chunked` (the logits never exist in full), `liger` (fused GPU kernel), `full`, or `auto`."""
    loss_chunk_tokens: int = 2048
    """Tokens per chunk of the chunked loss: its peak is this many rows of logits."""
    log_every: int = 1
    """Write a log line every this many steps (metrics.jsonl gets every step)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files to <output_dir>/tensorboard (needs the tensorboard package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package; WANDB_MODE=offline works without a server)."""
    wandb_project: str = "s1serve"
    """Weights & Biases project name."""
    debug_sigkill_after_step: int = field(default=0, metadata={"hidden": True})
    """Testing aid: SIGKILL the job after this step, to prove resume after a hard crash."""


@dataclass
class CheckpointConfig:
    checkpoint_every: int = 50
    """Steps between sharded checkpoints, plus one at the last step (0: none, only the export)."""
    checkpoint_contents: str = "full"
    """`full` (weights, optimizer, schedule: resumes exactly) or `model` (weights only, a third of the size)."""
    async_checkpoint: bool = True
    """Write checkpoints in the background while training goes on (a host-memory copy per rank)."""
    keep_last: int = 2
    """Complete checkpoints to keep (0: all)."""
    resume: bool = False
    """Continue from the latest checkpoint in <output_dir>/checkpoints, if any."""
    export_dir: str = ""
    """Where the final Hugging Face folder goes (default <output_dir>/final)."""
    export_dtype: str = "bfloat16"
    """dtype of the exported weights."""
    export: bool = True
    """Export the final model as a Hugging Face folder."""


@dataclass
class JobConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A setting that cannot work; the message names the flag or file."""


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


def flag_name(section_name: str, name: str) -> str:
    """The command-line flag of a field (`train.global_batch_size` -> `--global-batch-size`)."""
    return _FLAG_NAMES.get(f"{section_name}.{name}", "--" + name.replace("_", "-"))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (Python keeps them only in the source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


class _Parser(argparse.ArgumentParser):
    """Flag errors in one line (the full usage is dozens of lines; --help shows it)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "training.sft") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Supervised fine-tuning of a reasoning model in an s1 thinking format (FSDP2).",
    )
    parser.add_argument("--config", help="recipe file (TOML or JSON) with [model], [data], [optim], ... tables")
    defaults = JobConfig()
    for section_name, section in _section_types().items():
        group = parser.add_argument_group(section_name)
        docs = field_docs(section)
        for f in dataclasses.fields(section):
            kind = _field_type(section, f.name)
            default = getattr(getattr(defaults, section_name), f.name)
            text = docs.get(f.name, "")
            shown = repr(default) if isinstance(default, str) else str(default)
            if f.metadata.get("hidden"):
                text = argparse.SUPPRESS
            else:
                text = f"{text} (default: {shown})" if text else f"(default: {shown})"
                text = text.replace("%", "%%")
            if kind is bool:
                group.add_argument(
                    flag_name(section_name, f.name),
                    dest=f"{section_name}.{f.name}",
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=text,
                )
            else:
                group.add_argument(
                    flag_name(section_name, f.name),
                    dest=f"{section_name}.{f.name}",
                    type=kind,
                    default=None,
                    metavar=f.name.upper(),
                    help=text,
                )
    return parser


def load_recipe(path: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such recipe file")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(text)
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None


def _recipe_value(path: str, section_name: str, key: str, value: Any, section: type) -> Any:
    """A recipe value of the field's type (TOML and JSON have their own), or an error naming it."""
    kind = _field_type(section, key)
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float
        else isinstance(value, kind) and not isinstance(value, bool)
    )
    if not ok:
        raise ConfigError(f"{path}: [{section_name}] {key} = {value!r}: expected {kind.__name__}")
    return kind(value)


def parse_args(argv: list[str] | None = None, prog: str = "training.sft") -> JobConfig:
    """Defaults, then the recipe, then flags."""
    args = build_parser(prog).parse_args(argv)
    job = JobConfig()
    if args.config:
        recipe = load_recipe(args.config)
        for section_name, values in recipe.items():
            if section_name not in SECTIONS:
                raise ConfigError(f"{args.config}: unknown section [{section_name}]; expected one of {SECTIONS}")
            section = getattr(job, section_name)
            for key, value in values.items():
                key = key.replace("-", "_")
                if not hasattr(section, key):
                    raise ConfigError(f"{args.config}: unknown key {key!r} in [{section_name}]")
                setattr(section, key, _recipe_value(args.config, section_name, key, value, type(section)))
    for dest, value in vars(args).items():
        if value is None or "." not in dest:
            continue
        section_name, key = dest.split(".", 1)
        setattr(getattr(job, section_name), key, value)
    validate(job)
    return job


def validate(job: JobConfig) -> None:
    """Checks that need nothing but the values (files are checked by training.preflight)."""
    if not job.model.path:
        raise ConfigError("--model (the base model folder) is required")
    if not job.data.dataset:
        raise ConfigError("--dataset is required")
    choices = {
        "--dataset-format": (job.data.dataset_format, ("auto", "s1k", "s1k-1.1", "messages")),
        "--thinking-format": (job.data.thinking_format, tuple(sorted(FORMATS))),
        "--trace-source": (job.data.trace_source, ("deepseek", "gemini")),
        "--mixed-precision": (job.train.mixed_precision, ("auto", "bf16", "fp32")),
        "--loss-impl": (job.train.loss_impl, ("auto", "chunked", "full", "liger")),
        "--checkpoint-contents": (job.checkpoint.checkpoint_contents, ("full", "model")),
        "--export-dtype": (job.checkpoint.export_dtype, ("bfloat16", "float16", "float32")),
    }
    for flag, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"unknown {flag} {value!r}; choose one of {list(allowed)}")
    positive = {
        "--global-batch-size": job.train.global_batch_size,
        "--micro-batch-size": job.train.micro_batch_size,
        "--epochs": job.train.epochs,
        "--loss-chunk-tokens": job.train.loss_chunk_tokens,
        "--log-every": job.train.log_every,
    }
    for flag, value in positive.items():
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value})")
    not_negative = {
        "--max-steps": job.train.max_steps,
        "--checkpoint-every": job.checkpoint.checkpoint_every,
        "--keep-last": job.checkpoint.keep_last,
        "--lr": job.optim.lr,
        "--weight-decay": job.optim.weight_decay,
        "--max-grad-norm": job.optim.max_grad_norm,
    }
    for flag, value in not_negative.items():
        if value < 0:
            raise ConfigError(f"{flag} must not be negative (got {value})")
    if not 0 <= job.optim.warmup_ratio <= 1:
        raise ConfigError(f"--warmup-ratio must be between 0 and 1 (got {job.optim.warmup_ratio})")
    if job.train.micro_batch_size > job.train.global_batch_size:
        raise ConfigError(
            f"--micro-batch-size {job.train.micro_batch_size} is larger than --global-batch-size "
            f"{job.train.global_batch_size}"
        )
    if job.data.block_size < 8:
        raise ConfigError(f"--block-size {job.data.block_size} is too small (at least 8 tokens)")

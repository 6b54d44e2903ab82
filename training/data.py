"""Training data: s1K-style records to token ids with a loss mask on the assistant turn only.

An example is the base model's chat template applied to the question, with the assistant turn
rendered by the thinking format (budget.formats), so the model learns exactly the delimiters
the server forces at inference. Prompt and assistant turn are tokenized separately: the mask
boundary is then exact, and the assistant tokens are what the model will generate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from budget.formats import ThinkingFormat, get_format
from training.config import DataConfig

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_THINKING_KEYS = ("reasoning_content", "reasoning", "thinking")


class DataError(ValueError):
    pass


# --------------------------------------------------------------------------- loading


@dataclass
class Records:
    """Rows with where each came from, so an error can name the file and row."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, rows: list[dict[str, Any]], source: str, unit: str = "row", numbers: list[int] | None = None) -> None:
        self.sources.append(source)
        for i, row in enumerate(rows):
            self.rows.append(row)
            self.origins.append(f"{source} {unit} {numbers[i] if numbers else i + 1}")


def _read_jsonl(path: Path, out: Records) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON: {e}") from None
        out.add(rows, str(path), "row")
        return
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {number}: not valid JSON: {e}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
        numbers.append(number)
    out.add(rows, str(path), "line", numbers)


def _read_parquet(path: Path, out: Records) -> None:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(f"reading {path} needs pyarrow: pip install pyarrow (or convert the data to JSONL)") from None
    out.add(pq.read_table(path).to_pylist(), str(path), "row")


def _read_file(path: Path, out: Records) -> None:
    if path.suffix in (".jsonl", ".json"):
        _read_jsonl(path, out)
    elif path.suffix == ".parquet":
        _read_parquet(path, out)
    else:
        raise DataError(f"unsupported data file {path}: use .jsonl, .json or .parquet")


def local_data_files(source: str, split: str = "train") -> list[Path] | None:
    """The files a local `source` stands for, or None when it is not a local path."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
        split_files = [p for p in files if p.name.startswith(split) or p.parent.name == split]
        files = split_files or files
        if not files:
            raise DataError(f"no .jsonl/.json/.parquet files under {path}")
        return files
    return None


def looks_local(source: str) -> bool:
    """A path rather than a hub id: hub ids are `name` or `owner/name`."""
    return (
        source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or "\\" in source
        or Path(source).suffix
        in (
            ".jsonl",
            ".json",
            ".parquet",
        )
    )


def read_records(source: str, split: str = "train") -> Records:
    """Rows from a local file, a folder of files (one split's files if named so), or a hub dataset id."""
    out = Records()
    files = local_data_files(source, split)
    if files is not None:
        for p in files:
            _read_file(p, out)
        return out
    if looks_local(source):
        raise DataError(f"--dataset {source}: no such file or folder")
    try:
        import datasets
    except ModuleNotFoundError:
        raise DataError(
            f"{source!r} is not a local file or folder; loading it as a Hugging Face dataset id needs the "
            "`datasets` package (pip install datasets) and access to the hub"
        ) from None
    out.add(list(datasets.load_dataset(source, split=split)), f"{source} ({split})", "row")
    return out


def load_records(source: str, split: str = "train") -> list[dict[str, Any]]:
    """The rows of `read_records`, without their origins."""
    return read_records(source, split).rows


# --------------------------------------------------------------------------- records to turns


@dataclass
class Conversation:
    """The prompt turns and the assistant turn text to learn."""

    prompt: list[dict[str, str]]
    assistant: str


# Columns each format reads (`{src}` is the trace source).
REQUIRED_COLUMNS = {
    "s1k": ("question", "thinking_trajectories", "attempt"),
    "s1k-1.1": ("question", "{src}_thinking_trajectory", "{src}_attempt"),
    "messages": ("messages",),
}


def detect_format(record: dict[str, Any]) -> str:
    if "messages" in record:
        return "messages"
    if "deepseek_thinking_trajectory" in record or "gemini_thinking_trajectory" in record:
        return "s1k-1.1"
    if "thinking_trajectories" in record:
        return "s1k"
    raise DataError(
        f"cannot tell the dataset format from the columns {sorted(record)}: expected `messages` (messages), "
        "`deepseek_thinking_trajectory` or `gemini_thinking_trajectory` (s1k-1.1), or `thinking_trajectories` (s1k)"
    )


def check_columns(record: dict[str, Any], cfg: DataConfig) -> str:
    """The row's format, after checking it has every column that format reads."""
    if not isinstance(record, dict):
        raise DataError(f"expected a row of named columns, got {type(record).__name__}")
    kind = detect_format(record) if cfg.dataset_format == "auto" else cfg.dataset_format
    needed = [c.format(src=cfg.trace_source) for c in REQUIRED_COLUMNS[kind]]
    for column in needed:
        if column not in record or record[column] is None:
            what = "missing" if column not in record else "empty (null)"
            raise DataError(f"column {column!r} is {what}; format {kind} needs {needed}")
    return kind


def _with_prefix(answer: str, prefix: str) -> str:
    if prefix and prefix.strip() not in answer:
        return prefix + answer.strip()
    return answer


def to_conversation(record: dict[str, Any], cfg: DataConfig, fmt: ThinkingFormat) -> Conversation:
    kind = check_columns(record, cfg)
    if kind == "messages":
        messages = [dict(m) for m in record["messages"]]
        if not messages or messages[-1].get("role") != "assistant":
            raise DataError("a `messages` example must end with an assistant turn")
        last = messages[-1]
        thinking = next((last[k] for k in _THINKING_KEYS if last.get(k)), None)
        content = last.get("content") or ""
        assistant = fmt.render_assistant(thinking, content) if thinking is not None else content
        prompt = [{"role": m["role"], "content": m.get("content") or ""} for m in messages[:-1]]
        return Conversation(prompt=prompt, assistant=assistant)
    if kind == "s1k":
        traces = record["thinking_trajectories"]
        thinking = "\n".join(traces) if isinstance(traces, list) else str(traces)
        answer = record["attempt"]
    else:
        thinking = record[f"{cfg.trace_source}_thinking_trajectory"]
        answer = record[f"{cfg.trace_source}_attempt"]
    assistant = fmt.render_assistant(thinking, _with_prefix(answer, cfg.answer_prefix))
    return Conversation(prompt=[{"role": "user", "content": record["question"]}], assistant=assistant)


# --------------------------------------------------------------------------- tokenization


@dataclass
class Example:
    input_ids: torch.Tensor
    labels: torch.Tensor


def split_template(tokenizer: Any, conv: Conversation) -> tuple[str, str]:
    """(prompt text, assistant text including the template's end-of-turn) as the chat template renders them."""
    prompt = tokenizer.apply_chat_template(conv.prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        conv.prompt + [{"role": "assistant", "content": conv.assistant}], tokenize=False
    )
    if not full.startswith(prompt):
        raise DataError("the chat template renders the prompt differently with and without the assistant turn")
    completion = full[len(prompt) :].rstrip()
    if conv.assistant.strip() not in completion:
        raise DataError("the chat template rewrites the assistant turn (it would drop or move the thinking)")
    return prompt, completion


def tokenize(tokenizer: Any, conv: Conversation) -> Example:
    prompt, completion = split_template(tokenizer, conv)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor(prompt_ids + completion_ids, dtype=torch.long)
    labels = ids.clone()
    labels[: len(prompt_ids)] = IGNORE_INDEX
    return Example(input_ids=ids, labels=labels)


@dataclass
class SFTData:
    examples: list[Example]
    total: int = 0
    too_long: int = 0
    """Examples longer than the block size: truncated + dropped_long + prompt_fills_block."""
    truncated: int = 0
    """Long examples cut to the block size, keeping part of their assistant turn."""
    dropped_long: int = 0
    """Long examples dropped by --drop-long."""
    prompt_fills_block: int = 0
    """Long examples dropped because the prompt alone fills the block: nothing left to learn."""
    fingerprint: str = ""
    lengths: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.dropped_long + self.prompt_fills_block

    def summary(self) -> str:
        n = len(self.lengths)
        longest = max(self.lengths, default=0)
        mean = sum(self.lengths) / n if n else 0.0
        parts = [f"{self.truncated} truncated, cutting their answers", f"{self.dropped_long} dropped (--drop-long)"]
        if self.prompt_fills_block:
            parts.append(f"{self.prompt_fills_block} dropped because the prompt alone fills the block")
        return (
            f"{self.total} examples, {len(self.examples)} used; {self.too_long} longer than the block size "
            f"({'; '.join(parts)}); tokens: mean {mean:.0f}, longest {longest}"
        )


def build_dataset(
    tokenizer: Any, records: Records | Iterable[dict[str, Any]], cfg: DataConfig, *, source: str = ""
) -> SFTData:
    """Tokenize every row; errors name the file and row, and an empty result says why."""
    if not isinstance(records, Records):
        plain = Records()
        plain.add(list(records), source or cfg.dataset or "data", "row")
        records = plain
    fmt = get_format(cfg.thinking_format)
    data = SFTData(examples=[], sources=records.sources)
    digest = hashlib.sha256()
    for record, origin in zip(records.rows, records.origins, strict=True):
        data.total += 1
        try:
            ex = tokenize(tokenizer, to_conversation(record, cfg, fmt))
        except DataError as e:
            raise DataError(f"{origin}: {e}") from None
        n = len(ex.input_ids)
        data.lengths.append(n)
        if n > cfg.block_size:
            data.too_long += 1
            if cfg.drop_long:
                data.dropped_long += 1
                continue
            ex = Example(ex.input_ids[: cfg.block_size], ex.labels[: cfg.block_size])
            # Position 0 predicts nothing; a label at 1 or later is a token to learn.
            if int((ex.labels[1:] != IGNORE_INDEX).sum()) == 0:
                data.prompt_fills_block += 1
                continue
            data.truncated += 1
        digest.update(ex.input_ids.numpy().tobytes())
        digest.update(ex.labels.numpy().tobytes())
        data.examples.append(ex)
    if not data.examples:
        raise DataError(_why_empty(data, cfg))
    data.fingerprint = digest.hexdigest()[:16]
    return data


def _why_empty(data: SFTData, cfg: DataConfig) -> str:
    where = ", ".join(data.sources) or cfg.dataset
    if data.total == 0:
        return f"no usable training examples: {where} has no rows"
    reasons = []
    if data.dropped_long:
        reasons.append(f"{data.dropped_long} longer than --block-size {cfg.block_size} (dropped by --drop-long)")
    if data.prompt_fills_block:
        reasons.append(
            f"{data.prompt_fills_block} whose prompt alone fills --block-size {cfg.block_size}, leaving no "
            "assistant token to learn"
        )
    return (
        f"no usable training examples in {where}: all {data.total} were dropped: {'; '.join(reasons)}. "
        f"Their lengths run from {min(data.lengths)} to {max(data.lengths)} tokens; raise --block-size"
        + (" or leave out --drop-long to truncate them" if data.dropped_long else "")
    )


# --------------------------------------------------------------------------- order and batches


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

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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(f"reading {path} needs pyarrow: pip install pyarrow (or convert the data to JSONL)") from None
    return pq.read_table(path).to_pylist()


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if path.suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"unsupported data file {path}: use .jsonl, .json or .parquet")


def load_records(source: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows from a local file, a folder of files (one split's files if named so), or a hub dataset id."""
    path = Path(source)
    if path.is_file():
        return _read_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
        split_files = [p for p in files if p.name.startswith(split) or p.parent.name == split]
        files = split_files or files
        if not files:
            raise DataError(f"no .jsonl/.json/.parquet files under {path}")
        return [row for p in files for row in _read_file(p)]
    try:
        import datasets
    except ModuleNotFoundError:
        raise DataError(
            f"{source!r} is not a local file or folder; loading it as a Hugging Face dataset id needs the "
            "`datasets` package (pip install datasets) and access to the hub"
        ) from None
    return list(datasets.load_dataset(source, split=split))


# --------------------------------------------------------------------------- records to turns


@dataclass
class Conversation:
    """The prompt turns and the assistant turn text to learn."""

    prompt: list[dict[str, str]]
    assistant: str


def detect_format(record: dict[str, Any]) -> str:
    if "messages" in record:
        return "messages"
    if "deepseek_thinking_trajectory" in record or "gemini_thinking_trajectory" in record:
        return "s1k-1.1"
    if "thinking_trajectories" in record:
        return "s1k"
    raise DataError(f"cannot tell the dataset format from the columns {sorted(record)}")


def _with_prefix(answer: str, prefix: str) -> str:
    if prefix and prefix.strip() not in answer:
        return prefix + answer.strip()
    return answer


def to_conversation(record: dict[str, Any], cfg: DataConfig, fmt: ThinkingFormat) -> Conversation:
    kind = detect_format(record) if cfg.dataset_format == "auto" else cfg.dataset_format
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
    elif kind == "s1k-1.1":
        thinking = record[f"{cfg.trace_source}_thinking_trajectory"]
        answer = record[f"{cfg.trace_source}_attempt"]
    else:
        raise DataError(f"unknown dataset format {kind!r}")
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
    dropped: int = 0
    truncated: int = 0
    fingerprint: str = ""
    lengths: list[int] = field(default_factory=list)

    def summary(self) -> str:
        n = len(self.lengths)
        longest = max(self.lengths, default=0)
        mean = sum(self.lengths) / n if n else 0.0
        return (
            f"{self.total} examples, {len(self.examples)} used; {self.too_long} longer than the block size "
            f"({self.truncated} truncated, cutting their answers; {self.dropped} dropped); "
            f"tokens: mean {mean:.0f}, longest {longest}"
        )


def build_dataset(tokenizer: Any, records: Iterable[dict[str, Any]], cfg: DataConfig) -> SFTData:
    fmt = get_format(cfg.thinking_format)
    data = SFTData(examples=[])
    digest = hashlib.sha256()
    for record in records:
        data.total += 1
        ex = tokenize(tokenizer, to_conversation(record, cfg, fmt))
        n = len(ex.input_ids)
        data.lengths.append(n)
        if n > cfg.block_size:
            data.too_long += 1
            if cfg.drop_long:
                data.dropped += 1
                continue
            data.truncated += 1
            ex = Example(ex.input_ids[: cfg.block_size], ex.labels[: cfg.block_size])
        if int((ex.labels[1:] != IGNORE_INDEX).sum()) == 0:
            data.dropped += 1
            continue
        digest.update(ex.input_ids.numpy().tobytes())
        digest.update(ex.labels.numpy().tobytes())
        data.examples.append(ex)
    if not data.examples:
        raise DataError("no usable training examples")
    data.fingerprint = digest.hexdigest()[:16]
    return data


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

"""Rows to token ids with a loss mask on the assistant turn only.

An example is the base model's chat template applied to the question, with the assistant turn
rendered by the thinking format (budget.formats), so the model learns exactly the delimiters
the server forces at inference. Prompt and assistant turn are tokenized separately: the mask
boundary is then exact, and the assistant tokens are what the model will generate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from budget.formats import ThinkingFormat, get_format
from training.config import DataConfig
from training.data.records import DataError, Records

IGNORE_INDEX = -100
_THINKING_KEYS = ("reasoning_content", "reasoning", "thinking")


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

"""One chat completion choice read the same way from any server: thinking, answer and token counts.

s1serve reports per choice `thinking: {thinking_tokens, answer_tokens, waits_inserted, forced_end}`;
vLLM and DeepSeek-style servers put the thinking in `message.reasoning_content` (or `reasoning`)
and may count it in `usage.completion_tokens_details.reasoning_tokens`; a server with no reasoning
support leaves `<think>...</think>` in the content. Counts the server did not report stay None:
the client has no tokenizer and does not guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Reply:
    thinking: str
    answer: str
    thinking_tokens: int | None
    answer_tokens: int | None
    completion_tokens: float | None  # this choice's share of usage.completion_tokens
    report: dict[str, Any] | None  # s1serve's `thinking` report, as sent
    finish_reason: str | None


def read_replies(response: dict[str, Any]) -> list[Reply]:
    """Every choice of a chat completion response, in index order."""
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    usage = response.get("usage") or {}
    total = usage.get("completion_tokens")
    share = total / len(choices) if isinstance(total, (int, float)) and choices else None
    details = usage.get("completion_tokens_details") or {}
    reasoning_total = details.get("reasoning_tokens") if len(choices) == 1 else None
    return [_read_choice(c, share, reasoning_total) for c in choices]


def _read_choice(choice: dict[str, Any], share: float | None, reasoning_tokens: int | None) -> Reply:
    message = choice.get("message") or {}
    thinking = message.get("reasoning_content") or message.get("reasoning") or ""
    answer = message.get("content") or ""
    if not thinking and THINK_CLOSE in answer:
        head, _, answer = answer.partition(THINK_CLOSE)
        thinking = head.split(THINK_OPEN, 1)[-1]
        answer = answer.lstrip()
    report = choice.get("thinking") if isinstance(choice.get("thinking"), dict) else None
    if report is not None:
        thinking_tokens, answer_tokens = report.get("thinking_tokens"), report.get("answer_tokens")
    elif reasoning_tokens is not None and thinking:
        thinking_tokens = reasoning_tokens
        answer_tokens = int(share - reasoning_tokens) if share is not None else None
    elif not thinking:
        thinking_tokens, answer_tokens = 0, (int(share) if share is not None else None)
    else:
        thinking_tokens, answer_tokens = None, None
    return Reply(thinking, answer, thinking_tokens, answer_tokens, share, report, choice.get("finish_reason"))

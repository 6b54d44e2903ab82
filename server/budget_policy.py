"""Turn the budget fields of a request, in any of their spellings, into one BudgetSpec."""

from __future__ import annotations

from dataclasses import dataclass, field

from budget.spec import DEFAULT_FINAL_ANSWER_TEXT, DEFAULT_WAIT_TEXT, BudgetError, BudgetSpec
from server.protocol import BudgetFields, ThinkingBudget


@dataclass(frozen=True)
class EffortBudgets:
    """Thinking caps for OpenAI's `reasoning_effort`, set by server flags."""

    caps: dict[str, int] = field(default_factory=lambda: {"low": 1024, "medium": 4096, "high": 16384})

    @classmethod
    def parse(cls, text: str) -> EffortBudgets:
        """Parse `low=1024,medium=4096,high=16384`."""
        caps = dict(cls().caps)
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in caps or not value.isdigit():
                raise ValueError(f"bad reasoning-effort budget {item!r}: expected low|medium|high=<tokens>")
            caps[key] = int(value)
        return cls(caps)


def resolve_budget(request: BudgetFields, efforts: EffortBudgets) -> BudgetSpec | None:
    """The request's budget, or None for plain generation.

    Only one spelling may be used per request: mixing them is ambiguous and is rejected,
    naming the fields.
    """
    used = [
        name
        for name in ("thinking_budget", "thinking_token_budget", "thinking", "reasoning_effort")
        if getattr(request, name) is not None
    ]
    if request.max_thinking_tokens is not None or request.min_thinking_tokens is not None:
        used.append("max_thinking_tokens/min_thinking_tokens")
    if len(used) > 1:
        raise BudgetError(used[1], f"send one thinking budget field, not several: got {', '.join(used)}")
    if not used:
        return None

    source = used[0]
    if source == "thinking_budget":
        tb = request.thinking_budget
        if isinstance(tb, int):
            return BudgetSpec(max_tokens=tb)
        return _from_object(tb)
    if source == "thinking_token_budget":
        return BudgetSpec(max_tokens=request.thinking_token_budget)
    if source == "thinking":
        assert request.thinking is not None
        if request.thinking.type == "disabled":
            return BudgetSpec.disabled()
        return BudgetSpec(max_tokens=request.thinking.budget_tokens)
    if source == "reasoning_effort":
        return BudgetSpec(max_tokens=efforts.caps[request.reasoning_effort])
    cap, floor = request.max_thinking_tokens, request.min_thinking_tokens or 0
    if cap is not None and floor > cap:
        raise BudgetError(
            "min_thinking_tokens", f"min_thinking_tokens ({floor}) must not exceed max_thinking_tokens ({cap})"
        )
    return BudgetSpec(max_tokens=cap, min_tokens=floor)


def _from_object(tb: ThinkingBudget) -> BudgetSpec:
    return BudgetSpec(
        max_tokens=tb.max_tokens,
        min_tokens=tb.min_tokens or 0,
        num_ignore=tb.num_ignore or 0,
        wait_text=DEFAULT_WAIT_TEXT if tb.wait_text is None else tb.wait_text,
        final_answer_text=DEFAULT_FINAL_ANSWER_TEXT if tb.final_answer_text is None else tb.final_answer_text,
    )

"""What one HTTP request's engine work did, shared by the gateway and the engine client.

The gateway creates a `RequestRecord` with the request's validated budget and sets it in
`current_record`; vLLM's serving layer calls `generate()` inside the same request context, so
the engine client reads the budget there and fills in the choices, for the `thinking` report,
metrics and the request log.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from budget.rounds import ThinkingReport
from budget.spec import BudgetSpec


@dataclass
class ChoiceRecord:
    """What one choice did, for the `thinking` report, metrics and the request log."""

    index: int
    report: ThinkingReport = field(default_factory=ThinkingReport)
    completion_tokens: int = 0
    finish_reason: str | None = None
    first_token_at: float | None = None
    first_answer_at: float | None = None
    engine_requests: dict[str, int] = field(default_factory=lambda: {"session": 0, "round": 0})
    session_chunks: int = 0


@dataclass
class RequestRecord:
    """One HTTP request's engine work, filled in by the engine client as it runs.

    `budget` is the request's budget as the gateway validated it (None: plain generation).
    """

    start: float = field(default_factory=time.monotonic)
    budget: BudgetSpec | None = None
    prompt_tokens: int = 0
    choices: list[ChoiceRecord] = field(default_factory=list)
    forced: bool = False
    waiting: bool = True  # no output yet
    on_generating: Callable[[RequestRecord], None] | None = None

    def generating(self) -> None:
        """The first output arrived: the request moves from waiting to generating."""
        if self.waiting:
            self.waiting = False
            if self.on_generating is not None:
                self.on_generating(self)


current_record: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("s1serve_record", default=None)

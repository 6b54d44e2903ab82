"""A validated thinking budget, independent of how a request spelled it."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WAIT_TEXT = "Wait"
DEFAULT_FINAL_ANSWER_TEXT = "Final Answer:"


class BudgetError(ValueError):
    """An invalid budget; `param` names the request field at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class BudgetSpec:
    """How long one choice may think.

    max_tokens: cap on thinking tokens (None: no cap). 0 means answer at once.
    min_tokens: end attempts before this many thinking tokens are overridden.
    num_ignore: the first N end attempts are overridden whatever the count.
    wait_text: appended when an attempt is overridden; empty means only suppress the delimiter.
    final_answer_text: appended after the end delimiter when the cap forces the end.
    enabled: False skips thinking entirely (the answer starts at once, nothing forced).
    """

    max_tokens: int | None = None
    min_tokens: int = 0
    num_ignore: int = 0
    wait_text: str = DEFAULT_WAIT_TEXT
    final_answer_text: str = DEFAULT_FINAL_ANSWER_TEXT
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("max_tokens", "min_tokens", "num_ignore"):
            value = getattr(self, name)
            if value is None and name == "max_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise BudgetError(f"thinking_budget.{name}", f"thinking_budget.{name} must be an integer")
            if value < 0:
                raise BudgetError(f"thinking_budget.{name}", f"thinking_budget.{name} must be >= 0, got {value}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise BudgetError(
                "thinking_budget.min_tokens",
                f"thinking_budget.min_tokens ({self.min_tokens}) must not exceed "
                f"thinking_budget.max_tokens ({self.max_tokens})",
            )
        if self.num_ignore and not self.wait_text:
            raise BudgetError(
                "thinking_budget.num_ignore",
                "thinking_budget.num_ignore needs a non-empty thinking_budget.wait_text to insert",
            )

    @classmethod
    def disabled(cls) -> BudgetSpec:
        return cls(max_tokens=0, enabled=False)

    def check_context(self, tokens_left: int) -> None:
        """Reject a cap that can never be reached inside the model's context."""
        if self.max_tokens is not None and self.max_tokens > tokens_left:
            raise BudgetError(
                "thinking_budget.max_tokens",
                f"thinking_budget.max_tokens ({self.max_tokens}) is larger than the "
                f"{tokens_left} tokens left in the model's context after the prompt",
            )

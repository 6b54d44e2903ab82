"""A validated thinking budget, independent of how a request spelled it.

`parse_thinking_budget` is the one strict reader of the `thinking_budget` request value;
`BudgetSpec.to_dict` / `from_dict` carry a spec losslessly through JSON (the server passes it
from the HTTP layer to the engine client that way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

DEFAULT_WAIT_TEXT = "Wait"
DEFAULT_FINAL_ANSWER_TEXT = "Final Answer:"

Profile = Literal["exact", "harness"]
PROFILES: tuple[str, ...] = ("exact", "harness")
DEFAULT_PROFILE: Profile = "exact"
AUTO = "auto"

# Sampling keys a budget may override for its thinking rounds only (s1's `<key>_thinking`),
# with the ranges vLLM accepts: (lower, lower inclusive, upper, upper inclusive, integer only).
SAMPLING_RANGES: dict[str, tuple[float, bool, float, bool, bool]] = {
    "temperature": (0.0, True, math.inf, False, False),
    "top_p": (0.0, False, 1.0, True, False),
    "top_k": (-1, True, math.inf, False, True),
    "min_p": (0.0, True, 1.0, True, False),
    "presence_penalty": (-2.0, True, 2.0, True, False),
    "frequency_penalty": (-2.0, True, 2.0, True, False),
    "repetition_penalty": (0.0, False, math.inf, False, False),
}

# Keys of the `thinking_budget` request object (`enabled` is set by other spellings only).
REQUEST_KEYS: tuple[str, ...] = (
    "max_tokens",
    "min_tokens",
    "num_ignore",
    "wait_text",
    "final_answer_text",
    "sampling",
    "profile",
    "cap_message",
    "grace_tokens",
)


class BudgetError(ValueError):
    """An invalid budget; `param` names the request field at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BudgetSpec:
    """How long one choice may think.

    max_tokens: cap on thinking tokens (None: no cap; "auto": s1's automatic cap, resolved by
        the controller from the request's max tokens and the prompt length). 0 answers at once.
    min_tokens: end attempts before this many thinking tokens are overridden.
    num_ignore: the first N end attempts are overridden whatever the count.
    wait_text: appended when an attempt is overridden; empty means the attempt is only dropped
        (and, below min_tokens, masked).
    final_answer_text: appended after the end delimiter when the cap forces the end.
    enabled: False skips thinking entirely (the answer starts at once, nothing forced).
    sampling: sampling parameters for the thinking rounds only (s1's `<key>_thinking`).
    profile: "exact" (exact caps) or "harness" (token parity with s1's evaluation harness,
        quirks included); None leaves the choice to the server's default.
    cap_message: text inserted at the end of the thinking when the cap forces the end; it
        counts as thinking and fits inside the cap.
    grace_tokens: at the cap, up to this many more thinking tokens to finish the line or
        sentence; the thinking may then exceed max_tokens by at most this many tokens.
    """

    max_tokens: int | Literal["auto"] | None = None
    min_tokens: int = 0
    num_ignore: int = 0
    wait_text: str = DEFAULT_WAIT_TEXT
    final_answer_text: str = DEFAULT_FINAL_ANSWER_TEXT
    enabled: bool = True
    sampling: Mapping[str, float | int] = field(default_factory=dict, hash=False)
    profile: Profile | None = None
    cap_message: str = ""
    grace_tokens: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", MappingProxyType(dict(self.sampling)))
        _validate(self, "thinking_budget")

    @property
    def auto(self) -> bool:
        return self.max_tokens == AUTO

    @classmethod
    def disabled(cls) -> BudgetSpec:
        return cls(max_tokens=0, enabled=False)

    def with_profile(self, default: str) -> BudgetSpec:
        """This spec with the server's default profile filled in when the request named none."""
        if self.profile is not None:
            return self
        if default not in PROFILES:
            raise ValueError(f"unknown budget profile {default!r}; choose one of {', '.join(PROFILES)}")
        return _replace(self, profile=default)

    def check_context(self, tokens_left: int) -> None:
        """Reject a cap that can never be reached inside the model's context."""
        if _is_int(self.max_tokens) and self.max_tokens > tokens_left:  # type: ignore[operator]
            raise BudgetError(
                "thinking_budget.max_tokens",
                f"thinking_budget.max_tokens ({self.max_tokens}) is larger than the "
                f"{tokens_left} tokens left in the model's context after the prompt",
            )

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe; `from_dict` gives back an equal spec."""
        return {
            "max_tokens": self.max_tokens,
            "min_tokens": self.min_tokens,
            "num_ignore": self.num_ignore,
            "wait_text": self.wait_text,
            "final_answer_text": self.final_answer_text,
            "enabled": self.enabled,
            "sampling": dict(self.sampling),
            "profile": self.profile,
            "cap_message": self.cap_message,
            "grace_tokens": self.grace_tokens,
        }

    @classmethod
    def from_dict(cls, data: object, *, param: str = "thinking_budget") -> BudgetSpec:
        """The inverse of `to_dict`, as strict as `parse_thinking_budget` (plus `enabled`)."""
        if not isinstance(data, Mapping):
            raise BudgetError(param, f"{param} must be an object")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BudgetError(f"{param}.enabled", f"{param}.enabled must be a boolean")
        rest = {k: v for k, v in data.items() if k != "enabled"}
        spec = parse_thinking_budget(rest, param=param, allow_null=True)
        return spec if enabled else _replace(spec, enabled=False)


def _replace(spec: BudgetSpec, **changes: Any) -> BudgetSpec:
    values = spec.to_dict()
    values.update(changes)
    return BudgetSpec(**values)


def _validate(spec: BudgetSpec, prefix: str) -> None:
    """Types, ranges and cross-field rules; errors name `<prefix>.<key>`."""

    def fail(key: str, message: str) -> None:
        raise BudgetError(f"{prefix}.{key}", f"{prefix}.{key} {message}")

    if spec.max_tokens is not None and spec.max_tokens != AUTO:
        if not _is_int(spec.max_tokens):
            fail("max_tokens", 'must be an integer or "auto"')
        if spec.max_tokens < 0:  # type: ignore[operator]
            fail("max_tokens", f"must be >= 0, got {spec.max_tokens}")
    for key in ("min_tokens", "num_ignore", "grace_tokens"):
        value = getattr(spec, key)
        if not _is_int(value):
            fail(key, "must be an integer")
        if value < 0:
            fail(key, f"must be >= 0, got {value}")
    for key in ("wait_text", "final_answer_text", "cap_message"):
        if not isinstance(getattr(spec, key), str):
            fail(key, "must be a string")
    if not isinstance(spec.enabled, bool):
        fail("enabled", "must be a boolean")
    if spec.profile is not None and spec.profile not in PROFILES:
        fail("profile", f"must be one of {', '.join(repr(p) for p in PROFILES)}, got {spec.profile!r}")
    for key, value in spec.sampling.items():
        _check_sampling(key, value, f"{prefix}.sampling")
    if _is_int(spec.max_tokens) and spec.min_tokens > spec.max_tokens:  # type: ignore[operator]
        raise BudgetError(
            f"{prefix}.min_tokens",
            f"{prefix}.min_tokens ({spec.min_tokens}) must not exceed {prefix}.max_tokens ({spec.max_tokens})",
        )
    if spec.profile == "harness":
        # The harness has neither; silently dropping them would break the parity promise.
        for key in ("cap_message", "grace_tokens"):
            if getattr(spec, key):
                fail(key, "is not available with profile 'harness'")


def _check_sampling(key: object, value: object, prefix: str) -> None:
    if key not in SAMPLING_RANGES:
        raise BudgetError(
            f"{prefix}.{key}",
            f"{prefix}.{key} is not a sampling key a thinking budget may set; use one of {', '.join(SAMPLING_RANGES)}",
        )
    low, low_in, high, high_in, integer = SAMPLING_RANGES[key]  # type: ignore[index]
    name = f"{prefix}.{key}"
    if integer and not _is_int(value):
        raise BudgetError(name, f"{name} must be an integer")
    if not _is_number(value):
        raise BudgetError(name, f"{name} must be a number")
    too_low = value < low if low_in else value <= low  # type: ignore[operator]
    too_high = value > high if high_in else value >= high  # type: ignore[operator]
    if too_low or too_high:
        lo, hi = ("[" if low_in else "(") + f"{low}", f"{high}" + ("]" if high_in else ")")
        raise BudgetError(name, f"{name} must be in {lo}, {hi}, got {value}")


def parse_thinking_budget(value: object, *, param: str = "thinking_budget", allow_null: bool = False) -> BudgetSpec:
    """The `thinking_budget` request value, an int (the cap) or an object, as a strict spec.

    Unknown keys, wrong types (a bool is not an int, a string is not a number), negative values
    and contradicting fields raise BudgetError naming `<param>.<key>`. An absent key, or with
    `allow_null` a null one, takes its default.
    """
    if _is_int(value):
        if value < 0:  # type: ignore[operator]
            raise BudgetError(param, f"{param} must be >= 0, got {value}")
        return BudgetSpec(max_tokens=value)  # type: ignore[arg-type]
    if value == AUTO:
        return BudgetSpec(max_tokens=AUTO)
    if not isinstance(value, Mapping):
        raise BudgetError(param, f'{param} must be an integer, "auto" or an object')
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if key not in REQUEST_KEYS:
            raise BudgetError(
                f"{param}.{key}", f"{param}.{key} is not a thinking budget field; use {', '.join(REQUEST_KEYS)}"
            )
        if item is None and (allow_null or key == "max_tokens"):
            continue
        fields[key] = item
    name = f"{param}.max_tokens"
    cap = fields.get("max_tokens")
    if isinstance(cap, str) and cap != AUTO:
        raise BudgetError(name, f'{name} must be an integer or "auto", got {cap!r}')
    sampling = fields.get("sampling", {})
    if not isinstance(sampling, Mapping):
        raise BudgetError(f"{param}.sampling", f"{param}.sampling must be an object")
    try:
        return BudgetSpec(**fields)
    except BudgetError as e:
        if param == "thinking_budget":
            raise
        # Report the request's own spelling of the field (e.g. thinking.budget_tokens).
        renamed = e.param.replace("thinking_budget", param, 1)
        raise BudgetError(renamed, e.message.replace("thinking_budget", param)) from None
    except TypeError as e:  # pragma: no cover - keys were checked above
        raise BudgetError(param, str(e)) from None

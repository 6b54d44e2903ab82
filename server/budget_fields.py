"""Request translation: every budget spelling a client may send becomes one BudgetSpec.

The spec travels to the forcing engine client inside vLLM's `vllm_xargs` (as
`s1serve_budget`, a JSON string), so vLLM's serving layer carries it untouched into the
sampling params' `extra_args`. The spellings are removed from the body, so vLLM never sees a
budget field it would apply on its own (its `thinking_token_budget`) or reject (Anthropic's
1024-token minimum).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from budget.spec import BudgetError, BudgetSpec

BUDGET_KEY = "s1serve_budget"
FIT_KEY = "s1serve_budget_fit"  # 1: the cap came from a level and shrinks to fit the context

# reasoning_effort levels as vLLM and OpenAI send them; `none` turns thinking off.
EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
DEFAULT_EFFORT_CAPS: dict[str, int | None] = {
    "minimal": 256,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
    "max": None,  # no cap: the context is the limit
}


@dataclass(frozen=True)
class EffortBudgets:
    """Thinking caps for `reasoning_effort` / `reasoning.effort`, set by a server flag."""

    caps: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_EFFORT_CAPS))

    @classmethod
    def parse(cls, text: str) -> EffortBudgets:
        """Parse `low=1024,medium=4096,high=16384` (`max=none` for no cap)."""
        caps = dict(DEFAULT_EFFORT_CAPS)
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in caps or not (value.isdigit() or value == "none"):
                levels = "|".join(caps)
                raise ValueError(f"bad reasoning-effort budget {item!r}: expected {levels}=<tokens or none>")
            caps[key] = None if value == "none" else int(value)
        return cls(caps)

    def spec(self, level: str) -> BudgetSpec:
        if level == "none":
            return BudgetSpec.disabled()
        return BudgetSpec(max_tokens=self.caps[level])


# The body keys each endpoint may carry a budget in (besides vllm_xargs.s1serve_budget).
FLAT_FIELDS = ("thinking_budget", "max_thinking_tokens", "min_thinking_tokens", "thinking_token_budget")


def _int_field(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetError(name, f"{name} must be an integer")
    if value < 0:
        raise BudgetError(name, f"{name} must be >= 0, got {value}")
    return value


def _thinking_budget(value: Any) -> BudgetSpec:
    from budget.spec import parse_thinking_budget

    return parse_thinking_budget(value)


def _anthropic_thinking(value: Any, param: str) -> BudgetSpec:
    if not isinstance(value, Mapping):
        raise BudgetError(param, f"{param} must be an object with a type")
    kind = value.get("type")
    if kind == "disabled":
        return BudgetSpec.disabled()
    if kind == "enabled":
        budget = value.get("budget_tokens")
        name = f"{param}.budget_tokens"
        if budget is None:
            raise BudgetError(name, f"{name} is required when {param}.type is 'enabled'")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise BudgetError(name, f"{name} must be a non-negative integer")
        return BudgetSpec(max_tokens=budget)
    if kind == "adaptive":
        return BudgetSpec()
    raise BudgetError(f"{param}.type", f"{param}.type must be 'enabled', 'disabled' or 'adaptive', got {kind!r}")


@dataclass(frozen=True)
class RequestBudget:
    """A request's budget; `fit_to_context` when it came from a level rather than a number."""

    spec: BudgetSpec
    fit_to_context: bool = False


def resolve_budget(body: MutableMapping[str, Any], endpoint: str, efforts: EffortBudgets) -> RequestBudget | None:
    """Take the budget spellings out of a request body and return its budget (None: no budget).

    One spelling per request: mixing them is ambiguous and is rejected, naming the fields.
    `reasoning_effort` stays in the body as well, since chat templates read it.
    """
    found: list[tuple[str, Any]] = []

    def take(name: str, keep: bool = False) -> None:
        if name in body and body[name] is not None:
            found.append((name, body[name] if keep else body.pop(name)))
        elif name in body:
            body.pop(name)

    take("thinking_budget")
    flat = {name: body.pop(name) for name in ("max_thinking_tokens", "min_thinking_tokens") if name in body}
    if any(v is not None for v in flat.values()):
        found.append(("max_thinking_tokens/min_thinking_tokens", flat))
    take("thinking_token_budget")
    if endpoint == "messages":
        thinking = body.get("thinking")
        if thinking is not None:
            found.append(("thinking", thinking))
            if not (isinstance(thinking, Mapping) and thinking.get("type") == "disabled"):
                body.pop("thinking")  # vLLM would apply its own budget (and its 1024-token minimum)
    else:
        take("thinking")
    effort = body.get("reasoning_effort")
    if effort is not None:
        found.append(("reasoning_effort", effort))
    reasoning = body.get("reasoning") if endpoint == "responses" else None
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        found.append(("reasoning.effort", reasoning["effort"]))
    xargs = body.get("vllm_xargs")
    if isinstance(xargs, Mapping) and BUDGET_KEY in xargs:
        found.append((f"vllm_xargs.{BUDGET_KEY}", xargs[BUDGET_KEY]))

    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise BudgetError(found[1][0], f"send one thinking budget field, not several: got {names}")
    if not found:
        return None
    source, value = found[0]
    if source in ("reasoning_effort", "reasoning.effort"):
        if value not in EFFORT_LEVELS:
            raise BudgetError(source, f"{source} must be one of {', '.join(EFFORT_LEVELS)}, got {value!r}")
        return RequestBudget(efforts.spec(value), fit_to_context=True)
    return RequestBudget(_spec_of(source, value))


def _spec_of(source: str, value: Any) -> BudgetSpec:
    if source == "thinking_budget":
        return _thinking_budget(value)
    if source == "max_thinking_tokens/min_thinking_tokens":
        cap = _int_field(value, "max_thinking_tokens")
        floor = _int_field(value, "min_thinking_tokens") or 0
        if cap is not None and floor > cap:
            raise BudgetError(
                "min_thinking_tokens", f"min_thinking_tokens ({floor}) must not exceed max_thinking_tokens ({cap})"
            )
        return BudgetSpec(max_tokens=cap, min_tokens=floor)
    if source == "thinking_token_budget":
        return BudgetSpec(max_tokens=_int_field({source: value}, source))
    if source == "thinking":
        return _anthropic_thinking(value, "thinking")
    return spec_from_json(value, source)


def spec_to_json(spec: BudgetSpec) -> str:
    return json.dumps(spec.to_dict(), separators=(",", ":"))


def spec_from_json(value: Any, param: str = f"vllm_xargs.{BUDGET_KEY}") -> BudgetSpec:
    if not isinstance(value, str):
        raise BudgetError(param, f"{param} must be a JSON string")
    try:
        data = json.loads(value)
    except ValueError:
        raise BudgetError(param, f"{param} is not valid JSON") from None
    return BudgetSpec.from_dict(data)


def fits_context(extra: Mapping[str, Any] | None) -> bool:
    return bool(extra and extra.get(FIT_KEY))


def spec_from_extra_args(extra: Mapping[str, Any] | None) -> BudgetSpec | None:
    """The spec the request translation put into the sampling params, if any."""
    if not extra or BUDGET_KEY not in extra:
        return None
    return spec_from_json(extra[BUDGET_KEY])

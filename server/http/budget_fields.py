"""Request translation: every budget spelling a client may send becomes one BudgetSpec.

The gateway takes the spellings out of the body, so vLLM never sees a budget field it would
apply on its own (its `thinking_token_budget`) or reject (Anthropic's 1024-token minimum), and
hands the spec to the engine client through the request's record. Each spelling is read
here and validated once, by the spec's construction, with every value named as the client
sent it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from budget.early_exit import EarlyExit
from budget.spec import REQUEST_FIELD, BudgetError, BudgetSpec, budget_from, parse_thinking_budget
from server.engine.xargs import BUDGET_KEY, FORCED_KEY, spec_from_json

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
# The body fields a budget may be spelled in (besides vllm_xargs.s1serve_budget), as published.
FLAT_FIELDS = ("thinking_budget", "max_thinking_tokens", "min_thinking_tokens", "thinking_token_budget")


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

    def spec(self, level: str, source: str = "reasoning_effort", default_profile: str | None = None) -> BudgetSpec:
        """A level's budget; its cap shrinks to fit the context (a level, not a number)."""
        names = {"max_tokens": source}
        if level == "none":
            return budget_from({"max_tokens": 0, "enabled": False}, names, default_profile=default_profile)
        values = {"max_tokens": self.caps[level], "fit_to_context": True}
        return budget_from(values, names, default_profile=default_profile)


def _integer(value: Any, name: str) -> int | None:
    """A spelling that takes integers only (the spec's cap also takes "auto")."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BudgetError(name, f"{name} must be an integer")
    return value


def _anthropic_thinking(value: Any, param: str, default_profile: str | None) -> BudgetSpec:
    if not isinstance(value, Mapping):
        raise BudgetError(param, f"{param} must be an object with a type")
    kind = value.get("type")
    name = f"{param}.budget_tokens"
    if kind == "disabled":
        return budget_from({"max_tokens": 0, "enabled": False}, {"max_tokens": name}, default_profile=default_profile)
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if budget is None:
            raise BudgetError(name, f"{name} is required when {param}.type is 'enabled'")
        _integer(budget, name)
        return budget_from({"max_tokens": budget}, {"max_tokens": name}, default_profile=default_profile)
    if kind == "adaptive":
        return budget_from({}, {}, default_profile=default_profile)
    raise BudgetError(f"{param}.type", f"{param}.type must be 'enabled', 'disabled' or 'adaptive', got {kind!r}")


def resolve_budget(
    body: MutableMapping[str, Any],
    endpoint: str,
    efforts: EffortBudgets,
    default_profile: str | None = None,
    *,
    mark: bool = True,
    default_early_exit: EarlyExit | None = None,
) -> BudgetSpec | None:
    """Take the budget spellings out of a request body and return its budget (None: no budget).

    One spelling per request: mixing them is ambiguous and is rejected, naming the fields.
    `reasoning_effort` stays in the body as well, since chat templates read it. With `mark`, a
    budgeted request's `vllm_xargs` gets the marker the reasoning parser reads.
    `default_early_exit` (the server's --early-exit) applies to a budget that names no
    early_exit, and makes a generation request without a budget one of early exit alone.
    """
    found: list[tuple[str, Any]] = []

    def take(name: str) -> None:
        value = body.pop(name, None)
        if value is not None:
            found.append((name, value))

    take(REQUEST_FIELD)
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
    if not found and (default_early_exit is None or not mark):
        return None
    spec = (
        _spec_of(*found[0], efforts, default_profile) if found else budget_from({}, {}, default_profile=default_profile)
    )
    spec = spec.with_early_exit(default_early_exit)
    if isinstance(xargs, Mapping) and BUDGET_KEY in xargs:
        body["vllm_xargs"] = xargs = {k: v for k, v in xargs.items() if k != BUDGET_KEY}
    if mark:
        body["vllm_xargs"] = {**(xargs if isinstance(xargs, Mapping) else {}), FORCED_KEY: 1}
    return spec


def _spec_of(source: str, value: Any, efforts: EffortBudgets, default_profile: str | None) -> BudgetSpec:
    if source in ("reasoning_effort", "reasoning.effort"):
        if value not in EFFORT_LEVELS:
            raise BudgetError(source, f"{source} must be one of {', '.join(EFFORT_LEVELS)}, got {value!r}")
        return efforts.spec(value, source, default_profile)
    if source == REQUEST_FIELD:
        return parse_thinking_budget(value, default_profile=default_profile)
    if source == "max_thinking_tokens/min_thinking_tokens":
        values = {
            "max_tokens": _integer(value.get("max_thinking_tokens"), "max_thinking_tokens"),
            "min_tokens": _integer(value.get("min_thinking_tokens"), "min_thinking_tokens") or 0,
        }
        names = {"max_tokens": "max_thinking_tokens", "min_tokens": "min_thinking_tokens"}
        return budget_from(values, names, default_profile=default_profile)
    if source == "thinking_token_budget":
        cap = _integer(value, source)
        return budget_from({"max_tokens": cap}, {"max_tokens": source}, default_profile=default_profile)
    if source == "thinking":
        return _anthropic_thinking(value, "thinking", default_profile)
    return spec_from_json(value, source, default_profile)

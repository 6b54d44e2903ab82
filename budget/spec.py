"""A validated thinking budget, independent of how a request spelled it.

`BudgetSpec` is the one declaration of the budget: each field carries its `Key` (kind, default,
description), from which come the keys a `thinking_budget` object accepts (`REQUEST_KEYS`),
their validation, and the JSON schema the server publishes (`budget.schema`). Adding a key is
the field here, its behaviour in the controller, and its line in docs/api.md.

A spec remembers the client field each value came from (`names`), so an error found at any
point (here, against the context, or in the controller) names what the client sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal

from budget.early_exit import MAX_PROBE_TOKENS, MIN_EVERY, EarlyExit

DEFAULT_WAIT_TEXT = "Wait"
DEFAULT_FINAL_ANSWER_TEXT = "Final Answer:"

Profile = Literal["exact", "harness"]
PROFILES: tuple[str, ...] = ("exact", "harness")
DEFAULT_PROFILE: Profile = "exact"
AUTO = "auto"
REQUEST_FIELD = "thinking_budget"  # the request field whose object holds REQUEST_KEYS

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

KeyKind = Literal["cap", "count", "text", "profile", "sampling", "flag", "early_exit"]
# early_exit's object keys: (minimum, maximum) for integers, None for the probe text.
EARLY_EXIT_KEYS: dict[str, tuple[int, int] | None] = {
    "every": (MIN_EVERY, 1 << 30),
    "agree": (1, 1 << 10),
    "probe_text": None,
    "probe_tokens": (1, MAX_PROBE_TOKENS),
}


@dataclass(frozen=True)
class Key:
    """The declaration of one budget key; its kind fixes the type, the range and the schema.

    cap: a non-negative integer, "auto" or null; count: a non-negative integer; text: a
    string; profile: one of PROFILES or null; sampling: an object of SAMPLING_RANGES keys;
    flag: a boolean; early_exit: true, false or an object of EARLY_EXIT_KEYS. `request`: a
    key of the `thinking_budget` object (flags are set by the other spellings and by the
    server only).
    """

    kind: KeyKind
    description: str
    request: bool = True


def _key(kind: KeyKind, default: Any, description: str, *, request: bool = True) -> Any:
    meta = {"key": Key(kind, description, request)}
    if isinstance(default, dict):
        return field(default_factory=dict, hash=False, metadata=meta)
    return field(default=default, metadata=meta)


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
    """How long one choice may think. Constructing one validates it, once."""

    max_tokens: int | Literal["auto"] | None = _key(
        "cap", None, 'cap on thinking tokens; 0 answers at once; "auto": s1\'s automatic cap; null: no cap'
    )
    min_tokens: int = _key("count", 0, "end attempts before this many thinking tokens are overridden")
    num_ignore: int = _key("count", 0, "the first N end attempts are overridden, whatever the count")
    wait_text: str = _key("text", DEFAULT_WAIT_TEXT, "appended to an overridden end")
    final_answer_text: str = _key(
        "text", DEFAULT_FINAL_ANSWER_TEXT, "appended after the end delimiter when the cap forces the end"
    )
    until: str = _key(
        "text",
        "",
        "a text that ends the thinking when the model writes it, in place of the format's end trigger "
        "(s1's until_thinking); empty: the trigger",
    )
    sampling: Mapping[str, float | int] = _key(
        "sampling", {}, "sampling parameters for the thinking rounds only (s1's `<key>_thinking`)"
    )
    profile: Profile | None = _key(
        "profile", None, "exact caps, or token-for-token s1 harness parity; null: the server's --budget-profile"
    )
    cap_message: str = _key("text", "", "inserted in the thinking before a forced end; it fits inside the cap")
    grace_tokens: int = _key("count", 0, "at the cap, thinking tokens allowed past it to finish the sentence")
    early_exit: EarlyExit | bool | None = _key(
        "early_exit",
        None,
        "end the thinking once `agree` answer probes, one every `every` thinking tokens, agree; "
        "true: the defaults; null: the server's --early-exit",
    )
    enabled: bool = _key("flag", True, "false skips thinking entirely (the answer starts at once)", request=False)
    fit_to_context: bool = _key(
        "flag", False, "the cap came from a level, not a number: it shrinks to fit the context", request=False
    )
    # The client's name of each key's value (default: thinking_budget.<key>); not part of equality.
    names: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # Whether num_ignore was given, 0 included (any N > 0 sets it): the harness runs
    # `thinking_n_ignore=0` unlike no thinking_n_ignore (min_tokens=1, the min budget dropped).
    num_ignore_set: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", MappingProxyType(dict(self.sampling)))
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))
        _validate(self)
        if self.num_ignore:
            object.__setattr__(self, "num_ignore_set", True)

    @property
    def auto(self) -> bool:
        return self.max_tokens == AUTO

    @property
    def probing(self) -> EarlyExit | None:
        """The early exit in force: None when off, not named, or without thinking."""
        return self.early_exit if isinstance(self.early_exit, EarlyExit) and self.enabled else None

    def with_early_exit(self, default: EarlyExit | None) -> BudgetSpec:
        """This spec with the server's early exit filled in when the request named none (the
        harness profile has none: the server's default does not apply to it)."""
        if default is None or self.early_exit is not None or self.profile == "harness":
            return self
        return replace(self, early_exit=default)

    def param(self, key: str) -> str:
        """The request field the client sent this key's value in."""
        return self.names.get(key) or f"{REQUEST_FIELD}.{key}"

    @classmethod
    def disabled(cls, names: Mapping[str, str] | None = None, profile: str | None = None) -> BudgetSpec:
        return cls(max_tokens=0, enabled=False, names=names or {}, profile=profile)  # type: ignore[arg-type]

    def with_profile(self, default: str) -> BudgetSpec:
        """This spec with the server's default profile filled in when the request named none."""
        if self.profile is not None:
            return self
        if default not in PROFILES:
            raise ValueError(f"unknown budget profile {default!r}; choose one of {', '.join(PROFILES)}")
        return replace(self, profile=default)

    def check_context(self, tokens_left: int) -> None:
        """Reject a cap that can never be reached inside the model's context."""
        if _is_int(self.max_tokens) and self.max_tokens > tokens_left:  # type: ignore[operator]
            name = self.param("max_tokens")
            raise BudgetError(
                name,
                f"{name} ({self.max_tokens}) is larger than the {tokens_left} tokens left in the model's context "
                "after the prompt",
            )

    def to_dict(self) -> dict[str, Any]:
        """Every declared field, JSON-safe; `from_dict` gives back an equal spec."""
        out = {f.name: getattr(self, f.name) for f in declared()}
        out["sampling"] = dict(self.sampling)
        if not self.num_ignore_set:
            out["num_ignore"] = None  # absent, which `num_ignore: 0` is not
        if isinstance(self.early_exit, EarlyExit):
            out["early_exit"] = self.early_exit.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: object, *, param: str = REQUEST_FIELD, default_profile: str | None = None) -> BudgetSpec:
        """The inverse of `to_dict`, as strict as `parse_thinking_budget` (plus the flags)."""
        if not isinstance(data, Mapping):
            raise BudgetError(param, f"{param} must be an object")
        flags = {f.name for f in declared() if not f.metadata["key"].request}
        rest = {k: v for k, v in data.items() if k not in flags}
        values = _object_fields(rest, param, allow_null=True)
        for name in flags & set(data):
            if data[name] is not None:
                values[name] = data[name]
        return budget_from(values, {f.name: f"{param}.{f.name}" for f in declared()}, default_profile=default_profile)


def declared() -> tuple[Any, ...]:
    """The declared fields of BudgetSpec, in order (`names` is bookkeeping, not a key)."""
    return tuple(f for f in fields(BudgetSpec) if "key" in f.metadata)


REQUEST_KEYS: tuple[str, ...] = tuple(f.name for f in declared() if f.metadata["key"].request)


def _validate(spec: BudgetSpec) -> None:
    """Types, ranges and cross-field rules, from each field's declared kind."""

    def fail(key: str, message: str) -> None:
        raise BudgetError(spec.param(key), f"{spec.param(key)} {message}")

    for f in declared():
        kind, value = f.metadata["key"].kind, getattr(spec, f.name)
        if kind == "cap" and value is not None and value != AUTO:
            if not _is_int(value):
                fail(f.name, 'must be an integer or "auto"')
            if value < 0:
                fail(f.name, f"must be >= 0, got {value}")
        elif kind == "count":
            if not _is_int(value):
                fail(f.name, "must be an integer")
            if value < 0:
                fail(f.name, f"must be >= 0, got {value}")
        elif kind == "text" and not isinstance(value, str):
            fail(f.name, "must be a string")
        elif kind == "flag" and not isinstance(value, bool):
            fail(f.name, "must be a boolean")
        elif kind == "profile" and value is not None and value not in PROFILES:
            fail(f.name, f"must be one of {', '.join(repr(p) for p in PROFILES)}, got {value!r}")
        elif kind == "sampling":
            for key, item in value.items():
                _check_sampling(key, item, spec.param(f.name))
        elif kind == "early_exit" and value is not None and not isinstance(value, bool):
            if not isinstance(value, EarlyExit):
                fail(f.name, "must be true, false or an object")
            _check_early_exit(value.to_dict(), spec.param(f.name))
    if _is_int(spec.max_tokens) and spec.min_tokens > spec.max_tokens:  # type: ignore[operator]
        low, high = spec.param("min_tokens"), spec.param("max_tokens")
        raise BudgetError(low, f"{low} ({spec.min_tokens}) must not exceed {high} ({spec.max_tokens})")
    if spec.profile == "harness":
        # The harness has none of these; silently dropping them would break the parity promise.
        for key in ("cap_message", "grace_tokens", "early_exit"):
            if getattr(spec, key):
                fail(key, "is not available with profile 'harness'")
        if spec.final_answer_text != DEFAULT_FINAL_ANSWER_TEXT:
            # The harness's forced end and its "auto" arithmetic are fixed to this text.
            fail(
                "final_answer_text",
                f"is not available with profile 'harness', which always writes {DEFAULT_FINAL_ANSWER_TEXT!r}",
            )


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


def _check_early_exit(value: Mapping[str, Any], prefix: str) -> None:
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if key not in EARLY_EXIT_KEYS:
            raise BudgetError(name, f"{name} is not an early_exit field; use {', '.join(EARLY_EXIT_KEYS)}")
        bounds = EARLY_EXIT_KEYS[key]
        if bounds is None:
            if item is not None and (not isinstance(item, str) or not item):
                raise BudgetError(name, f"{name} must be a non-empty string")
        elif not _is_int(item):
            raise BudgetError(name, f"{name} must be an integer")
        elif not bounds[0] <= item <= bounds[1]:
            raise BudgetError(name, f"{name} must be in [{bounds[0]}, {bounds[1]}], got {item}")


def _early_exit_value(value: Any, param: str) -> EarlyExit | bool | None:
    """A request's `early_exit`: true (the defaults), false, null, or an object."""
    if value is None or isinstance(value, (bool, EarlyExit)):
        return EarlyExit() if value is True else value
    if not isinstance(value, Mapping):
        raise BudgetError(param, f"{param} must be true, false or an object")
    _check_early_exit(value, param)
    return EarlyExit(**{k: v for k, v in value.items() if v is not None})


def _object_fields(value: Mapping[str, Any], param: str, *, allow_null: bool) -> dict[str, Any]:
    """The keys of a `thinking_budget` object; unknown keys name themselves."""
    values: dict[str, Any] = {}
    for key, item in value.items():
        if key not in REQUEST_KEYS:
            raise BudgetError(
                f"{param}.{key}", f"{param}.{key} is not a thinking budget field; use {', '.join(REQUEST_KEYS)}"
            )
        if item is None and (allow_null or key == "max_tokens"):
            continue
        values[key] = item
    cap = values.get("max_tokens")
    if isinstance(cap, str) and cap != AUTO:
        name = f"{param}.max_tokens"
        raise BudgetError(name, f'{name} must be an integer or "auto", got {cap!r}')
    if not isinstance(values.get("sampling", {}), Mapping):
        raise BudgetError(f"{param}.sampling", f"{param}.sampling must be an object")
    return values


def budget_from(values: dict[str, Any], names: Mapping[str, str], *, default_profile: str | None = None) -> BudgetSpec:
    """A spec from values some spelling read, each named as the client sent it: the one
    construction (and so the one validation) of a request's spec."""
    if default_profile is not None and values.get("profile") is None:
        if default_profile not in PROFILES:
            raise ValueError(f"unknown budget profile {default_profile!r}; choose one of {', '.join(PROFILES)}")
        values = {**values, "profile": default_profile}
    if "num_ignore" in values:
        values = {**values, "num_ignore_set": True}
    if "early_exit" in values:
        name = names.get("early_exit") or f"{REQUEST_FIELD}.early_exit"
        values = {**values, "early_exit": _early_exit_value(values["early_exit"], name)}
    return BudgetSpec(**values, names=names)


def parse_thinking_budget(
    value: object, *, param: str = REQUEST_FIELD, allow_null: bool = False, default_profile: str | None = None
) -> BudgetSpec:
    """The `thinking_budget` request value, an int (the cap) or an object, as a strict spec.

    Unknown keys, wrong types (a bool is not an int, a string is not a number), negative values
    and contradicting fields raise BudgetError naming `<param>.<key>`. An absent key, or with
    `allow_null` a null one, takes its default; `default_profile` fills a missing profile.
    """
    if _is_int(value) or value == AUTO:
        return budget_from({"max_tokens": value}, {"max_tokens": param}, default_profile=default_profile)
    if not isinstance(value, Mapping):
        raise BudgetError(param, f'{param} must be an integer, "auto" or an object')
    values = _object_fields(value, param, allow_null=allow_null)
    return budget_from(values, {key: f"{param}.{key}" for key in REQUEST_KEYS}, default_profile=default_profile)

"""The JSON schema of `thinking_budget`, derived from BudgetSpec's declaration.

Each key's schema follows from its declared kind, default and description, so the published
document cannot drift from what `budget.spec` accepts.
"""

from __future__ import annotations

import math
from typing import Any

from budget.early_exit import EarlyExit
from budget.spec import AUTO, EARLY_EXIT_KEYS, PROFILES, SAMPLING_RANGES, declared

NON_NEGATIVE: dict[str, Any] = {"type": "integer", "minimum": 0}


def sampling_schema(description: str = "") -> dict[str, Any]:
    """`thinking_budget.sampling`: the keys and ranges `SAMPLING_RANGES` accepts."""
    properties: dict[str, Any] = {}
    for key, (low, low_in, high, high_in, integer) in SAMPLING_RANGES.items():
        prop: dict[str, Any] = {"type": "integer" if integer else "number"}
        if math.isfinite(low):
            prop["minimum" if low_in else "exclusiveMinimum"] = low
        if math.isfinite(high):
            prop["maximum" if high_in else "exclusiveMaximum"] = high
        properties[key] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False, "description": description}


def early_exit_schema(description: str) -> dict[str, Any]:
    """`thinking_budget.early_exit`: a boolean, or the object of EARLY_EXIT_KEYS with their ranges."""
    defaults = EarlyExit().to_dict()
    properties: dict[str, Any] = {}
    for key, bounds in EARLY_EXIT_KEYS.items():
        if bounds is None:
            properties[key] = {"type": ["string", "null"], "minLength": 1, "default": defaults[key]}
        else:
            properties[key] = {"type": "integer", "minimum": bounds[0], "maximum": bounds[1], "default": defaults[key]}
    obj = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"anyOf": [{"type": "boolean"}, obj, {"type": "null"}], "description": description}


def key_schema(name: str) -> dict[str, Any]:
    """One declared key's schema, from its kind."""
    f = next(f for f in declared() if f.name == name)
    key = f.metadata["key"]
    if key.kind == "cap":
        return {
            "anyOf": [NON_NEGATIVE, {"type": "string", "enum": [AUTO]}, {"type": "null"}],
            "description": key.description,
        }
    if key.kind == "count":
        return {**NON_NEGATIVE, "default": f.default, "description": key.description}
    if key.kind == "text":
        return {"type": "string", "default": f.default, "description": key.description}
    if key.kind == "flag":
        return {"type": "boolean", "default": f.default, "description": key.description}
    if key.kind == "profile":
        return {"anyOf": [{"type": "string", "enum": list(PROFILES)}, {"type": "null"}], "description": key.description}
    if key.kind == "early_exit":
        return early_exit_schema(key.description)
    return sampling_schema(key.description)


def thinking_budget_schema() -> dict[str, Any]:
    """`thinking_budget`: a cap, "auto", or the object of the request keys; null is no budget."""
    budget_object = {
        "type": "object",
        "properties": {f.name: key_schema(f.name) for f in declared() if f.metadata["key"].request},
        "additionalProperties": False,
        "description": "min_tokens must not exceed an integer max_tokens; profile 'harness' takes no cap_message, "
        "grace_tokens, early_exit or final_answer_text other than the default",
    }
    return {
        "anyOf": [NON_NEGATIVE, {"type": "string", "enum": [AUTO]}, budget_object, {"type": "null"}],
        "title": "Thinking budget",
        "description": 's1serve\'s thinking budget: a cap on thinking tokens, "auto", or an object. One budget '
        "spelling per request: several are a 400 naming the field.",
    }

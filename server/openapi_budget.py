"""s1serve's budget fields and `thinking` report in the OpenAPI document.

vLLM's request models do not know the budget spellings s1serve reads (they are taken out of
the body before vLLM parses it), so its document lacks them; its generation routes have no
response schema at all. This adds both, built from the budget code's own constants, so a
client generator (or a fuzzer) sees what the server accepts and what it answers.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from budget.spec import (
    AUTO,
    DEFAULT_FINAL_ANSWER_TEXT,
    DEFAULT_WAIT_TEXT,
    PROFILES,
    REQUEST_KEYS,
    SAMPLING_RANGES,
)
from server.budget_fields import BUDGET_KEY, EFFORT_LEVELS
from server.budget_middleware import TRANSLATED_PATHS

REPORT_SCHEMA = "ThinkingReport"
BUDGET_SCHEMA = "ThinkingBudget"
REF = "#/components/schemas/"

NON_NEGATIVE = {"type": "integer", "minimum": 0}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def sampling_schema() -> dict[str, Any]:
    """`thinking_budget.sampling`: the keys and ranges `budget.spec.SAMPLING_RANGES` accepts."""
    properties: dict[str, Any] = {}
    for key, (low, low_in, high, high_in, integer) in SAMPLING_RANGES.items():
        prop: dict[str, Any] = {"type": "integer" if integer else "number"}
        if math.isfinite(low):
            prop["minimum" if low_in else "exclusiveMinimum"] = low
        if math.isfinite(high):
            prop["maximum" if high_in else "exclusiveMaximum"] = high
        properties[key] = prop
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": "sampling parameters for the thinking rounds only (s1's `<key>_thinking`)",
    }


# The type of each key of the `thinking_budget` object (budget.spec.REQUEST_KEYS).
BUDGET_KEY_SCHEMAS: dict[str, dict[str, Any]] = {
    "max_tokens": {
        "anyOf": [NON_NEGATIVE, {"type": "string", "enum": [AUTO]}, {"type": "null"}],
        "description": 'cap on thinking tokens; 0 answers at once; "auto": s1\'s automatic cap; null: no cap',
    },
    "min_tokens": {**NON_NEGATIVE, "default": 0, "description": "end attempts before this many are overridden"},
    "num_ignore": {**NON_NEGATIVE, "default": 0, "description": "the first N end attempts are overridden"},
    "wait_text": {"type": "string", "default": DEFAULT_WAIT_TEXT, "description": "appended to an overridden end"},
    "final_answer_text": {
        "type": "string",
        "default": DEFAULT_FINAL_ANSWER_TEXT,
        "description": "appended after the end delimiter when the cap forces the end",
    },
    "sampling": sampling_schema(),
    "profile": {
        "anyOf": [{"type": "string", "enum": list(PROFILES)}, {"type": "null"}],
        "description": "exact caps, or token-for-token s1 harness parity; null: the server's --budget-profile",
    },
    "cap_message": {"type": "string", "default": "", "description": "inserted in the thinking before a forced end"},
    "grace_tokens": {**NON_NEGATIVE, "default": 0, "description": "thinking tokens allowed past the cap"},
}


def thinking_budget_schema() -> dict[str, Any]:
    """`thinking_budget`: a cap, "auto", or the object with `REQUEST_KEYS`; null is no budget."""
    budget_object = {
        "type": "object",
        "properties": {key: BUDGET_KEY_SCHEMAS.get(key, {}) for key in REQUEST_KEYS},
        "additionalProperties": False,
        "description": "min_tokens must not exceed an integer max_tokens; profile 'harness' takes no cap_message "
        "or grace_tokens",
    }
    return {
        "anyOf": [NON_NEGATIVE, {"type": "string", "enum": [AUTO]}, budget_object, {"type": "null"}],
        "title": "Thinking budget",
        "description": 's1serve\'s thinking budget: a cap on thinking tokens, "auto", or an object. One budget '
        "spelling per request: several are a 400 naming the field.",
    }


def anthropic_thinking_schema() -> dict[str, Any]:
    """Anthropic's `thinking`, as s1serve reads it: any non-negative `budget_tokens`."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"type": {"const": "enabled"}, "budget_tokens": NON_NEGATIVE},
                "required": ["type", "budget_tokens"],
            },
            {"type": "object", "properties": {"type": {"const": "disabled"}}, "required": ["type"]},
            {"type": "object", "properties": {"type": {"const": "adaptive"}}, "required": ["type"]},
            {"type": "null"},
        ],
        "description": "Anthropic's thinking budget (any size); disabled closes the thinking at once",
    }


def budget_properties() -> dict[str, dict[str, Any]]:
    """The body fields `server.budget_fields.resolve_budget` reads, on every generation route."""
    return {
        "thinking_budget": {"$ref": REF + BUDGET_SCHEMA},
        "max_thinking_tokens": {**_nullable(NON_NEGATIVE), "description": "flat spelling of thinking_budget's cap"},
        "min_thinking_tokens": {**_nullable(NON_NEGATIVE), "description": "flat spelling of thinking_budget's floor"},
        "thinking_token_budget": {**_nullable(NON_NEGATIVE), "description": "vLLM's spelling of the cap"},
        "thinking": anthropic_thinking_schema(),
        "reasoning_effort": {
            **_nullable({"type": "string", "enum": list(EFFORT_LEVELS)}),
            "description": "a thinking cap set by the server's --reasoning-effort-budgets; none turns thinking off",
        },
    }


# Keys of the `thinking` report and their types (budget.controller.ThinkingReport.public);
# the first four are always present, the rest only when their feature acted.
REPORT_REQUIRED = ("thinking_tokens", "answer_tokens", "waits_inserted", "forced_end")
REPORT_PROPERTIES: dict[str, dict[str, Any]] = {
    "thinking_tokens": {**NON_NEGATIVE, "description": "tokens inside the thinking, generated or inserted"},
    "answer_tokens": {**NON_NEGATIVE, "description": "tokens of the answer"},
    "waits_inserted": {**NON_NEGATIVE, "description": "times the wait text was inserted"},
    "forced_end": {"type": "boolean", "description": "the cap ended the thinking"},
    "ends_ignored": {**NON_NEGATIVE, "description": "end attempts overridden (when not all inserted wait text)"},
    "grace_tokens": {**NON_NEGATIVE, "description": "thinking tokens generated past the cap"},
    "cap_message_tokens": {**NON_NEGATIVE, "description": "tokens of the inserted cap message"},
    "profile": {"type": "string", "enum": list(PROFILES), "description": "present when not 'exact'"},
    "cut_tokens": {**NON_NEGATIVE, "description": "harness profile: thinking cut away past the cap"},
}


def thinking_report_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": REPORT_PROPERTIES,
        "required": list(REPORT_REQUIRED),
        "additionalProperties": False,
        "title": "Thinking report",
        "description": "what the thinking budget did for one choice",
    }


REPORT_REF = {"$ref": REF + REPORT_SCHEMA}
_USAGE_DETAILS = {"anyOf": [{"type": "object", "properties": {"reasoning_tokens": NON_NEGATIVE}}, {"type": "null"}]}

# Where each generation route's JSON answer carries the report (docs/api.md).
RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "type": "object",
        "properties": {
            "choices": {"type": "array", "items": {"type": "object", "properties": {"thinking": REPORT_REF}}},
            "usage": _nullable({"type": "object", "properties": {"completion_tokens_details": _USAGE_DETAILS}}),
        },
    },
    "/v1/completions": {
        "type": "object",
        "properties": {
            "choices": {"type": "array", "items": {"type": "object", "properties": {"thinking": REPORT_REF}}},
            "usage": _nullable({"type": "object", "properties": {"completion_tokens_details": _USAGE_DETAILS}}),
        },
    },
    "/v1/responses": {
        "type": "object",
        "properties": {
            "thinking": REPORT_REF,
            "usage": _nullable({"type": "object", "properties": {"output_tokens_details": _USAGE_DETAILS}}),
        },
    },
    "/v1/messages": {"type": "object", "properties": {"thinking": REPORT_REF}},
}
REPORT_NOTE = "\n\nThe answer carries s1serve's `thinking` report ({where}); streamed, it rides on {stream}."
REPORT_PLACES = {
    "/v1/chat/completions": ("per choice", "each choice's finishing chunk"),
    "/v1/completions": ("per choice", "each choice's finishing chunk"),
    "/v1/responses": ("top level", "`response.completed`"),
    "/v1/messages": ("top level", "`message_delta`"),
}
# Routes whose request bodies may carry a budget (count_tokens validates it, then ignores it).
BUDGET_ROUTES = tuple(TRANSLATED_PATHS)


def _component(schema: dict[str, Any], ref: Any) -> dict[str, Any] | None:
    if not (isinstance(ref, dict) and isinstance(ref.get("$ref"), str) and ref["$ref"].startswith(REF)):
        return None
    found = schema.get("components", {}).get("schemas", {}).get(ref["$ref"][len(REF) :])
    return found if isinstance(found, dict) else None


def _with_budget_xarg(xargs: dict[str, Any]) -> dict[str, Any]:
    """vLLM's `vllm_xargs` with `s1serve_budget` named in its object form."""
    xargs = copy.deepcopy(xargs)
    note = {"type": "string", "description": "a budget spec as a JSON string (what the other spellings become)"}
    for branch in [xargs, *xargs.get("anyOf", [])]:
        if isinstance(branch, dict) and branch.get("type") == "object":
            branch.setdefault("properties", {})[BUDGET_KEY] = note
    return xargs


def document_budget(schema: dict[str, Any]) -> None:
    """Add the budget fields to the generation request bodies and the report to their answers."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[BUDGET_SCHEMA] = thinking_budget_schema()
    components[REPORT_SCHEMA] = thinking_report_schema()
    paths = schema.get("paths", {})
    for path in BUDGET_ROUTES:
        op = paths.get(path, {}).get("post")
        if not isinstance(op, dict):
            continue
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        request = _component(schema, body.get("schema"))
        if request is not None:
            properties = request.setdefault("properties", {})
            for name, prop in budget_properties().items():
                if name == "reasoning_effort" and name in properties:
                    continue  # vLLM's own, with the same levels and the chat template's note
                properties[name] = prop
            if isinstance(properties.get("vllm_xargs"), dict):
                properties["vllm_xargs"] = _with_budget_xarg(properties["vllm_xargs"])
        if path not in RESPONSE_SCHEMAS:
            continue
        ok = op.setdefault("responses", {}).setdefault("200", {"description": "Successful Response"})
        media = ok.setdefault("content", {}).setdefault("application/json", {})
        current = media.get("schema")
        media["schema"] = RESPONSE_SCHEMAS[path] if not current else {"allOf": [current, RESPONSE_SCHEMAS[path]]}
        where, stream = REPORT_PLACES[path]
        ok["description"] = (ok.get("description") or "") + REPORT_NOTE.format(where=where, stream=stream)

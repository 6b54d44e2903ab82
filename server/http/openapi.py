"""What s1serve adds to vLLM's OpenAPI document: its refusals, the budget fields, the report.

vLLM's request models do not know the budget spellings s1serve reads (they are taken out of
the body before vLLM parses it), so its document lacks them; its generation routes have no
response schema at all. This adds both, the budget's from BudgetSpec's own declaration
(`budget.schema`), so a client generator (or a fuzzer) sees what the server accepts and what
it answers, and each operation gets the refusals that can actually reach it.
"""

from __future__ import annotations

import copy
from typing import Any

from budget.schema import NON_NEGATIVE, thinking_budget_schema
from budget.spec import PROFILES
from server.engine.xargs import BUDGET_KEY
from server.http.admission import LimitSettings
from server.http.budget_fields import EFFORT_LEVELS
from server.http.routes import BUDGET_PATHS, GENERATION_PATHS, JSON_PATHS, OPEN_PATHS

REPORT_SCHEMA = "ThinkingReport"
BUDGET_SCHEMA = "ThinkingBudget"
REF = "#/components/schemas/"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


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
    """The body fields `server.http.budget_fields.resolve_budget` reads, on every generation route."""
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
BUDGET_ROUTES = tuple(BUDGET_PATHS)


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


BUDGET_NOTE = (
    "\n\ns1serve also reads a thinking budget from the body: `thinking_budget` (a token count, or an "
    "object with max_tokens, min_tokens, wait_text, ...), `max_thinking_tokens`, `reasoning_effort`, "
    "Anthropic's `thinking`; see docs/api.md. An invalid budget is a 400 naming the field."
)


def document_openapi(app: Any, keys: bool, settings: LimitSettings, protect_metrics: bool = False) -> None:
    """Add to vLLM's OpenAPI document what s1serve's layers answer and accept.

    Each operation gets the refusals that can actually reach it (431 on all, 413 on bodies,
    400 on the JSON routes, 429 on the generation routes, 401 where keys apply), in the error
    shape the operation already documents (Anthropic's on /v1/messages, which s1serve's own
    error bodies also satisfy); the generation routes get the budget fields and the report.
    """
    schema = app.openapi()
    components = schema.setdefault("components", {})
    has_error = "ErrorResponse" in components.get("schemas", {})
    default_error: dict[str, Any] = {"$ref": "#/components/schemas/ErrorResponse"} if has_error else {"type": "object"}
    retry_after = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    open_paths = set(OPEN_PATHS)
    if protect_metrics:
        open_paths.discard("/metrics")
    if keys:
        components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            if not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            error = _error_schema(responses) or default_error
            has_body = method in ("post", "put", "patch")
            extra: dict[str, str] = {}
            if settings.max_header_bytes:
                extra["431"] = f"Request Header Fields Too Large: over {settings.max_header_bytes} bytes"
            if path.startswith("/v1/") or (has_body and path in JSON_PATHS):
                extra["400"] = "Bad Request: a field is invalid or the body no JSON object; `error.param` names it"
            if has_body and settings.max_body_bytes:
                extra["413"] = f"Content Too Large: the body is over {settings.max_body_bytes} bytes"
            if has_body and path in GENERATION_PATHS:
                extra["429"] = "Too Many Requests: the request queue is full; retry after `Retry-After` seconds"
            if path.startswith("/v1/"):
                extra["503"] = "Service Unavailable: the server is draining or its engine stopped; see `Retry-After`"
            if keys and path not in open_paths:
                extra["401"] = "Unauthorized: missing or invalid API key"
                op["security"] = [{"bearer": []}]
            for code, description in extra.items():
                entry = responses.setdefault(code, {})
                entry.setdefault("content", {"application/json": {"schema": error}})
                entry["description"] = description
                if code in ("429", "503"):
                    entry.setdefault("headers", {}).update(retry_after)
            if has_body and path in GENERATION_PATHS:
                op["description"] = (op.get("description") or "") + BUDGET_NOTE
    document_budget(schema)
    app.openapi_schema = schema


def _error_schema(responses: dict[str, Any]) -> dict[str, Any] | None:
    """The error body schema an operation already documents (its 400, else its 500)."""
    for code in ("400", "500"):
        found = responses.get(code, {}).get("content", {}).get("application/json", {}).get("schema")
        if found:
            return found
    return None

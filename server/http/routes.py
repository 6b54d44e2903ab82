"""Which paths the gateway treats how: one table, read by every part of the HTTP layer.

Every POST route of vLLM's app is classified here. Generation routes pass the whole gateway
(admission, drain gate, budgets, reports, metrics); `/invocations` (SageMaker) dispatches its
body to chat or completions as vLLM does and is treated as that protocol. Routes that would
generate outside the gateway's coverage, administrative routes, and POST routes this table does
not know are not served (`served_routes`), unless a flag names them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# POST paths that generate, by `endpoint` label (metrics, request log).
GENERATION_PATHS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/invocations": "invocations",
}
# The protocol each generation path speaks; /invocations speaks chat or completions by its body.
PROTOCOL_PATHS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
# POST paths whose bodies may carry budget fields that must not reach vLLM.
BUDGET_PATHS: dict[str, str] = {**PROTOCOL_PATHS, "/v1/messages/count_tokens": "count_tokens"}
# POST paths whose bodies must be JSON objects: checked by the gateway, so a malformed body gets
# the error shape every other refusal has (FastAPI's own answer is `{"detail": ...}`).
JSON_PATHS = frozenset({*GENERATION_PATHS, *BUDGET_PATHS, "/tokenize", "/detokenize"})
# POST paths whose sampling values are checked before vLLM sees them.
CHECKED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
# The prompt field of each protocol: vLLM's errors call it `input_text`.
PROMPT_FIELDS: dict[str, str] = {
    "chat": "messages",
    "completions": "prompt",
    "responses": "input",
    "messages": "messages",
}
# Paths open without a key (probes and scrapes); /metrics only when not protected.
OPEN_PATHS = frozenset({"/health", "/ready", "/ping", "/version", "/metrics"})

# POST routes that do not generate: served as they are (behind a key when keys are set).
NON_GENERATING = frozenset(
    {
        "/tokenize",
        "/detokenize",
        "/v1/messages/count_tokens",
        "/ping",
        "/v1/responses/{response_id}/cancel",
        "/v1/chat/completions/render",
        "/v1/completions/render",
        "/v1/responses/render",
        "/v1/messages/render",
        "/v1/chat/completions/derender",
        "/v1/completions/derender",
    }
)
# vLLM routes that generate without passing the gateway's admission, drain gate, budgets and
# metrics: not served unless --serve-uncovered-route names them.
UNCOVERED = frozenset(
    {
        "/v1/chat/completions/batch",  # many chats in one request, each its own engine request
        "/generative_scoring",
        "/inference/v1/generate",  # token-in, token-out generation for disaggregated serving
        "/v1/systemone",  # structured decisions (0.32); 501 on most models
        "/v1/decisions",  # structured decisions (0.33)
    }
)
# Administrative routes: they change or stop the engine for everyone. Not served unless
# --enable-admin-routes; behind a key whenever keys are configured.
ADMIN = frozenset(
    {
        "/scale_elastic_ep",
        "/is_scaling_elastic_ep",
        "/inference/v1/abort_requests",
        "/abort_requests",
        "/pause",
        "/resume",
        "/sleep",
        "/wake_up",
        "/collective_rpc",
        "/reset_prefix_cache",
        "/reset_mm_cache",
        "/reset_encoder_cache",
        "/release_kv_cache_memory",
        "/start_profile",
        "/stop_profile",
        "/init_weight_transfer_engine",
        "/shutdown_weight_transfer_engine",
        "/start_weight_update",
        "/start_draft_weight_update",
        "/update_weights",
        "/finish_weight_update",
        "/update_weight_version",
        "/weight_checker",
        "/v1/load_lora_adapter",
        "/v1/unload_lora_adapter",
    }
)


def protocol_path(path: str, data: Any) -> str:
    """The path whose protocol a request speaks: /invocations takes a chat body (with
    `messages`) or a completions body, in that order, as vLLM's dispatcher tries them."""
    if path != "/invocations":
        return path
    return "/v1/chat/completions" if isinstance(data, dict) and "messages" in data else "/v1/completions"


def prompt_field(path: str) -> str | None:
    """The prompt field of a generation path's protocol."""
    protocol = PROTOCOL_PATHS.get(path)
    return PROMPT_FIELDS.get(protocol) if protocol else None


def unserved_routes(
    routes: Iterable[tuple[str, set[str]]], *, admin: bool = False, uncovered: Iterable[str] = ()
) -> dict[str, str]:
    """The app's routes (path, methods) s1serve does not serve, each with why."""
    allowed = set(uncovered)
    left_out: dict[str, str] = {}
    for path, methods in routes:
        if path in allowed:
            continue
        if path in UNCOVERED:
            left_out[path] = "generates outside the gateway (admission, drain gate, budgets, metrics)"
        elif path in ADMIN and not admin:
            left_out[path] = "administrative (--enable-admin-routes)"
        elif "POST" in methods and path not in GENERATION_PATHS and path not in NON_GENERATING and path not in ADMIN:
            left_out[path] = "a POST route s1serve does not know: it may generate outside the gateway"
    return left_out

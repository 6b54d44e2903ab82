"""The one ASGI gateway in front of vLLM's serving layer.

Each request passes its steps in one fixed order, each refusing with vLLM's error shape:
header and body size → one JSON parse → value checks → engine state → API key → drain gate →
budget translation → admission → the app, under the drain deadline. On the way out the
`thinking` reports are added, then metrics and the request log line. Everything between
(OpenAI, Responses and Anthropic protocols, tools, structured outputs, streaming) is vLLM's own.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from budget.early_exit import EarlyExit
from budget.spec import BudgetError, BudgetSpec
from server.engine.records import RequestRecord, current_record
from server.http.admission import Admission, LimitSettings
from server.http.api_keys import NO_KEY, key_name
from server.http.asgi import (
    ClientError,
    Disconnected,
    Receive,
    Scope,
    Send,
    content_length,
    header,
    header_bytes,
    read_body,
    replay_body,
    reply,
    with_length,
)
from server.http.body_checks import MAX_JSON_DEPTH, engine_sequences, estimate_tokens, parse_and_check
from server.http.budget_fields import EffortBudgets, resolve_budget
from server.http.lifecycle import (
    DRAIN_RETRY_AFTER_S,
    RETRY_AFTER_S,
    GuardedResponse,
    Lifecycle,
    run_until_deadline,
)
from server.http.metrics import Metrics, log_request
from server.http.report import CountTokensRewriter, ResponseRewriter
from server.http.routes import BUDGET_PATHS, GENERATION_PATHS, JSON_PATHS, OPEN_PATHS, PROTOCOL_PATHS, protocol_path

PARSE_OFF_LOOP_BYTES = 1024 * 1024  # bodies above this are parsed in a worker thread
BODY_METHODS = ("POST", "PUT", "PATCH")


@dataclass
class HttpConfig:
    served_model_name: str
    efforts: EffortBudgets
    api_keys: dict[str, str]  # secret -> name
    protect_metrics: bool = False
    log_requests: bool = True
    log_json: bool = False
    # Tokens the forcing client appends to a budgeted prompt to open the thinking (0 when the
    # chat template opens it): count_tokens adds them, so it matches what generation reports.
    opener_tokens: int = 0
    budget_profile: str | None = None  # the server's --budget-profile, for budgets naming none
    early_exit: EarlyExit | None = None  # the server's --early-exit, for budgets naming none


@dataclass
class GatewayState:
    """What the gateway works with; set on the app's state as `s1_gateway` once the engine is up."""

    config: HttpConfig
    limits: LimitSettings
    metrics: Metrics
    lifecycle: Lifecycle
    admission: Admission = field(default_factory=Admission)

    def __post_init__(self) -> None:
        self.admission.max_requests = self.limits.max_queued_requests
        self.admission.max_tokens = self.limits.max_queued_tokens

    def key_required(self, path: str) -> bool:
        if not self.config.api_keys:
            return False
        return path not in OPEN_PATHS or (path == "/metrics" and self.config.protect_metrics)


class Gateway:
    """Installed through vLLM's `--middleware` list, so it wraps vLLM's whole app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: GatewayState | None = getattr(getattr(scope.get("app"), "state", None), "s1_gateway", None)
        if scope["type"] != "http" or state is None:
            await self.app(scope, receive, send)
            return
        await _Request(self.app, state, scope).run(receive, send)


class _Request:
    """One request's pass through the gateway."""

    def __init__(self, app: Any, state: GatewayState, scope: Scope) -> None:
        self.app = app
        self.state = state
        self.scope = scope
        self.path: str = scope.get("path", "")
        self.method: str = scope.get("method", "")
        self.endpoint = GENERATION_PATHS.get(self.path) if self.method == "POST" else None  # the metrics label
        self.protocol_path = self.path  # /invocations: the path whose protocol its body speaks
        self.key = NO_KEY

    async def run(self, receive: Receive, send: Send) -> None:
        state, limits = self.state, self.state.limits
        if limits.max_header_bytes and header_bytes(self.scope) > limits.max_header_bytes:
            message = f"the request headers are over the limit of {limits.max_header_bytes} bytes"
            await reply(send, 431, message, close=True)
            return
        body: bytes | None = None
        data: Any = None
        if self.method in BODY_METHODS:
            try:
                body, data = await self._read(receive)
            except ClientError as e:
                await reply(send, e.status, e.message, param=e.param, close=e.status == 413)
                return
            except Disconnected:
                return
            receive = replay_body(body, receive)
            self.protocol_path = protocol_path(self.path, data)
        engine = state.lifecycle.engine
        if self.endpoint and engine.errored and not engine.draining:
            headers = [(b"retry-after", str(DRAIN_RETRY_AFTER_S).encode())]
            await reply(send, 503, "the engine stopped; the server is exiting", headers=headers, close=True)
            return
        if state.key_required(self.path):
            name = key_name(state.config.api_keys, header(self.scope, b"authorization"))
            if name is None:
                await reply(send, 401, "invalid or missing API key", headers=[(b"www-authenticate", b"Bearer")])
                self._count_refused(401, "invalid or missing API key")
                return
            self.key = name
        budgeted = BUDGET_PATHS.get(self.protocol_path) if self.method == "POST" else None
        if budgeted is None or body is None:
            await self.app(self.scope, receive, send)
            return
        if self.endpoint and engine.draining:
            retry = [(b"retry-after", str(DRAIN_RETRY_AFTER_S).encode())]
            await reply(send, 503, "the server is shutting down", headers=retry)
            self._count_refused(503, "draining")
            return
        try:
            spec, body = self._translate(data, body, budgeted)
        except BudgetError as e:
            await reply(send, 400, e.message, param=e.param)
            self._count_refused(400, e.message)
            return
        receive = replay_body(body, receive)
        if budgeted == "count_tokens":
            opener = state.config.opener_tokens if spec is not None else 0
            await self.app(self.scope, receive, CountTokensRewriter(send, opener).send)
            return
        tokens = estimate_tokens(data, len(body), limits.max_model_len)
        slots = engine_sequences(data, self.protocol_path) if limits.count_sequences else 1
        refused = state.admission.try_admit(tokens, slots)
        if refused is not None:
            await reply(send, 429, refused, headers=[(b"retry-after", str(RETRY_AFTER_S).encode())])
            return
        try:
            await self._generate(RequestRecord(budget=spec), receive, send)
        finally:
            state.admission.release(tokens, slots)

    async def _read(self, receive: Receive) -> tuple[bytes, Any]:
        """The body, and on JSON routes its one parse, checked; refusals as ClientError."""
        limits = self.state.limits
        declared = content_length(self.scope)
        if limits.max_body_bytes and declared is not None and declared > limits.max_body_bytes:
            raise ClientError(413, f"the request body is {declared} bytes; the limit is {limits.max_body_bytes}")
        raw = await read_body(receive, limits.max_body_bytes)
        body = bytes(raw) if isinstance(raw, bytearray) else raw
        if self.path not in JSON_PATHS or not body:
            return body, None
        check = (parse_and_check, body, self.path, limits.max_model_len, limits.max_chars_per_token, limits.vocab_size)
        try:
            data = await asyncio.to_thread(*check) if len(body) > PARSE_OFF_LOOP_BYTES else check[0](*check[1:])
        except ValueError as e:
            raise ClientError(400, f"the request body is not valid JSON: {e}", "body") from None
        except RecursionError:  # deeper than the parser goes: far past MAX_JSON_DEPTH
            raise ClientError(
                400, f"the request body nests JSON more than {MAX_JSON_DEPTH} levels deep", "body"
            ) from None
        if not isinstance(data, dict):
            raise ClientError(400, "the request body must be a JSON object", "body")
        return body, data

    def _translate(self, data: Any, body: bytes, endpoint: str) -> tuple[BudgetSpec | None, bytes]:
        """The budget out of the parsed body; the body re-serialized only when that changed it."""
        if not isinstance(data, dict):
            return None, body
        keys, xargs = set(data), data.get("vllm_xargs")
        config = self.state.config
        spec = resolve_budget(
            data,
            "messages" if endpoint == "count_tokens" else endpoint,
            config.efforts,
            config.budget_profile,
            mark=endpoint != "count_tokens",
            default_early_exit=config.early_exit,
        )
        if set(data) == keys and data.get("vllm_xargs") is xargs:
            return spec, body
        body = json.dumps(data, separators=(",", ":")).encode()
        self.scope = {**self.scope, "headers": with_length(list(self.scope["headers"]), len(body))}
        return spec, body

    async def _generate(self, record: RequestRecord, receive: Receive, send: Send) -> None:
        m = self.state.metrics
        record.on_generating = lambda _: m.waiting.labels(m.model).dec()
        guard = GuardedResponse(send, self.state.lifecycle.engine)
        rewriter = ResponseRewriter(guard.send, PROTOCOL_PATHS.get(self.protocol_path, ""), record)
        m.running.labels(m.model).inc()
        m.waiting.labels(m.model).inc()
        token = current_record.set(record)
        error: str | None = None
        try:
            await run_until_deadline(self.app(self.scope, receive, rewriter.send), guard, self.state.lifecycle)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            current_record.reset(token)
            record.generating()
            m.running.labels(m.model).dec()
            self._finish(record, rewriter, error)

    def _count_refused(self, status: int, error: str) -> None:
        if self.endpoint is None:
            return
        config = self.state.config
        self.state.metrics.observe_request(self.key, self.endpoint, status, "error", None)
        if config.log_requests:
            log_request(
                config.log_json,
                request_id=f"rejected-{uuid.uuid4().hex}",
                endpoint=self.endpoint,
                model=config.served_model_name,
                key=self.key,
                status=status,
                finish_reason="error",
                latency=0.0,
                error=error,
            )

    def _finish(self, record: RequestRecord, rewriter: ResponseRewriter, error: str | None) -> None:
        status = rewriter.status or 500
        end = time.monotonic()
        m, key, config = self.state.metrics, self.key, self.state.config
        complete = bool(record.choices) and all(c.finish_reason is not None for c in record.choices)
        if status == 200 and record.choices and not complete:
            status = 499  # the client left before the choices finished
        if record.choices and status == 200:
            m.prompt_tokens.labels(m.model, key).inc(record.prompt_tokens)
        for c in record.choices:
            m.observe_choice(
                c.report,
                key,
                start=record.start,
                first_token=c.first_token_at,
                first_answer=c.first_answer_at if c.report.answer_tokens else None,
                end=end,
                output_tokens=c.completion_tokens,
                engine_requests=c.engine_requests,
                session_chunks=c.session_chunks,
            )
        if status >= 400 or not record.choices:
            finish_reason = "error" if status >= 400 else "none"
        else:
            reasons = {c.finish_reason or "abort" for c in record.choices}
            finish_reason = "length" if "length" in reasons else sorted(reasons)[0]
        endpoint = self.endpoint or ""
        m.observe_request(key, endpoint, status, finish_reason, end - record.start)
        if config.log_requests:
            log_request(
                config.log_json,
                request_id=rewriter.response_id or f"req-{uuid.uuid4().hex}",
                endpoint=endpoint,
                model=config.served_model_name,
                key=key,
                status=status,
                finish_reason=finish_reason,
                latency=end - record.start,
                reports=[c.report for c in record.choices],
                prompt_tokens=record.prompt_tokens,
                error=error or rewriter.error,
            )

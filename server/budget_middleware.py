"""The HTTP layer s1serve adds in front of vLLM's serving layer.

One ASGI middleware, per API request: API keys (named, for the metrics label), the drain
gate, the request translation (budget spellings -> one spec in `vllm_xargs`), and on the way
out the per-choice `thinking` report and exact `reasoning_tokens`, then metrics and the
request log line. Everything between (OpenAI, Responses and Anthropic protocols, tools,
structured outputs, streaming) is vLLM's own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from budget.spec import BudgetError
from server.api_keys import NO_KEY, key_name
from server.budget_fields import BUDGET_KEY, FIT_KEY, EffortBudgets, resolve_budget, spec_to_json
from server.forcing_client import RequestRecord, current_record
from server.limits import replay_body
from server.metrics import Metrics, log_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# POST paths that generate, and their `endpoint` label.
GENERATION_PATHS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
# Paths whose bodies may carry budget fields that must not reach vLLM.
TRANSLATED_PATHS = {**GENERATION_PATHS, "/v1/messages/count_tokens": "count_tokens"}
# Paths open without a key (probes and scrapes); /metrics only when not protected.
OPEN_PATHS = {"/health", "/ready", "/ping", "/version", "/metrics"}


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


class DrainGate(Protocol):
    """What the middleware reads to refuse new work: set when the server starts draining."""

    draining: bool


def error_response_body(message: str, status: int, param: str | None = None) -> bytes:
    """vLLM's error shape, so clients see one format whichever layer refused the request."""
    kind = {400: "BadRequestError", 401: "AuthenticationError", 503: "ServiceUnavailableError"}.get(
        status, HTTPStatus(status).phrase.replace(" ", "") + "Error"
    )
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}}).encode()


@dataclass
class HttpLayer:
    """What the middleware works with; set on the app's state as `s1_http` once the engine is up."""

    config: HttpConfig
    metrics: Metrics
    gate: DrainGate


class BudgetMiddleware:
    """Installed through vLLM's `--middleware` list, so it wraps vLLM's whole app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        layer: HttpLayer | None = getattr(getattr(scope.get("app"), "state", None), "s1_http", None)
        if scope["type"] != "http" or layer is None:
            await self.app(scope, receive, send)
            return
        await _Handler(self.app, layer).handle(scope, receive, send)


class _Handler:
    """One request's pass through the HTTP layer."""

    def __init__(self, app: Any, layer: HttpLayer) -> None:
        self.app = app
        self.config = layer.config
        self.metrics = layer.metrics
        self.gate = layer.gate
        self.opener_tokens = 0

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        key = NO_KEY
        if self.config.api_keys and (path not in OPEN_PATHS or (path == "/metrics" and self.config.protect_metrics)):
            header = _header(scope, b"authorization")
            name = key_name(self.config.api_keys, header)
            if name is None:
                await _reply(send, 401, "invalid or missing API key", headers=[(b"www-authenticate", b"Bearer")])
                self._count_refused(scope, NO_KEY, 401, "invalid or missing API key")
                return
            key = name
        endpoint = TRANSLATED_PATHS.get(path) if scope.get("method") == "POST" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        if self.gate.draining and endpoint in GENERATION_PATHS.values():
            await _reply(send, 503, "the server is shutting down", headers=[(b"retry-after", b"5")])
            self._count_refused(scope, key, 503, "draining")
            return

        body = await _read_body(receive)
        try:
            body = self._translate(body, endpoint)
        except BudgetError as e:
            await _reply(send, 400, e.message, param=e.param)
            self._count_refused(scope, key, 400, e.message)
            return
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
            (b"content-length", str(len(body)).encode())
        ]
        if endpoint == "count_tokens":
            await self.app(scope, replay_body(body, receive), _CountTokensRewriter(send, self.opener_tokens).send)
            return

        record = RequestRecord(on_generating=self._generating)
        rewriter = _ResponseRewriter(send, endpoint, record)
        m = self.metrics
        m.running.labels(m.model).inc()
        m.waiting.labels(m.model).inc()
        token = current_record.set(record)
        error: str | None = None
        try:
            await self.app(scope, replay_body(body, receive), rewriter.send)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            current_record.reset(token)
            record.generating()
            m.running.labels(m.model).dec()
            self._finish(endpoint, key, record, rewriter, error)

    def _generating(self, record: RequestRecord) -> None:
        self.metrics.waiting.labels(self.metrics.model).dec()

    def _translate(self, body: bytes, endpoint: str) -> bytes:
        """Budget spellings out of the body, the spec into vllm_xargs; other bytes untouched."""
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return body  # vLLM answers invalid JSON with its own 400
        if not isinstance(data, dict):
            return body
        budget = resolve_budget(data, "messages" if endpoint == "count_tokens" else endpoint, self.config.efforts)
        if endpoint == "count_tokens":
            self.opener_tokens = self.config.opener_tokens if budget is not None else 0
            return json.dumps(data, separators=(",", ":")).encode()
        if budget is not None:
            xargs = data.get("vllm_xargs")
            xargs = dict(xargs) if isinstance(xargs, dict) else {}
            xargs[BUDGET_KEY] = spec_to_json(budget.spec)
            if budget.fit_to_context:
                xargs[FIT_KEY] = 1
            data["vllm_xargs"] = xargs
        return json.dumps(data, separators=(",", ":")).encode()

    def _count_refused(self, scope: Scope, key: str, status: int, error: str) -> None:
        endpoint = GENERATION_PATHS.get(scope.get("path", ""))
        if endpoint is None:
            return
        self.metrics.observe_request(key, endpoint, status, "error", None)
        if self.config.log_requests:
            log_request(
                self.config.log_json,
                request_id=f"rejected-{uuid.uuid4().hex}",
                endpoint=endpoint,
                model=self.config.served_model_name,
                key=key,
                status=status,
                finish_reason="error",
                latency=0.0,
                error=error,
            )

    def _finish(
        self, endpoint: str, key: str, record: RequestRecord, rewriter: _ResponseRewriter, error: str | None
    ) -> None:
        status = rewriter.status or 500
        end = time.monotonic()
        m = self.metrics
        complete = bool(record.choices) and all(c.finish_reason is not None for c in record.choices)
        if status == 200 and record.choices and not complete:
            status = 499  # the client left before the choices finished
        if record.choices and status == 200:
            m.prompt_tokens.labels(m.model, key).inc(record.prompt_tokens)
        for c in record.choices:
            first_answer = c.first_answer_at if c.report.answer_tokens else None
            m.observe_choice(
                c.report,
                key,
                start=record.start,
                first_token=c.first_token_at,
                first_answer=first_answer,
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
        m.observe_request(key, endpoint, status, finish_reason, end - record.start)
        if self.config.log_requests:
            log_request(
                self.config.log_json,
                request_id=rewriter.response_id or f"req-{uuid.uuid4().hex}",
                endpoint=endpoint,
                model=self.config.served_model_name,
                key=key,
                status=status,
                finish_reason=finish_reason,
                latency=end - record.start,
                reports=[c.report for c in record.choices],
                prompt_tokens=record.prompt_tokens,
                error=error or rewriter.error,
            )


class _CountTokensRewriter:
    """Adds the thinking opener to `input_tokens` when the request carried a budget."""

    def __init__(self, send: Send, extra: int) -> None:
        self._send, self.extra = send, extra
        self._start: Message | None = None
        self._buffer = b""

    async def send(self, message: Message) -> None:
        if not self.extra:
            await self._send(message)
            return
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        self._buffer += message.get("body", b"")
        if message.get("more_body", False):
            return
        body = self._buffer
        assert self._start is not None
        try:
            data = json.loads(body)
            if self._start["status"] == 200 and isinstance(data.get("input_tokens"), int):
                data["input_tokens"] += self.extra
                body = json.dumps(data, separators=(",", ":")).encode()
        except (ValueError, AttributeError):
            pass
        headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
        await self._send({**self._start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class _ResponseRewriter:
    """Adds the `thinking` reports to a JSON or SSE response as it passes through."""

    def __init__(self, send: Send, endpoint: str, record: RequestRecord) -> None:
        self._send = send
        self.endpoint = endpoint
        self.record = record
        self.status: int | None = None
        self.response_id: str | None = None
        self.error: str | None = None
        self._start: Message | None = None
        self._mode = "pass"
        self._buffer = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = dict((k.lower(), v) for k, v in message.get("headers", []))
            ctype = headers.get(b"content-type", b"")
            if b"text/event-stream" in ctype:
                self._mode = "sse"
                await self._send(message)
            elif b"application/json" in ctype:
                self._mode = "json"
                self._start = message  # held until the body is complete: its length changes
            else:
                await self._send(message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        if self._mode == "json":
            self._buffer += message.get("body", b"")
            if message.get("more_body", False):
                return
            body = self._rewrite_json(self._buffer)
            assert self._start is not None
            headers = [(k, v) for k, v in self._start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self._send({**self._start, "headers": headers})
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if self._mode == "sse":
            self._buffer += message.get("body", b"")
            out = []
            while b"\n\n" in self._buffer:
                event, self._buffer = self._buffer.split(b"\n\n", 1)
                out.append(self._rewrite_event(event) + b"\n\n")
            more = message.get("more_body", False)
            if not more and self._buffer:
                out.append(self._buffer)
                self._buffer = b""
            if out or not more:
                await self._send({"type": "http.response.body", "body": b"".join(out), "more_body": more})
            return
        await self._send(message)

    # -- JSON ------------------------------------------------------------------------------------
    def _rewrite_json(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body
        if not isinstance(data, dict):
            return body
        if "error" in data and isinstance(data["error"], dict):
            self.error = str(data["error"].get("message"))
            if _name_client_field(data["error"], self.endpoint):
                return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
            return body
        self.response_id = data.get("id")
        self._annotate(data)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def _annotate(self, data: dict[str, Any]) -> None:
        """Put the reports where each API has room for them."""
        if self.endpoint == "chat":
            _mirror_reasoning(data)
        choices = self.record.choices
        if not choices:
            return
        thinking = sum(c.report.thinking_tokens for c in choices)
        if self.endpoint in ("chat", "completions"):
            for choice in data.get("choices") or []:
                i = choice.get("index", 0)
                if i < len(choices) and choice.get("finish_reason") is not None:
                    choice["thinking"] = choices[i].report.public()
            usage = data.get("usage")
            if isinstance(usage, dict):
                details = usage.get("completion_tokens_details") or {}
                details["reasoning_tokens"] = thinking
                usage["completion_tokens_details"] = details
        elif self.endpoint == "responses":
            target = data.get("response") if isinstance(data.get("response"), dict) else data
            if target.get("status") in (None, "completed", "incomplete") and "output" in target:
                target["thinking"] = choices[0].report.public()
                usage = target.get("usage")
                if isinstance(usage, dict):
                    details = usage.get("output_tokens_details") or {}
                    details["reasoning_tokens"] = thinking
                    usage["output_tokens_details"] = details
        elif self.endpoint == "messages":
            if data.get("type") == "message_delta" or data.get("type") == "message":
                if data.get("type") == "message" and data.get("stop_reason") is None:
                    return
                data["thinking"] = choices[0].report.public()

    # -- SSE -------------------------------------------------------------------------------------
    def _rewrite_event(self, event: bytes) -> bytes:
        lines = event.split(b"\n")
        for n, line in enumerate(lines):
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            payload = line[6:]
            if self.endpoint in ("chat", "completions"):
                compact = payload.replace(b" ", b"")
                if (
                    b'"finish_reason":null' in compact
                    and b'"usage":{' not in compact
                    and b'"reasoning":"' not in compact
                ):
                    continue  # a content chunk: nothing to add
            elif self.endpoint == "responses":
                if b"response.completed" not in payload and b"response.incomplete" not in payload:
                    continue
            elif self.endpoint == "messages":
                if b"message_delta" not in payload:
                    continue
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if isinstance(data, dict):
                if self.response_id is None:
                    self.response_id = data.get("id")
                if "error" in data and isinstance(data["error"], dict):
                    self.error = str(data["error"].get("message"))
                self._annotate(data)
                lines[n] = b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return b"\n".join(lines)


# What vLLM's errors call a field, and what the client sent: its validation errors carry the
# body location, and a prompt longer than the context is reported as `input_text`.
PROMPT_FIELD = {"chat": "messages", "completions": "prompt", "responses": "input", "messages": "messages"}


def _name_client_field(error: dict[str, Any], endpoint: str) -> bool:
    """Rename `param` (and its mention in the message) to the field the client sent.

    Also gives every error type vLLM's class-like spelling: its request validation says
    "Bad Request" where the rest of vLLM says "BadRequestError".
    """
    kind = error.get("type")
    changed = False
    if isinstance(kind, str) and " " in kind:
        error["type"] = kind.replace(" ", "") + "Error"
        changed = True
    param = error.get("param")
    if not isinstance(param, str):
        return changed
    renamed = param.removeprefix("body.")
    if renamed == "input_text":
        renamed = PROMPT_FIELD.get(endpoint, renamed)
    if renamed == param:
        return changed
    error["param"] = renamed
    message = str(error.get("message", ""))
    error["message"] = message.replace(param, renamed) if param in message else f"{renamed}: {message}"
    return True


def _mirror_reasoning(data: dict[str, Any]) -> None:
    """`reasoning_content` next to vLLM's `reasoning`: the name DeepSeek's API and its clients read."""
    for choice in data.get("choices") or []:
        for key in ("message", "delta"):
            part = choice.get(key)
            if isinstance(part, dict) and part.get("reasoning") is not None:
                part["reasoning_content"] = part["reasoning"]


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _reply(
    send: Send, status: int, message: str, *, param: str | None = None, headers: list[tuple[bytes, bytes]] = ()
) -> None:
    body = error_response_body(message, status, param)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name), "")

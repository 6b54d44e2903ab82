"""HTTP limits in front of everything else: body size, admission, drain deadline, safe errors.

A second ASGI middleware, outermost (vLLM adds `--middleware` entries last, and the last
added wraps the rest). It reads the whole request body itself, counting bytes, so an
oversized body is a 413 before any layer parses it; it admits generation requests against a
bounded queue (HTTP requests, and their prompt + output tokens), so overload is a 429 with
Retry-After before any 200 is sent; it checks the sampling fields vLLM would otherwise turn
into a 500; and at the drain deadline it ends open streams with an error event and `[DONE]`
instead of letting the engine stop under them.

Budget-forced requests count once, as the HTTP request they are: their engine rounds run
beneath the serving layer and never pass through here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

logger = logging.getLogger("s1serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# httptools (uvicorn's parser when installed) does not apply h11's header limit: checked here.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
WATCH_INTERVAL_S = 0.25  # how often engine death and the drain deadline are checked
EXIT_GRACE_S = 3.0  # after engine death, how long connections get to close before a forced exit
RETRY_AFTER_S = 1  # overload: a slot usually frees within a second or two
DRAIN_RETRY_AFTER_S = 5  # draining: another replica should take it
BYTES_PER_TOKEN = 4  # prompt size estimate before tokenization: text averages about 4 bytes a token
PARSE_OFF_LOOP_BYTES = 1024 * 1024  # bodies above this are parsed in a worker thread
# Deeper bodies are refused: the layers behind (budget translation, vLLM's parsing, the chat
# template) recurse per level and would fail with a 500 near Python's recursion limit. vLLM
# itself refuses JSON schemas nested over 64 levels, so no body it accepts comes close.
MAX_JSON_DEPTH = 128

# POST paths that start engine work (admission applies) and paths whose bodies are checked.
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"})
CHECKED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
# POST paths whose bodies must be JSON objects: checked here, so a malformed body gets the error
# shape every other refusal has (FastAPI's own answer is `{"detail": ...}`).
JSON_PATHS = GENERATION_PATHS | {"/v1/messages/count_tokens", "/tokenize", "/detokenize"}
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class EngineState(Protocol):
    """What the limits read from the engine client: drain and death."""

    draining: bool

    @property
    def errored(self) -> bool: ...


@dataclass
class LimitSettings:
    """The limits; 0 or None switches one off."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_queued_requests: int = 0
    max_queued_tokens: int = 0
    # Count a request as the engine sequences it starts (n x prompts), as vLLM's
    # --max-num-queued-reqs does: set when that flag gave the request limit.
    count_sequences: bool = False
    max_model_len: int = 0  # output allowance of a request that names no max_tokens
    vocab_size: int = 0  # token ids at or above this are refused (0: unknown, not checked)
    max_chars_per_token: int = 0  # the tokenizer's longest token: prompts over context x this cannot fit
    drain_timeout: float = 30.0


@dataclass
class Admission:
    """The bounded queue: HTTP generation requests (or their slots) and token estimates, in flight."""

    max_requests: int = 0
    max_tokens: int = 0
    requests: int = 0  # slots taken: one per request, or one per engine sequence when counted so
    tokens: int = 0

    def try_admit(self, tokens: int, slots: int = 1) -> str | None:
        """Take `slots`, or say which limit is full. A lone request is always admitted."""
        if self.max_requests and self.requests and self.requests + slots > self.max_requests:
            return f"the server is at its limit of {self.max_requests} requests in flight"
        if self.max_tokens and self.requests and self.tokens + tokens > self.max_tokens:
            return f"the server is at its limit of {self.max_tokens} queued tokens"
        self.requests += slots
        self.tokens += tokens
        return None

    def release(self, tokens: int, slots: int = 1) -> None:
        self.requests -= slots
        self.tokens -= tokens


@dataclass
class LimitsLayer:
    """Set on the app's state as `s1_limits` once the engine is up."""

    settings: LimitSettings
    engine: EngineState
    admission: Admission = field(default_factory=Admission)
    drain_deadline: float | None = None  # monotonic time at which open streams are ended
    deadline_passed: asyncio.Event = field(default_factory=asyncio.Event)
    engine_died: bool = False  # the engine failed while serving (not stopped by a drain)

    def __post_init__(self) -> None:
        self.admission.max_requests = self.settings.max_queued_requests
        self.admission.max_tokens = self.settings.max_queued_tokens

    def start_drain(self, margin: float | None = None) -> None:
        """Drain began: streams still open shortly before the engine stops get a clean end.

        The margin (a second, or a quarter of a short drain) leaves time to send the error
        events before the engine stops and the listener closes.
        """
        if margin is None:
            margin = min(1.0, self.settings.drain_timeout / 4)
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + max(0.0, self.settings.drain_timeout - margin)

    def died(self) -> bool:
        """Whether the engine failed while serving (an engine stopped by a drain did not)."""
        if not self.engine.draining and self.engine.errored:
            self.engine_died = True
        return self.engine_died

    def check_deadline(self) -> None:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.deadline_passed.set()


class ClientError(Exception):
    """A request the server refuses before vLLM sees it."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def error_body(message: str, status: int, param: str | None = None) -> bytes:
    """vLLM's error shape, as the other layers answer."""
    kind = HTTPStatus(status).phrase.replace(" ", "") + "Error"
    if status == 400:
        kind = "BadRequestError"
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}}).encode()


# -- body checks ---------------------------------------------------------------------------------
def _int_field(data: dict[str, Any], name: str, low: int | None, high: int | None) -> None:
    value = data.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        return  # a wrong type is vLLM's own 400
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            why = f"between {low} and {high}"
        elif low is not None:
            why = f"at least {low}"
        else:
            why = f"at most {high}"
        raise ClientError(400, f"{name} must be {why}, got {value}", name)


def _finite_field(data: dict[str, Any], name: str) -> None:
    value = data.get(name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ClientError(400, f"{name} must be a finite number", name)


def _token_ids(values: Any, name: str, vocab: int) -> None:
    if not isinstance(values, list):
        return
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            continue
        if v < 0 or (vocab and v >= vocab):
            bound = f"between 0 and {vocab - 1}" if vocab else "non-negative"
            raise ClientError(400, f"{name} holds token id {v}; token ids must be {bound}", name)


FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "length_penalty",
)


def check_body(data: Any, path: str, vocab: int) -> None:
    """Refuse the sampling values vLLM's serving layer answers with a 500 (or lets crash later).

    Only values of the right type are judged here; wrong types, missing fields and the rest
    stay vLLM's own 400s.
    """
    if isinstance(data, dict) and path == "/v1/responses":
        _check_response_input(data.get("input"))
    if not isinstance(data, dict) or path not in CHECKED_PATHS:
        return
    structured = data.get("structured_outputs")
    if structured is not None and not isinstance(structured, dict):
        # vLLM's request model reads it as a mapping before validating it: a 500 otherwise.
        raise ClientError(400, "structured_outputs must be an object", "structured_outputs")
    _int_field(data, "seed", -(2**63), INT64_MAX)
    _int_field(data, "top_k", -1, None)  # -1 and 0 both mean "off" to vLLM
    _int_field(data, "n", 1, None)
    for name in FLOAT_FIELDS:
        _finite_field(data, name)
    _token_ids(data.get("stop_token_ids"), "stop_token_ids", vocab)
    _token_ids(data.get("allowed_token_ids"), "allowed_token_ids", vocab)
    bias = data.get("logit_bias")
    if isinstance(bias, dict):
        for key in bias:
            try:
                token = int(key)
            except (TypeError, ValueError):
                continue
            _token_ids([token], "logit_bias", vocab)
    if path == "/v1/completions":
        prompt = data.get("prompt")
        if prompt == "" or prompt == []:
            raise ClientError(400, "prompt must not be empty", "prompt")
        if isinstance(prompt, list) and prompt:
            if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
                _token_ids(prompt, "prompt", vocab)
            else:
                for p in prompt:
                    if p == "" or p == []:
                        raise ClientError(400, "prompt must not hold an empty prompt", "prompt")
                    if isinstance(p, list):
                        _token_ids(p, "prompt", vocab)


def _check_response_input(items: Any) -> None:
    """An earlier assistant message handed back as Responses input must start with its text.

    vLLM reads the first content part's text of such an item and fails with a 500 when the
    content is empty or starts with a refusal.
    """
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant"):
            continue
        content = item.get("content")
        if content == [] or (isinstance(content, list) and isinstance(content[0], dict) and "text" not in content[0]):
            raise ClientError(
                400, f"input[{i}]: an assistant message's content must start with an output_text part", "input"
            )


PROMPT_FIELDS = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/responses": "input",
    "/v1/messages": "messages",
}
TEXT_KEYS = frozenset({"content", "text", "prompt", "input", "messages", "system", "instructions"})


def prompt_chars(value: Any) -> int:
    """Characters of prompt text in a body (message contents, text parts, prompts); not media."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(prompt_chars(v) for v in value)
    if isinstance(value, dict):
        return sum(prompt_chars(v) for k, v in value.items() if k in TEXT_KEYS)
    return 0


def check_prompt_length(data: Any, path: str, max_model_len: int, max_chars_per_token: int) -> None:
    """A prompt whose text alone cannot fit the context is refused here, off the event loop.

    vLLM makes the same check, but only after parsing the whole body on the event loop; a
    many-megabyte prompt would stall every other request meanwhile.
    """
    field_name = PROMPT_FIELDS.get(path)
    if not (field_name and max_model_len and max_chars_per_token and isinstance(data, dict)):
        return
    if data.get("truncate_prompt_tokens") is not None:
        return
    bound = max_model_len * max_chars_per_token
    chars = prompt_chars({k: v for k, v in data.items() if k in TEXT_KEYS})
    if chars > bound:
        raise ClientError(
            400,
            f"{field_name}: the model's context is {max_model_len} tokens, and the prompt holds {chars} characters "
            f"(more than {bound}, the most {max_model_len} tokens can hold)",
            field_name,
        )


def estimate_tokens(data: Any, body_bytes: int, max_model_len: int) -> int:
    """Prompt + output tokens a request may hold, for the token queue, before tokenization.

    The prompt is estimated from the body size, the output from the request's own cap (or
    what is left of the context when it names none), times its choices.
    """
    prompt = body_bytes // BYTES_PER_TOKEN
    if max_model_len:
        prompt = min(prompt, max_model_len)
    cap = None
    n = 1
    if isinstance(data, dict):
        for name in OUTPUT_FIELDS:
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                cap = value
                break
        if isinstance(data.get("n"), int) and not isinstance(data.get("n"), bool) and data["n"] > 1:
            n = data["n"]
    if cap is None:
        cap = max(0, max_model_len - prompt)
    if max_model_len:
        cap = min(cap, max_model_len)
    return prompt + cap * n


def engine_sequences(data: Any, path: str) -> int:
    """Engine requests a generation request starts: its choices, times its prompts on completions.

    vLLM's --max-num-queued-reqs counts these; admission counts them the same way when that
    flag set its limit, so vLLM's own check, made again after a stream's 200, never fires.
    """
    if not isinstance(data, dict):
        return 1
    n = data.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    prompt = data.get("prompt") if path == "/v1/completions" else None
    prompts = 1
    if isinstance(prompt, list) and prompt and not all(isinstance(p, int) for p in prompt):
        prompts = len(prompt)  # a list of texts or of token lists: one engine request each
    return choices * prompts


def header_bytes(scope: Scope) -> int:
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))


def content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


# -- the middleware ------------------------------------------------------------------------------
class LimitsMiddleware:
    """Installed through vLLM's `--middleware` list after `BudgetMiddleware`, so it wraps it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        layer: LimitsLayer | None = getattr(getattr(scope.get("app"), "state", None), "s1_limits", None)
        if scope["type"] != "http" or layer is None:
            await self.app(scope, receive, send)
            return
        limit = layer.settings.max_header_bytes
        if limit and header_bytes(scope) > limit:
            await reply(send, 431, f"the request headers are over the limit of {limit} bytes", close=True)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        await _handle(self.app, layer, scope, receive, send)


async def _handle(app: Any, layer: LimitsLayer, scope: Scope, receive: Receive, send: Send) -> None:
    settings = layer.settings
    path = scope.get("path", "")
    limit = settings.max_body_bytes
    declared = content_length(scope)
    if limit and declared is not None and declared > limit:
        await reply(send, 413, f"the request body is {declared} bytes; the limit is {limit}", close=True)
        return
    try:
        body = await read_body(receive, limit)
    except ClientError as e:
        await reply(send, e.status, e.message, close=True)
        return
    except _Disconnected:
        return
    generation = path in GENERATION_PATHS
    data: Any = None
    if path in JSON_PATHS and body:
        try:
            if len(body) > PARSE_OFF_LOOP_BYTES:
                data = await asyncio.to_thread(_parse_and_check, body, path, settings)
            else:
                data = _parse_and_check(body, path, settings)
        except ClientError as e:
            await reply(send, e.status, e.message, param=e.param)
            return
        except ValueError as e:
            await reply(send, 400, f"the request body is not valid JSON: {e}", param="body")
            return
        except RecursionError:  # deeper than the parser goes: far past MAX_JSON_DEPTH
            await reply(send, 400, f"the request body nests JSON more than {MAX_JSON_DEPTH} levels deep", param="body")
            return
        if not isinstance(data, dict):
            await reply(send, 400, "the request body must be a JSON object", param="body")
            return
        try:
            check_body(data, path, settings.vocab_size)
        except ClientError as e:
            await reply(send, e.status, e.message, param=e.param)
            return
    replay = replay_body(bytes(body) if isinstance(body, bytearray) else body, receive)
    if generation and layer.engine.errored and not layer.engine.draining:
        headers = [(b"retry-after", str(DRAIN_RETRY_AFTER_S).encode())]
        await reply(send, 503, "the engine stopped; the server is exiting", headers=headers, close=True)
        return
    if not generation or layer.engine.draining:
        await app(scope, replay, send)  # the drain gate answers 503 while draining
        return
    tokens = estimate_tokens(data, len(body), settings.max_model_len)
    slots = engine_sequences(data, path) if settings.count_sequences else 1
    refused = layer.admission.try_admit(tokens, slots)
    if refused is not None:
        await reply(send, 429, refused, headers=[(b"retry-after", str(RETRY_AFTER_S).encode())])
        return
    try:
        await _run_until_deadline(app, layer, scope, replay, send)
    finally:
        layer.admission.release(tokens, slots)


def _parse_and_check(body: bytes, path: str, settings: LimitSettings) -> Any:
    """Parse the body and check its values and prompt length; in a worker thread for big bodies."""
    data = json.loads(body)
    check_json_values(data, MAX_JSON_DEPTH)
    check_prompt_length(data, path, settings.max_model_len, settings.max_chars_per_token)
    return data


_SCALARS = frozenset({str, float, bool, type(None)})


def check_json_values(data: Any, depth_limit: int) -> None:
    """Refuse a body nesting deeper than `depth_limit`, or holding an integer beyond 64 bits.

    Both would otherwise be a 500 further in: deep nesting exhausts the recursion of the
    layers behind, and an integer outside the signed 64-bit range cannot be serialized to the
    engine (vLLM passes fields like `chat_template_kwargs` and `vllm_xargs` there). Walks
    without recursion; a long list of plain values costs one pass in C.
    """
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        stack = [(value, 2)]
        while stack:
            item, depth = stack.pop()
            kind = type(item)
            if kind is int:
                if not INT64_MIN <= item <= INT64_MAX:
                    raise ClientError(400, f"{key} holds an integer outside the signed 64-bit range", key)
                continue
            if kind is not dict and kind is not list:
                continue
            if depth > depth_limit:
                raise ClientError(400, f"{key}: the request body nests JSON more than {depth_limit} levels deep", key)
            children = list(item.values()) if kind is dict else item
            kinds = set(map(type, children))
            if kinds <= _SCALARS:
                continue
            if kinds == {int} and INT64_MIN <= min(children) and max(children) <= INT64_MAX:
                continue
            stack.extend((child, depth + 1) for child in children if type(child) not in _SCALARS)


class _Disconnected(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | bytearray:
    """The whole body, counted as it arrives: past `limit` bytes it is a 413 at once.

    Chunks are appended to one buffer (no list of chunks plus a joined copy), so a big body
    costs about its own size until it is parsed.
    """
    buffer = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if not buffer and not more:
            if limit and len(chunk) > limit:
                raise ClientError(413, f"the request body is over the limit of {limit} bytes")
            return chunk  # the whole body in one message: no copy
        buffer += chunk
        if limit and len(buffer) > limit:
            raise ClientError(413, f"the request body is over the limit of {limit} bytes")
        if not more:
            break
    return buffer


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the (already read) body once, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def reply(
    send: Send,
    status: int,
    message: str,
    *,
    param: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    body = error_body(message, status, param)
    extra = list(headers or [])
    if close:
        extra.append((b"connection", b"close"))  # the unread rest of the body makes the connection unusable
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Response:
    """The response as it passes: what has been sent, so the deadline can end it cleanly."""

    def __init__(self, send: Send, engine: EngineState) -> None:
        self._send = send
        self.engine = engine
        self.started = False
        self.streaming = False
        self.finished = False
        self.closed = False  # ended by the deadline: the app's later messages are dropped

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "http.response.start":
            self.started = True
            headers = {k.lower(): v for k, v in message.get("headers", [])}
            self.streaming = b"text/event-stream" in headers.get(b"content-type", b"")
            if message.get("status") == 503 and b"retry-after" not in headers:
                # vLLM's own queue limits answer 503 without saying when to come back.
                retry = (b"retry-after", str(RETRY_AFTER_S).encode())
                message = {**message, "headers": [*message.get("headers", []), retry]}
            if message.get("status") == 500 and self.engine.errored:
                # A 500 from a dead engine is the server's unavailability, not the request's fault.
                self.closed = self.finished = True
                await reply(self._send, 503, "the engine stopped; the server is exiting", close=True)
                return
        elif message["type"] == "http.response.body":
            if self.streaming and self.engine.errored and b'"code":500' in message.get("body", b""):
                message = {**message, "body": _unavailable_event(message["body"])}
            if not message.get("more_body", False):
                self.finished = True
        await self._send(message)

    async def end(self, message: str) -> None:
        """End the response now: an error event and [DONE] on a stream, a 503 before any byte."""
        if self.finished or self.closed:
            return
        self.closed = True
        if not self.started:
            body = error_body(message, 503)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(DRAIN_RETRY_AFTER_S).encode()),
            ]
            await self._send({"type": "http.response.start", "status": 503, "headers": headers})
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
        elif self.streaming:
            event = b"data: " + error_body(message, 503) + b"\n\ndata: [DONE]\n\n"
            await self._send({"type": "http.response.body", "body": event, "more_body": False})
        else:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished = True


def _unavailable_event(body: bytes) -> bytes:
    """A stream's error event from a dead engine says 503, as a non-streaming reply would."""
    return body.replace(b'"type":"InternalServerError"', b'"type":"ServiceUnavailableError"').replace(
        b'"code":500', b'"code":503'
    )


async def _run_until_deadline(app: Any, layer: LimitsLayer, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the request; if the drain deadline comes first, end its response and stop it."""
    response = _Response(send, layer.engine)
    task = asyncio.ensure_future(app(scope, receive, response.send))
    deadline = asyncio.ensure_future(layer.deadline_passed.wait())
    try:
        done, _ = await asyncio.wait({task, deadline}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return
        await response.end("the server is shutting down; the request did not finish before the drain deadline")
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    finally:
        deadline.cancel()
        if not task.done():
            task.cancel()


# -- engine death and the drain deadline ---------------------------------------------------------
async def watch(layer: LimitsLayer, state: Any, interval: float = WATCH_INTERVAL_S) -> None:
    """Stop serving as soon as the engine dies, and pass the drain deadline to open responses.

    vLLM's own watchdog looks every 5 s and then lets the process exit 0; this one looks
    every `interval`, records the death (the server then exits non-zero) and tells uvicorn
    to stop, forcing it if connections do not close within `EXIT_GRACE_S`.
    """
    died_at: float | None = None
    while True:
        await asyncio.sleep(interval)
        engine = layer.engine
        if engine.draining:
            layer.start_drain()
            layer.check_deadline()
            continue
        server = getattr(state, "server", None)
        if died_at is None and engine.errored:
            died_at = time.monotonic()
            layer.engine_died = True
            logger.error("the engine stopped unexpectedly; the server is exiting")
            if server is not None:
                server.should_exit = True
        elif died_at is not None and server is not None and time.monotonic() - died_at > EXIT_GRACE_S:
            server.force_exit = True


BUDGET_NOTE = (
    "\n\ns1serve also reads a thinking budget from the body: `thinking_budget` (a token count, or an "
    "object with max_tokens, min_tokens, wait_text, ...), `max_thinking_tokens`, `reasoning_effort`, "
    "Anthropic's `thinking`; see docs/api.md. An invalid budget is a 400 naming the field."
)


def document_openapi(app: Any, keys: bool, settings: LimitSettings) -> None:
    """Add to vLLM's OpenAPI document what s1serve's layers answer and accept.

    Each operation gets the refusals that can actually reach it (431 on all, 413 on bodies,
    400 on the JSON routes, 429 on the generation routes, 401 where keys apply), in the error
    shape the operation already documents (Anthropic's on /v1/messages, which s1serve's own
    error bodies also satisfy); the generation routes get the budget fields and the report.
    """
    from server.budget_middleware import OPEN_PATHS
    from server.openapi_budget import document_budget

    schema = app.openapi()
    components = schema.setdefault("components", {})
    has_error = "ErrorResponse" in components.get("schemas", {})
    default_error: dict[str, Any] = {"$ref": "#/components/schemas/ErrorResponse"} if has_error else {"type": "object"}
    retry_after = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    config = getattr(getattr(getattr(app, "state", None), "s1_http", None), "config", None)
    open_paths = set(OPEN_PATHS)
    if getattr(config, "protect_metrics", False):
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

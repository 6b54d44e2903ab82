"""ASGI plumbing the gateway shares: reading and replaying a body, refusing a request, headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# vLLM's spelling of an error's type where the status phrase would say something else.
ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError"}


class ClientError(Exception):
    """A request the server refuses before vLLM sees it."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


class Disconnected(Exception):
    """The client went away while its body was being read."""


def error_body(message: str, status: int, param: str | None = None) -> bytes:
    """vLLM's error shape, so clients see one format whichever layer refused the request."""
    kind = ERROR_TYPES.get(status) or HTTPStatus(status).phrase.replace(" ", "") + "Error"
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}}).encode()


async def reply(
    send: Send, status: int, message: str, *, param: str | None = None, headers: Headers | None = None,
    close: bool = False,
) -> None:  # fmt: skip
    """Answer with an error body; `close` when the unread rest of the body spoils the connection."""
    body = error_body(message, status, param)
    extra = list(headers or [])
    if close:
        extra.append((b"connection", b"close"))
    await send_json(send, status, body, extra)


async def send_json(send: Send, status: int, body: bytes, headers: Headers = ()) -> None:  # type: ignore[assignment]
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def with_length(headers: Headers, length: int) -> Headers:
    """`headers` with Content-Length set to `length` (a rewritten body changes it)."""
    return [(k, v) for k, v in headers if k.lower() != b"content-length"] + [(b"content-length", str(length).encode())]


async def read_body(receive: Receive, limit: int) -> bytes | bytearray:
    """The whole body, counted as it arrives: past `limit` bytes it is a 413 at once.

    Chunks are appended to one buffer (no list of chunks plus a joined copy), so a big body
    costs about its own size until it is parsed.
    """
    buffer = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
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


def header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name), "")


def header_bytes(scope: Scope) -> int:
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))


def content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    try:
        return int(value) if value else None
    except ValueError:
        return None

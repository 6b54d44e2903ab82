"""What the gateway adds to vLLM's answers: the `thinking` reports and exact reasoning tokens.

JSON bodies are rewritten whole; SSE streams event by event, touching only the events that
carry a finish, usage or reasoning text. Errors get the field name the client sent.
"""

from __future__ import annotations

import json
from typing import Any

from server.engine.records import RequestRecord
from server.http.asgi import Message, Send, with_length
from server.http.routes import PROMPT_FIELDS


class CountTokensRewriter:
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
        await self._send({**self._start, "headers": with_length(self._start.get("headers", []), len(body))})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class ResponseRewriter:
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
            await self._send({**self._start, "headers": with_length(self._start.get("headers", []), len(body))})
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
            _count_reasoning(data.get("usage"), "completion_tokens_details", thinking)
        elif self.endpoint == "responses":
            target = data.get("response") if isinstance(data.get("response"), dict) else data
            if target.get("status") in (None, "completed", "incomplete") and "output" in target:
                target["thinking"] = choices[0].report.public()
                _count_reasoning(target.get("usage"), "output_tokens_details", thinking)
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
        renamed = PROMPT_FIELDS.get(endpoint, renamed)
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


def _count_reasoning(usage: object, details_key: str, thinking: int) -> None:
    """Set `usage[details_key].reasoning_tokens`, where each API reports reasoning tokens."""
    if isinstance(usage, dict):
        details = usage.get(details_key) or {}
        details["reasoning_tokens"] = thinking
        usage[details_key] = details

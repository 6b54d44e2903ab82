"""The server's lifecycle as the gateway sees it: drain deadline, engine death, guarded responses.

At the drain deadline open streams end with an error event and `[DONE]` instead of letting
the engine stop under them; a dead engine's 500s become 503s with Retry-After, and the server
exits non-zero soon after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.http.asgi import Message, Send, error_body, reply

logger = logging.getLogger("s1serve")

WATCH_INTERVAL_S = 0.25  # how often engine death and the drain deadline are checked
EXIT_GRACE_S = 3.0  # after engine death, how long connections get to close before a forced exit
RETRY_AFTER_S = 1  # overload: a slot usually frees within a second or two
DRAIN_RETRY_AFTER_S = 5  # draining: another replica should take it


class EngineState(Protocol):
    """What the gateway reads from the engine client: drain and death."""

    draining: bool

    @property
    def errored(self) -> bool: ...


@dataclass
class Lifecycle:
    """Drain deadline and engine death, shared by the gateway and its watcher."""

    engine: EngineState
    drain_timeout: float = 30.0
    drain_deadline: float | None = None  # monotonic time at which open streams are ended
    deadline_passed: asyncio.Event = field(default_factory=asyncio.Event)
    engine_died: bool = False  # the engine failed while serving (not stopped by a drain)

    def start_drain(self, margin: float | None = None) -> None:
        """Drain began: streams still open shortly before the engine stops get a clean end.

        The margin (a second, or a quarter of a short drain) leaves time to send the error
        events before the engine stops and the listener closes.
        """
        if margin is None:
            margin = min(1.0, self.drain_timeout / 4)
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + max(0.0, self.drain_timeout - margin)

    def died(self) -> bool:
        """Whether the engine failed while serving (an engine stopped by a drain did not)."""
        if not self.engine.draining and self.engine.errored:
            self.engine_died = True
        return self.engine_died

    def check_deadline(self) -> None:
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.deadline_passed.set()


class GuardedResponse:
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
            await reply(self._send, 503, message, headers=[(b"retry-after", str(DRAIN_RETRY_AFTER_S).encode())])
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


async def run_until_deadline(call: Awaitable[None], response: GuardedResponse, lifecycle: Lifecycle) -> None:
    """Run the app `call` (sending through `response`); if the drain deadline comes first, end
    its response and stop it."""
    task = asyncio.ensure_future(call)
    deadline = asyncio.ensure_future(lifecycle.deadline_passed.wait())
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


async def watch(lifecycle: Lifecycle, state: Any, interval: float = WATCH_INTERVAL_S) -> None:
    """Stop serving as soon as the engine dies, and pass the drain deadline to open responses.

    vLLM's own watchdog looks every 5 s and then lets the process exit 0; this one looks
    every `interval`, records the death (the server then exits non-zero) and tells uvicorn
    to stop, forcing it if connections do not close within `EXIT_GRACE_S`.
    """
    died_at: float | None = None
    while True:
        await asyncio.sleep(interval)
        engine = lifecycle.engine
        if engine.draining:
            lifecycle.start_drain()
            lifecycle.check_deadline()
            continue
        server = getattr(state, "server", None)
        if died_at is None and engine.errored:
            died_at = time.monotonic()
            lifecycle.engine_died = True
            logger.error("the engine stopped unexpectedly; the server is exiting")
            if server is not None:
                server.should_exit = True
        elif died_at is not None and server is not None and time.monotonic() - died_at > EXIT_GRACE_S:
            server.force_exit = True

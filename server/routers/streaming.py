"""Pieces shared by the chat and completions routers: delta shaping, SSE, error capture."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from server.engine_loop import Delta, GenerationPlan
from server.serving import RequestTracker, usage_block


class AnswerTrim:
    """Drops whitespace between the thinking segment and the answer, per choice.

    Applied to both streamed and collected output, so streamed deltas always concatenate to
    the non-streamed message.
    """

    def __init__(self, n: int, active: bool) -> None:
        self._pending = [active] * n

    def __call__(self, index: int, text: str) -> str:
        if self._pending[index]:
            text = text.lstrip()
            if text:
                self._pending[index] = False
        return text


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


class ChunkWriter:
    """SSE chunks of one response; the fields every chunk repeats are serialized once."""

    def __init__(self, request_id: str, obj: str, created: int, model: str) -> None:
        self.meta = {"id": request_id, "object": obj, "created": created, "model": model}
        self._head = json.dumps(self.meta, ensure_ascii=False)[:-1]

    def choice(self, choice: dict[str, Any]) -> str:
        return f'data: {self._head},"choices":[{json.dumps(choice, ensure_ascii=False)}]}}\n\n'

    def usage(self, plan: GenerationPlan) -> str:
        return sse({**self.meta, "choices": [], "usage": usage_block(plan)})


def sse_response(
    deltas: AsyncIterator[Delta],
    tracker: RequestTracker,
    writer: ChunkWriter,
    render: Callable[[Delta], list[str]],
    include_usage: bool,
) -> StreamingResponse:
    tail = [lambda: writer.usage(tracker.plan)] if include_usage else []
    return StreamingResponse(tracked_stream(deltas, tracker, render, tail), media_type="text/event-stream")


async def tracked_stream(
    deltas: AsyncIterator[Delta],
    tracker: RequestTracker,
    render: Callable[[Delta], list[str]],
    tail: list[Callable[[], str]],
) -> AsyncIterator[str]:
    """Run a stream to its end, turning each delta into SSE events and recording the outcome."""
    status = 200
    error: str | None = None
    try:
        async for delta in deltas:
            tracker.generating()
            for event in render(delta):
                yield event
        for event in tail:
            yield event()
        yield "data: [DONE]\n\n"
    except Exception as e:  # an engine failure mid-stream: tell the client in-band
        status, error = 500, f"{type(e).__name__}: {e}"
        yield sse(
            {"error": {"message": f"generation failed: {error}", "type": "server_error", "param": None, "code": None}}
        )
        yield "data: [DONE]\n\n"
    finally:
        tracker.finish(status if status != 200 or _complete(tracker.plan) else 499, error)


DISCONNECT_POLL_S = 1.0


async def collect(
    deltas: AsyncIterator[Delta], tracker: RequestTracker, request: Request, on_delta: Callable[[Delta], None]
) -> bool:
    """Consume a non-streamed generation. Returns False (engine requests aborted) if the client left."""

    async def consume() -> None:
        async for delta in deltas:
            tracker.generating()
            on_delta(delta)

    task = asyncio.create_task(consume())
    try:
        while not (await asyncio.wait({task}, timeout=DISCONNECT_POLL_S))[0]:
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                tracker.finish(499, "client disconnected")
                return False
        task.result()
    except BaseException as e:
        task.cancel()
        tracker.finish(500 if isinstance(e, Exception) else 499, f"{type(e).__name__}: {e}")
        raise
    tracker.finish(200)
    return True


def _complete(plan: GenerationPlan) -> bool:
    return all(r.finish_reason is not None for r in plan.results)


def with_token_ids(body: dict[str, Any], plan: GenerationPlan, wanted: bool) -> dict[str, Any]:
    """vLLM's `return_token_ids`: the prompt's ids and each choice's completion ids."""
    if wanted:
        body["prompt_token_ids"] = plan.prompt_ids
        for choice, result in zip(body["choices"], plan.results, strict=True):
            choice["token_ids"] = result.token_ids
    return body

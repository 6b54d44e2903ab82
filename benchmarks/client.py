"""A closed-loop streaming load generator on the async openai SDK.

Each request streams a chat completion and records the arrival time of every delta, so the
report can derive TTFT, TPOT and the stall at every forcing intervention. The same client
drives vLLM's stock server and s1serve, so both pay the same client-side costs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from benchmarks.workload import Workload


@dataclass
class Event:
    t: float  # seconds since the request was sent
    kind: str  # "reasoning" | "content"
    text: str


@dataclass
class RequestRecord:
    prompt_index: int
    max_tokens: int
    start: float = 0.0  # perf_counter at send
    end: float = 0.0  # perf_counter at the last byte
    events: list[Event] = field(default_factory=list)
    completion_tokens: int | None = None
    thinking: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None


def make_client(base_url: str, concurrency: int) -> openai.AsyncOpenAI:
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(900.0, connect=30.0))
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, http_client=http)


async def one_request(
    client: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int, extra: dict[str, Any], record: RequestRecord
) -> None:
    record.start = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_completion_tokens=max_tokens,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        async for chunk in stream:
            now = time.perf_counter() - record.start
            if chunk.usage is not None:
                record.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                delta = choice.delta
                extra_fields = delta.model_extra or {}
                reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning")
                if reasoning:
                    record.events.append(Event(now, "reasoning", reasoning))
                if delta.content:
                    record.events.append(Event(now, "content", delta.content))
                if choice.finish_reason is not None:
                    record.finish_reason = choice.finish_reason
                    record.thinking = (choice.model_extra or {}).get("thinking")
    except Exception as e:  # recorded, counted as a failed request in the report
        record.error = f"{type(e).__name__}: {e}"
    record.end = time.perf_counter()


async def run_level(
    base_url: str, model: str, prompts: list[str], workload: Workload, scenario: str, concurrency: int
) -> tuple[list[RequestRecord], float]:
    """Send every prompt once with at most `concurrency` in flight; returns the records and the wall time."""
    client = make_client(base_url, concurrency)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(prompts)):
        queue.put_nowait(i)
    records: list[RequestRecord] = []

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            max_tokens, extra = workload.body(scenario, i)
            record = RequestRecord(prompt_index=i, max_tokens=max_tokens)
            records.append(record)
            await one_request(client, model, prompts[i], max_tokens, extra, record)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(prompts)))))
    finally:
        await client.close()
    wall = time.perf_counter() - started
    records.sort(key=lambda r: r.prompt_index)
    return records, wall

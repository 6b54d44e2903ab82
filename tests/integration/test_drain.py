"""SIGTERM under streaming load: in-flight streams finish, new work is refused, exit code 0."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from server.default_model import SERVED_NAME
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine

# Long enough that every stream is still decoding when the signal arrives (checked below): on the
# embedded SmolLM2 three such streams take about 10 s on the 2-core CPU machine. (The tiny model
# decodes them in under a second, which a loaded machine can spend before the test sees their
# first chunks.)
THINKING = 250
BUDGET = {"thinking_budget": {"max_tokens": THINKING, "min_tokens": THINKING, "wait_text": ""}}


def test_sigterm_drains_streams_and_exits_zero(tmp_path: Path) -> None:
    server = ServerProcess(
        ["--max-model-len", "1024", "--kv-cache-memory-bytes", "536870912", "--drain-timeout", "60"],
        tmp_path / "server.log",
    )
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    started = threading.Barrier(4)
    results: list[dict] = []

    def stream_one() -> None:
        chunks = client.chat.completions.create(
            model=SERVED_NAME,
            messages=[{"role": "user", "content": "count"}],
            max_tokens=THINKING + 50,
            temperature=0,
            stream=True,
            extra_body=BUDGET,
        )
        first = True
        reasoning, finish, report = "", None, None
        last = 0.0
        for chunk in chunks:
            last = time.monotonic()
            if first:
                first = False
                started.wait(timeout=60)
            for c in chunk.choices:
                reasoning += c.delta.model_dump().get("reasoning_content") or ""
                if c.finish_reason:
                    finish, report = c.finish_reason, c.model_extra["thinking"]
        results.append({"finish": finish, "report": report, "last_chunk": last})

    # A kept-alive connection opened before the signal: the probes below do not depend on when
    # the listener stops accepting new connections. It is used just before the streams start,
    # well within the keep-alive, so nothing stands between their first chunks and the signal.
    probe = httpx.Client(base_url=server.base_url, timeout=10)
    assert probe.get("/ready").status_code == 200
    threads = [threading.Thread(target=stream_one) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(timeout=120)  # every stream has its first chunk
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    # The drain begins as soon as the server handles the signal: /ready says so first. The
    # probes follow at once, while the streams still run.
    deadline = signalled + 5
    while probe.get("/ready").status_code != 503:
        assert time.monotonic() < deadline, "/ready never reported the drain"
    # New work is refused with 503 and Retry-After while in-flight work drains; SageMaker's
    # /invocations generates too, and passes the same drain gate.
    invocation = probe.post("/invocations", json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
    refused = probe.post(
        "/v1/chat/completions",
        json={"model": SERVED_NAME, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2},
    )
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert invocation.status_code == 503 and invocation.headers["retry-after"]
    probe.close()
    for t in threads:
        t.join(timeout=120)
    assert server.proc.wait(timeout=120) == 0
    server.stop()
    assert len(results) == 3
    for r in results:
        assert r["finish"] == "length" or r["finish"] == "stop"
        assert r["report"]["thinking_tokens"] == THINKING and r["report"]["forced_end"]
        assert r["last_chunk"] > signalled  # the stream was in flight during the drain and completed

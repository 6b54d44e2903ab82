"""Limits and failure behaviour on a real server: bad input, big bodies, overload, keys, engine death, drain.

One server with small limits and a key file serves the table of bad inputs, the body and header
limits, the overload bursts and the key checks, and is killed at the end (its engine, with
`kill -9`); a second one is drained with SIGTERM under streaming load. Its request limit is
vLLM's own `--max-num-queued-reqs`, which s1serve's admission takes over.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from server.default_model import SERVED_NAME
from tests.integration.conftest import ENGINE_ARGS
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine

KEY = "sk-limits-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 4 * 1024 * 1024
QUEUE = 3
MESSAGES = [{"role": "user", "content": "count"}]
# Masked to its cap, a forced stream cannot end early: it is still decoding when the test needs it.
LONG = {"thinking_budget": {"max_tokens": 900, "min_tokens": 900, "wait_text": ""}}


def start_limits_server(tiny_model: Path | None, folder: Path) -> ServerProcess:
    """The tiny model (None: the embedded SmolLM2) behind keys, a body limit and vLLM's queue limit."""
    keys = folder / "keys"
    keys.write_text(f"# test keys\ntester={KEY}\n")
    model = ["--model", str(tiny_model), "--served-model-name", "tiny"] if tiny_model else []
    engine = ENGINE_ARGS if tiny_model else ["--max-model-len", "1024", "--kv-cache-memory-bytes", "536870912"]
    args = [
        *model,
        "--api-key-file",
        str(keys),
        "--protect-metrics",
        "--max-request-body-bytes",
        str(BODY_LIMIT),
        "--max-num-queued-reqs",  # vLLM's flag: s1serve admits against it too (no --max-queued-requests)
        str(QUEUE),
        *engine,
    ]
    return ServerProcess(args, folder / "server.log")


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_limits_server(tiny_model, tmp_path_factory.mktemp("limits"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=120) as client:
        yield client


def completion(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "prompt": "two and three", "max_tokens": 3, **fields}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **fields}


# (path, body: a dict sent as JSON or raw bytes, field the 400 names)
BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("/v1/completions", completion(prompt=""), "prompt"),
    ("/v1/completions", completion(prompt=[5, -1]), "prompt"),
    ("/v1/completions", completion(prompt=[10**9]), "prompt"),
    ("/v1/completions", completion(prompt=[10**9], stream=True), "prompt"),
    ("/v1/completions", completion(max_tokens=0), "max_tokens"),
    ("/v1/completions", completion(top_k=-5), "top_k"),
    ("/v1/completions", completion(seed=2**70), "seed"),
    ("/v1/completions", completion(seed=2**70, stream=True), "seed"),
    ("/v1/completions", completion(stop_token_ids=[-1]), "stop_token_ids"),
    ("/v1/completions", completion(stop_token_ids=[-1], stream=True), "stop_token_ids"),
    ("/v1/completions", completion(logit_bias={"-1": 2}), "logit_bias"),
    (
        "/v1/completions",
        b'{"model":"tiny","prompt":"a","max_tokens":3,"repetition_penalty":1e999}',
        "repetition_penalty",
    ),
    ("/v1/completions", b'{"model":"tiny","prompt":"a","max_tokens":3,"temperature":NaN}', "temperature"),
    ("/v1/completions", b'{"model": "tiny", "prompt": ', "body"),
    ("/v1/completions", b"[1, 2]", "body"),
    ("/v1/chat/completions", chat(max_tokens=0), "max_tokens"),
    ("/v1/chat/completions", chat(top_k=-5), "top_k"),
    ("/v1/chat/completions", chat(seed=2**70, stream=True), "seed"),
    ("/v1/chat/completions", chat(stop_token_ids=[-1], stream=True), "stop_token_ids"),
    (
        "/v1/chat/completions",
        b'{"model":"tiny","messages":[{"role":"user","content":"a"}],"repetition_penalty":1e999}',
        "repetition_penalty",
    ),
    ("/v1/chat/completions", chat(n=0), "n"),
    ("/v1/chat/completions", chat(thinking_budget=-4), "thinking_budget"),
]


def test_bad_input_is_400_naming_the_field_and_the_connection_stays_usable(
    http: httpx.Client, server: ServerProcess
) -> None:
    for path, body, param in BAD_INPUTS:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = http.post(path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == 400, (path, body, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/json"), (path, body)  # not a 200 stream
        error = r.json()["error"]
        assert error["param"] == param and param in error["message"], (path, body, error)
        # The same connection serves the next request.
        ok = http.post("/v1/completions", json=completion(max_tokens=1))
        assert ok.status_code == 200
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log  # client errors are not server faults


def test_body_over_the_limit_is_413_while_a_stream_flows_and_health_stays_fast(http: httpx.Client) -> None:
    chunks: list[float] = []

    def stream() -> None:
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 60, "stream": True, "temperature": 0}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            chunks.extend(time.monotonic() for _ in r.iter_lines())

    flowing = threading.Thread(target=stream)
    flowing.start()
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=http.base_url, timeout=30) as c:
            while not stop.is_set():
                start = time.monotonic()
                assert c.get("/health").status_code == 200
                latencies.append(time.monotonic() - start)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        over = json.dumps(chat(messages=[{"role": "user", "content": "word " * (BODY_LIMIT // 5 + 10)}])).encode()
        started = time.monotonic()
        r = http.post("/v1/chat/completions", content=over, headers={"content-type": "application/json"})
        assert r.status_code == 413 and str(BODY_LIMIT) in r.json()["error"]["message"]
        assert time.monotonic() - started < 5
        # Just under the limit: a prompt far beyond the context, refused as a 400 without stalling the server.
        under = json.dumps(chat(messages=[{"role": "user", "content": "word " * (BODY_LIMIT // 5 - 100)}])).encode()
        r = httpx.post(
            f"{http.base_url}/v1/chat/completions",
            content=under,
            headers={**AUTH, "content-type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
        time.sleep(0.3)
    finally:
        stop.set()
        prober.join()
        flowing.join(timeout=120)
    assert len(chunks) > 10  # the stream kept flowing to its end
    assert max(latencies) < 0.25 and statistics.median(latencies) < 0.1, latencies


def test_a_one_megabyte_header_is_refused(http: httpx.Client) -> None:
    r = http.get("/health", headers={"x-padding": "a" * 1_000_000})
    assert r.status_code == 431
    assert http.get("/health").status_code == 200


def test_overload_gets_429_with_retry_after_and_admitted_forced_requests_finish(http: httpx.Client) -> None:
    def forced(stream: bool) -> tuple[int, Any]:
        body = {
            "model": "tiny",
            "messages": MESSAGES,
            "max_tokens": 80,
            "temperature": 0,
            "stream": stream,
            "thinking_budget": {"max_tokens": 40, "min_tokens": 40, "wait_text": ""},
        }
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            text = r.read().decode()
        if stream:
            events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
            report = next(c["thinking"] for e in events for c in e.get("choices", []) if c.get("finish_reason"))
            return r.status_code, report
        return r.status_code, json.loads(text)["choices"][0]["thinking"]

    def burst_one(stream: bool) -> tuple[int, str | None, str]:
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 20, "stream": stream}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            return r.status_code, r.headers.get("retry-after"), r.read().decode()

    with ThreadPoolExecutor(12) as pool:
        first = [pool.submit(forced, s) for s in (False, True)]
        time.sleep(1.0)  # admitted and into their rounds before the burst
        burst = [pool.submit(burst_one, i % 2 == 0) for i in range(10)]
        results = [f.result(timeout=300) for f in burst]
        reports = [f.result(timeout=300) for f in first]
    for status, report in reports:
        assert status == 200 and report["thinking_tokens"] == 40 and report["forced_end"]
    statuses = [s for s, _, _ in results]
    assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}, statuses
    for status, retry, text in results:
        if status == 429:
            assert retry and int(retry) >= 1
            assert json.loads(text)["error"]["code"] == 429  # a JSON error, also for streams: nothing started
    # The queue is free again once the burst is over.
    assert http.post("/v1/completions", json=completion()).status_code == 200


def _stream(http: httpx.Client, max_tokens: int, **fields: Any) -> tuple[int, str | None, str, str]:
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": max_tokens, "stream": True, **fields}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        return r.status_code, r.headers.get("retry-after"), r.headers.get("content-type", ""), r.read().decode()


def _assert_clean(results: list[tuple[int, str | None, str, str]]) -> None:
    """Every answer is a whole 200 stream or a 429 JSON reply with Retry-After: nothing between."""
    for status, retry, ctype, text in results:
        assert status in (200, 429), (status, text[:300])
        if status == 429:
            assert retry and int(retry) >= 1
            assert ctype.startswith("application/json")
            assert json.loads(text)["error"]["message"].endswith(f"limit of {QUEUE} requests in flight")
        else:
            events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]", events[-3:]
            assert not any('"error"' in e for e in events[:-1]), [e for e in events if '"error"' in e][:1]


def test_vllm_queue_limit_overflow_is_429_before_any_stream_starts(http: httpx.Client) -> None:
    """vLLM's --max-num-queued-reqs alone: overflowing streams get 429 up front, never a 200 with an error.

    vLLM checks its queue again once a stream's 200 has gone out; s1serve's admission, set to
    the same limit, refuses first. A burst from idle races for the slots; a burst while long
    streams hold every slot must be refused whole.
    """
    hold = {"temperature": 0, "thinking_budget": {"max_tokens": 500, "min_tokens": 500, "wait_text": ""}}
    started = threading.Semaphore(0)

    def holder() -> tuple[int, str | None, str, str]:
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 600, "stream": True, **hold}
        for _ in range(100):  # a slot frees just after its response ends: a moment's 429 is retried
            with http.stream("POST", "/v1/chat/completions", json=body) as r:
                if r.status_code == 429:
                    r.read()
                    time.sleep(0.05)
                    continue
                chunks = r.iter_raw()
                text = next(chunks, b"")
                started.release()  # admitted and streaming: its slot is held until the stream ends
                text += b"".join(chunks)
                return r.status_code, r.headers.get("retry-after"), r.headers.get("content-type", ""), text.decode()
        raise AssertionError("a holder never got a slot")

    with ThreadPoolExecutor(QUEUE + 8) as pool:
        racing = [f.result(timeout=300) for f in [pool.submit(_stream, http, 12) for _ in range(8)]]
        holders = [pool.submit(holder) for _ in range(QUEUE)]
        for _ in range(QUEUE):
            assert started.acquire(timeout=120)
        refused = [f.result(timeout=300) for f in [pool.submit(_stream, http, 12) for _ in range(5)]]
        held = [f.result(timeout=300) for f in holders]
    _assert_clean(racing)
    assert 200 in [status for status, *_ in racing]
    assert [status for status, *_ in refused] == [429] * 5
    _assert_clean(refused)
    assert [status for status, *_ in held] == [200] * QUEUE
    _assert_clean(held)


def test_keys_come_from_a_file_and_protect_metrics(server: ServerProcess) -> None:
    url = server.base_url
    r = httpx.post(f"{url}/v1/completions", json=completion(), timeout=60)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{url}/v1/completions", json=completion(), headers={"Authorization": "Bearer wrong"}, timeout=60)
    assert r.status_code == 401
    assert httpx.get(f"{url}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).status_code == 200
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # probes stay open
    assert KEY not in " ".join(psutil.Process(server.pid).cmdline())


def test_openapi_documents_errors_and_the_bearer_scheme(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/openapi.json", timeout=30).status_code == 401  # behind the keys too
    doc = httpx.get(f"{server.base_url}/openapi.json", headers=AUTH, timeout=30).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    for path in ("/v1/chat/completions", "/v1/completions"):
        op = doc["paths"][path]["post"]
        assert {"400", "401", "413", "429", "503"} <= set(op["responses"])
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
        assert op["security"] == [{"bearer": []}]
        assert "thinking_budget" in op["description"]


def test_engine_death_fails_in_flight_work_with_503_and_exits_non_zero(tmp_path: Path) -> None:
    """On a server of its own: the kill must find both requests decoding, whatever the module's
    other tests left behind on the shared server. On the embedded SmolLM2, whose 950 tokens take
    tens of seconds here (the tiny model's, about 2 s: a loaded machine can spend them on one
    scrape)."""
    server = start_limits_server(None, tmp_path)
    engine = [p for p in psutil.Process(server.pid).children(recursive=True) if "EngineCore" in p.name()]
    assert engine, "no engine process found"
    body = {"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 950, "temperature": 0, **LONG}
    results: dict[str, Any] = {}

    def plain() -> None:
        r = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)
        results["plain"] = r.status_code

    def streamed() -> None:
        with httpx.stream(
            "POST", f"{server.base_url}/v1/chat/completions", json={**body, "stream": True}, headers=AUTH, timeout=60
        ) as r:
            results["stream"] = r.read().decode()

    threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
    for t in threads:
        t.start()
    # Kill as soon as both requests are decoding: far from their 950 tokens, on any machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.base_url}/metrics", headers=AUTH, timeout=10).text
        running = [line for line in text.splitlines() if line.startswith("vllm:num_requests_running{")]
        if running and float(running[0].rsplit(" ", 1)[1]) >= 2:
            break
        time.sleep(0.02)
    killed = time.monotonic()
    os.kill(engine[0].pid, signal.SIGKILL)
    code = server.proc.wait(timeout=30)
    exited = time.monotonic() - killed
    for t in threads:
        t.join(timeout=30)
    server.stop()
    assert code != 0
    assert exited < 5.0, exited
    assert results["plain"] == 503
    events = [line[6:] for line in results["stream"].splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == 503


def test_sigterm_drain_deadline_ends_streams_and_exits_zero(tmp_path: Path) -> None:
    # The embedded SmolLM2, not the tiny model: three 950-token streams take it about 35 s on the
    # 2-core CPU machine, the tiny model about 2 s, which a loaded machine can spend before the
    # test sees the streams' first chunks. The drain is long enough to probe, and ends long
    # before the streams could.
    drain = 4.0
    server = ServerProcess(
        ["--max-model-len", "1024", "--kv-cache-memory-bytes", "536870912", "--drain-timeout", str(drain)],
        tmp_path / "server.log",
    )
    url = server.base_url
    body = {"model": SERVED_NAME, "messages": MESSAGES, "max_tokens": 950, "temperature": 0, "stream": True, **LONG}
    started = threading.Barrier(4)
    streams: list[list[str]] = []

    def stream_one() -> None:
        raw = b""  # read raw and split at the end: little client CPU, so the probes below run on time
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                if not raw:
                    started.wait(timeout=120)
                raw += chunk
        streams.append([e[6:] for e in raw.decode().split("\n\n") if e.startswith("data: ")])

    threads = [threading.Thread(target=stream_one) for _ in range(3)]
    # Probe connections opened before the signal: the listener closes when the drain ends, and a
    # busy machine can delay a new connection past that.
    probe = httpx.Client(base_url=url, timeout=10)
    try:
        # Used just before the streams start, well within the keep-alive: nothing stands between
        # their first chunks and the signal.
        assert probe.get("/ready").status_code == 200
        for t in threads:
            t.start()
        started.wait(timeout=300)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert probe.get("/ready").status_code == 503
        refused = probe.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        probed = time.monotonic() - signalled
        for t in threads:
            t.join(timeout=drain + 30)
        code = server.proc.wait(timeout=drain + 30)
        exited = time.monotonic() - signalled
    finally:
        probe.close()
        server.stop()
    assert probed < drain  # both answered while the drain was on
    assert code == 0
    assert exited < drain + 5, exited
    assert len(streams) == 3
    for events in streams:
        # Too long to finish within the drain: each stream ends with an error event, then [DONE].
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == 503, events[-3:]

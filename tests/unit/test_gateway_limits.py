"""The gateway's limits in front of a fake inner app: body and header limits, admission, checks, drain deadline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from server.cli import read_api_key_file
from server.http.admission import Admission, LimitSettings
from server.http.asgi import ClientError
from server.http.body_checks import MAX_JSON_DEPTH, check_body, check_json_values, engine_sequences, estimate_tokens
from server.http.budget_fields import EffortBudgets
from server.http.gateway import Gateway, GatewayState, HttpConfig
from server.http.lifecycle import Lifecycle
from server.http.metrics import Metrics
from server.http.openapi import document_openapi
from tests.unit.asgi_fakes import read_all

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class Engine:
    """The engine client as the limits see it."""

    def __init__(self) -> None:
        self.draining = False
        self.errored = False


class FakeApp:
    """Answers 200 with the body length; waits on `gate` first when one is set."""

    def __init__(self) -> None:
        self.state = SimpleNamespace()
        self.gate: asyncio.Event | None = None
        self.entered = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = await read_all(receive)
        self.bodies.append(body)
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        payload = json.dumps({"length": len(body)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def gateway_state(settings: LimitSettings, engine: Engine) -> GatewayState:
    config = HttpConfig(served_model_name="tiny", efforts=EffortBudgets(), api_keys={})
    metrics = Metrics("tiny", registry=CollectorRegistry())
    return GatewayState(config, settings, metrics, Lifecycle(engine=engine, drain_timeout=settings.drain_timeout))


def make(settings: LimitSettings | None = None) -> tuple[FakeApp, GatewayState, Any]:
    inner = FakeApp()
    layer = gateway_state(settings or LimitSettings(vocab_size=100, max_model_len=1000), Engine())
    inner.state.s1_gateway = layer
    middleware = Gateway(inner)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        scope["app"] = inner
        await middleware(scope, receive, send)

    return inner, layer, app


def test_body_over_the_limit_is_413_before_the_inner_app_reads_it() -> None:
    inner, _, app = make(LimitSettings(max_body_bytes=1000))
    client = TestClient(app)
    r = client.post("/v1/chat/completions", json={**CHAT, "pad": "x" * 2000})
    assert r.status_code == 413 and "1000" in r.json()["error"]["message"]
    assert inner.bodies == []
    # Without Content-Length (chunked), the bytes are counted as they arrive.
    r = client.post("/v1/chat/completions", content=iter([b"{" + b" " * 600, b" " * 600 + b"}"]))
    assert r.status_code == 413 and inner.bodies == []
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and [json.loads(b) for b in inner.bodies] == [CHAT]


def test_header_over_the_limit_is_431() -> None:
    _, _, app = make(LimitSettings(max_header_bytes=2048))
    client = TestClient(app)
    assert client.get("/health", headers={"x-big": "a" * 4096}).status_code == 431
    assert client.get("/health", headers={"x-small": "a" * 100}).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [5, -1]}, "prompt"),
        ({"prompt": [[5, 100]]}, "prompt"),
        ({"prompt": ["a", ""]}, "prompt"),
        ({"prompt": "a", "seed": 2**70}, "seed"),
        ({"prompt": "a", "seed": -(2**64)}, "seed"),
        ({"prompt": "a", "top_k": -5}, "top_k"),
        ({"prompt": "a", "stop_token_ids": [-1]}, "stop_token_ids"),
        ({"prompt": "a", "stop_token_ids": [100]}, "stop_token_ids"),
        ({"prompt": "a", "allowed_token_ids": [3, 1000]}, "allowed_token_ids"),
        ({"prompt": "a", "logit_bias": {"-1": 5}}, "logit_bias"),
        ({"prompt": "a", "repetition_penalty": float("inf")}, "repetition_penalty"),
        ({"prompt": "a", "temperature": float("nan")}, "temperature"),
        ({"prompt": "a", "n": 0}, "n"),
    ],
)
def test_values_vllm_would_fail_on_are_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as e:
        check_body(body, "/v1/completions", vocab=100)
    assert e.value.status == 400 and e.value.param == param and param in e.value.message


def test_valid_values_pass_the_checks() -> None:
    ok = {"prompt": [0, 99], "seed": 2**63 - 1, "top_k": -1, "stop_token_ids": [99], "logit_bias": {"5": 1}, "n": 2}
    check_body(ok, "/v1/completions", vocab=100)
    check_body({**CHAT, "top_k": 0, "repetition_penalty": 1.2}, "/v1/chat/completions", vocab=100)
    check_body({"prompt": [10**6]}, "/v1/completions", vocab=0)  # vocabulary unknown: vLLM judges


def test_invalid_json_and_bad_values_are_400_on_the_same_connection() -> None:
    inner, _, app = make()
    client = TestClient(app)
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
    r = client.post("/v1/completions", json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
    r = client.post("/v1/completions", json={"prompt": "a", "top_k": -5, "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_k"
    assert inner.bodies == []
    assert client.post("/v1/completions", json={"prompt": "a"}).status_code == 200


def test_estimate_counts_prompt_bytes_and_the_output_cap_per_choice() -> None:
    assert estimate_tokens({"max_tokens": 10}, 400, 1000) == 100 + 10
    assert estimate_tokens({"max_completion_tokens": 10, "n": 3}, 40, 1000) == 10 + 30
    assert estimate_tokens({}, 400, 1000) == 100 + 900  # no cap: what the context leaves
    assert estimate_tokens({"max_tokens": 10**9}, 40, 1000) == 10 + 1000


def test_admission_bounds_requests_and_tokens_and_always_admits_a_lone_request() -> None:
    q = Admission(max_requests=2, max_tokens=100)
    assert q.try_admit(500) is None  # alone: admitted whatever its size
    assert q.try_admit(10) is not None  # tokens full
    q.release(500)
    assert q.try_admit(60) is None and q.try_admit(40) is None
    assert "requests" in (q.try_admit(1) or "")
    q.release(60)
    q.release(40)
    assert (q.requests, q.tokens) == (0, 0)


def test_burst_over_the_queue_gets_429_with_retry_after_and_slots_come_back() -> None:
    inner, layer, app = make(LimitSettings(max_queued_requests=2, max_model_len=1000))

    async def run() -> list[int]:
        import httpx

        inner.gate = asyncio.Event()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = [asyncio.create_task(c.post("/v1/chat/completions", json=CHAT)) for _ in range(2)]
            while inner.entered < 2:
                await asyncio.sleep(0.01)
            refused = await c.post("/v1/chat/completions", json=CHAT)
            assert refused.headers["retry-after"] == "1"
            assert "2 requests" in refused.json()["error"]["message"]
            inner.gate.set()
            statuses = [refused.status_code] + [(await t).status_code for t in first]
            statuses.append((await c.post("/v1/chat/completions", json=CHAT)).status_code)
            # Probes are never counted.
            statuses.append((await c.get("/health")).status_code)
            return statuses

    assert asyncio.run(run()) == [429, 200, 200, 200, 200]
    assert layer.admission.requests == 0


def test_draining_is_a_503_from_the_drain_gate_without_taking_a_slot() -> None:
    inner, layer, app = make(LimitSettings(max_queued_requests=1))
    layer.lifecycle.engine.draining = True
    r = TestClient(app).post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert inner.bodies == [] and layer.admission.requests == 0


def test_drain_deadline_ends_an_open_stream_with_an_error_event_and_done() -> None:
    events: list[dict[str, Any]] = []

    class Streaming:
        state = SimpleNamespace()

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            await receive()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            await send({"type": "http.response.body", "body": b'data: {"x":1}\n\n', "more_body": True})
            await asyncio.sleep(60)  # still decoding at the deadline

    inner = Streaming()
    layer = gateway_state(LimitSettings(drain_timeout=0.0), Engine())
    inner.state.s1_gateway = layer
    middleware = Gateway(inner)

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": json.dumps(CHAT).encode(), "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            events.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "app": inner}
        task = asyncio.create_task(middleware(scope, receive, send))
        await asyncio.sleep(0.05)
        layer.lifecycle.start_drain(margin=0.0)
        layer.lifecycle.check_deadline()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    tail = events[-1]
    assert tail["more_body"] is False
    assert b'"code": 503' in tail["body"] and tail["body"].endswith(b"data: [DONE]\n\n")
    assert layer.admission.requests == 0


def test_openapi_gets_the_error_responses_and_bearer_scheme() -> None:
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions() -> dict[str, str]:
        return {}

    document_openapi(app, keys=True, settings=LimitSettings())
    schema = app.openapi()
    op = schema["paths"]["/v1/completions"]["post"]
    assert {"400", "401", "413", "429", "503"} <= set(op["responses"])
    assert op["security"] == [{"bearer": []}]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "thinking_budget" in op["description"]


def test_api_key_file_reads_names_and_bare_secrets(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\nalice=sk-a\n\nsk-bare\n")
    assert read_api_key_file(str(path)) == ["alice=sk-a", "sk-bare"]
    path.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="no keys"):
        read_api_key_file(str(path))
    with pytest.raises(SystemExit, match="cannot read"):
        read_api_key_file(str(tmp_path / "missing"))


def test_a_503_from_behind_gets_retry_after() -> None:
    inner, _, app = make()

    async def unavailable(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"error":{"code":503}}', "more_body": False})

    middleware = Gateway(unavailable)

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        scope["app"] = inner
        await middleware(scope, receive, send)

    r = TestClient(wrapped).post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_deep_nesting_and_integers_beyond_64_bits_are_400_naming_the_field() -> None:
    # The body is level 1 and chat_template_kwargs level 2: the lists fill the rest.
    check_json_values({"chat_template_kwargs": {"x": _nested(MAX_JSON_DEPTH - 2)}}, MAX_JSON_DEPTH)
    with pytest.raises(ClientError) as e:
        check_json_values({"chat_template_kwargs": {"x": _nested(MAX_JSON_DEPTH - 1)}}, MAX_JSON_DEPTH)
    assert e.value.param == "chat_template_kwargs" and str(MAX_JSON_DEPTH) in e.value.message
    check_json_values({"prompt": list(range(1000)) + [2**63 - 1, -(2**63)], "seed": 5}, MAX_JSON_DEPTH)
    for body, param in [
        ({"vllm_xargs": {"k": 2**64}}, "vllm_xargs"),
        ({"chat_template_kwargs": {"k": [1, "a", {"z": -(2**63) - 1}]}}, "chat_template_kwargs"),
        ({"prompt": [1, 2, 2**70]}, "prompt"),
        ({"max_tokens": 10**30}, "max_tokens"),
    ]:
        with pytest.raises(ClientError) as e:
            check_json_values(body, MAX_JSON_DEPTH)
        assert e.value.status == 400 and e.value.param == param and param in e.value.message


def test_a_body_deeper_than_the_parser_goes_is_400_not_500() -> None:
    _, _, app = make()
    client = TestClient(app)
    for path in ("/v1/chat/completions", "/v1/messages/count_tokens", "/tokenize"):
        r = client.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "body", path
        r = client.post(path, content=b"\xbb\x00", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "body", path


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**CHAT, "structured_outputs": 0.0}, "structured_outputs"),
        ("/v1/completions", {"prompt": "a", "structured_outputs": "json"}, "structured_outputs"),
        ("/v1/responses", {"input": [{"type": "message", "role": "assistant", "content": []}]}, "input"),
        (
            "/v1/responses",
            {"input": [{"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}]},
            "input",
        ),
    ],
)
def test_shapes_vllm_answers_with_a_500_are_400(path: str, body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as e:
        check_body(body, path, vocab=100)
    assert e.value.param == param


def test_shapes_vllm_handles_pass() -> None:
    check_body({**CHAT, "structured_outputs": {"regex": "a+"}}, "/v1/chat/completions", vocab=100)
    text = {"type": "output_text", "text": "hi", "annotations": []}
    inputs = [{"role": "assistant", "content": []}, {"type": "message", "role": "assistant", "content": [text]}]
    check_body({"input": inputs}, "/v1/responses", vocab=100)


def test_engine_sequences_count_choices_and_prompts_as_vllm_does() -> None:
    assert engine_sequences({"messages": []}, "/v1/chat/completions") == 1
    assert engine_sequences({"n": 3}, "/v1/chat/completions") == 3
    assert engine_sequences({"prompt": ["a", "b"], "n": 2}, "/v1/completions") == 4
    assert engine_sequences({"prompt": [[1, 2], [3]]}, "/v1/completions") == 2
    assert engine_sequences({"prompt": [1, 2, 3]}, "/v1/completions") == 1  # one prompt of token ids
    assert engine_sequences({"prompt": ["a", "b"]}, "/v1/responses") == 1


def test_admission_counts_slots_when_asked_and_still_admits_a_lone_request() -> None:
    q = Admission(max_requests=3)
    assert q.try_admit(0, slots=5) is None  # alone: admitted (vLLM's own check answers it before any byte)
    assert q.try_admit(0, slots=1) is not None
    q.release(0, slots=5)
    assert q.try_admit(0, slots=2) is None
    assert q.try_admit(0, slots=2) is not None  # 4 > 3
    assert q.try_admit(0, slots=1) is None
    assert q.requests == 3


def test_vllm_queue_flag_sets_the_admission_limit_unless_s1serve_flag_is_given() -> None:
    from server.cli import limit_settings, serve_parser

    parser = serve_parser()
    derived = limit_settings(parser.parse_args(["--max-num-queued-reqs", "4"]))
    assert (derived.max_queued_requests, derived.count_sequences) == (4, True)
    explicit = limit_settings(parser.parse_args(["--max-num-queued-reqs", "4", "--max-queued-requests", "2"]))
    assert (explicit.max_queued_requests, explicit.count_sequences) == (2, False)
    neither = limit_settings(parser.parse_args([]))
    assert (neither.max_queued_requests, neither.count_sequences) == (0, False)


def test_openapi_lists_only_the_refusals_each_operation_can_get() -> None:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> dict[str, str]:
        return {}

    @app.post("/tokenize")
    async def tokenize() -> dict[str, str]:
        return {}

    @app.get("/v1/models")
    async def models() -> dict[str, str]:
        return {}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {}

    document_openapi(app, keys=True, settings=LimitSettings())
    paths = app.openapi()["paths"]
    chat_op, tokenize_op = paths["/v1/chat/completions"]["post"], paths["/tokenize"]["post"]
    assert {"400", "401", "413", "429", "431", "503"} <= set(chat_op["responses"])
    assert chat_op["responses"]["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert {"400", "401", "413", "431"} <= set(tokenize_op["responses"]) and "429" not in tokenize_op["responses"]
    assert tokenize_op["security"] == [{"bearer": []}]  # keys guard every route but the probes
    assert "413" not in paths["/v1/models"]["get"]["responses"]
    probe = paths["/health"]["get"]
    assert "security" not in probe and "401" not in probe["responses"] and "431" in probe["responses"]

"""s1serve's gateway in front of a fake inner app (a stand-in for vLLM's, no engine): budgets,
keys, drain gate, reports, metrics.

The fake app plays vLLM's serving layer and the forcing engine client: it records what body it
received, adds choices to the request record as the engine client would, and answers with a
JSON or SSE body. The gateway must translate budgets, refuse what it should, annotate the
responses and count every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from budget.controller import ThinkingReport
from budget.spec import BudgetSpec
from server.engine.records import ChoiceRecord, current_record
from server.engine.xargs import BUDGET_KEY, FORCED_KEY, spec_to_json
from server.http.admission import LimitSettings
from server.http.budget_fields import EffortBudgets
from server.http.gateway import Gateway, GatewayState, HttpConfig
from server.http.lifecycle import Lifecycle
from server.http.metrics import Metrics
from tests.metrics.scrape import parse, total
from tests.unit.asgi_fakes import read_all

KEYS = {"sk-alice": "alice", "sk-bob": "bob"}
ALICE = {"Authorization": "Bearer sk-alice"}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


class FakeServing:
    """Fake inner app: remembers the body, adds one finished choice, answers `reply(body)`."""

    def __init__(self, reply: Callable[[dict[str, Any]], tuple[int, str, bytes]]) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        self.budgets: list[BudgetSpec | None] = []
        self.raw: list[bytes] = []
        self.state = SimpleNamespace()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = await read_all(receive)
        data = json.loads(body) if body else {}
        self.raw.append(body)
        self.bodies.append(data)
        record = current_record.get()
        self.budgets.append(record.budget if record is not None else None)
        status, ctype, payload = self.reply(data)
        if record is not None and status == 200:
            report = ThinkingReport(thinking_tokens=7, answer_tokens=3, waits_inserted=1, forced_end=True)
            record.choices.append(ChoiceRecord(index=0, report=report, completion_tokens=12, finish_reason="stop"))
            record.prompt_tokens += 5
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype.encode())]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def json_reply(data: dict[str, Any]) -> tuple[int, str, bytes]:
    body = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok", "reasoning": "r"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17},
    }
    return 200, "application/json", json.dumps(body).encode()


def sse_reply(data: dict[str, Any]) -> tuple[int, str, bytes]:
    chunks = [
        {"id": "c1", "choices": [{"index": 0, "delta": {"reasoning": "hm"}, "finish_reason": None}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 12}},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return 200, "text/event-stream", body.encode()


def build(reply=json_reply, keys=KEYS, log_json=True, profile=None):  # noqa: ANN001, ANN201
    inner = FakeServing(reply)
    metrics = Metrics("tiny", registry=CollectorRegistry())
    gate = SimpleNamespace(draining=False, errored=False)
    config = HttpConfig(
        served_model_name="tiny",
        efforts=EffortBudgets.parse("low=10"),
        api_keys=keys,
        log_json=log_json,
        budget_profile=profile,
    )
    state = GatewayState(config, LimitSettings(), metrics, Lifecycle(engine=gate))

    async def app(scope: dict, receive: Any, send: Any) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(s1_gateway=state))
        await Gateway(inner)(scope, receive, send)

    return TestClient(app), inner, metrics, gate


def requests_total(metrics: Metrics, **labels: str) -> float:
    return total(parse(generate_latest(metrics.registry).decode()), "s1serve_requests_total", **labels)


def test_budget_spellings_become_one_spec_in_the_request_record() -> None:
    client, inner, _, _ = build()
    r = client.post("/v1/chat/completions", json={**CHAT, "thinking_budget": {"max_tokens": 9}}, headers=ALICE)
    assert r.status_code == 200
    sent = inner.bodies[-1]
    assert "thinking_budget" not in sent and inner.budgets[-1] == BudgetSpec(max_tokens=9)
    assert sent["vllm_xargs"] == {FORCED_KEY: 1}  # the reasoning parser's marker, not the spec
    client.post("/v1/chat/completions", json={**CHAT, "reasoning_effort": "low"}, headers=ALICE)
    sent = inner.bodies[-1]
    assert sent["reasoning_effort"] == "low" and inner.budgets[-1] == BudgetSpec(max_tokens=10, fit_to_context=True)
    xargs = {BUDGET_KEY: spec_to_json(BudgetSpec(max_tokens=4, min_tokens=2)), "other": 1}
    client.post("/v1/chat/completions", json={**CHAT, "vllm_xargs": xargs}, headers=ALICE)
    assert inner.budgets[-1] == BudgetSpec(max_tokens=4, min_tokens=2)
    assert inner.bodies[-1]["vllm_xargs"] == {"other": 1, FORCED_KEY: 1}
    client.post("/v1/chat/completions", json=CHAT, headers=ALICE)
    assert "vllm_xargs" not in inner.bodies[-1] and inner.budgets[-1] is None  # no budget: the body as sent


def test_a_body_without_budget_fields_reaches_vllm_byte_for_byte() -> None:
    client, inner, _, _ = build()
    raw = b'{ "model": "tiny",\n  "messages": [{"role": "user", "content": "hi"}] }'
    client.post("/v1/chat/completions", content=raw, headers={**ALICE, "content-type": "application/json"})
    assert inner.raw == [raw]


def test_the_server_profile_fills_a_budget_that_names_none() -> None:
    client, inner, _, _ = build(profile="harness")
    client.post("/v1/chat/completions", json={**CHAT, "thinking_budget": 8}, headers=ALICE)
    assert inner.budgets[-1] is not None and inner.budgets[-1].profile == "harness"
    client.post("/v1/chat/completions", json={**CHAT, "thinking_budget": {"profile": "exact"}}, headers=ALICE)
    assert inner.budgets[-1] is not None and inner.budgets[-1].profile == "exact"
    r = client.post("/v1/chat/completions", json={**CHAT, "thinking_budget": {"cap_message": "x"}}, headers=ALICE)
    assert r.status_code == 400 and r.json()["error"]["param"] == "thinking_budget.cap_message"
    r = client.post(
        "/v1/chat/completions", json={**CHAT, "max_thinking_tokens": 3, "min_thinking_tokens": 5}, headers=ALICE
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "min_thinking_tokens"
    assert len(inner.bodies) == 2


def test_reports_and_reasoning_tokens_are_added_to_json_responses() -> None:
    client, _, _, _ = build()
    data = client.post("/v1/chat/completions", json=CHAT, headers=ALICE).json()
    choice = data["choices"][0]
    report = ThinkingReport(thinking_tokens=7, answer_tokens=3, waits_inserted=1, forced_end=True)
    assert choice["thinking"] == json.loads(json.dumps(report.public()))
    assert choice["message"]["reasoning_content"] == choice["message"]["reasoning"] == "r"
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 7


def test_reports_are_added_to_the_finishing_sse_chunk_only() -> None:
    client, _, _, _ = build(reply=sse_reply)
    text = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ALICE).text
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["reasoning_content"] == "hm"
    assert "thinking" not in chunks[1]["choices"][0]
    assert chunks[2]["choices"][0]["thinking"]["thinking_tokens"] == 7
    assert chunks[3]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 7


def test_bad_budget_is_a_400_naming_the_field_and_never_reaches_vllm() -> None:
    client, inner, metrics, _ = build()
    r = client.post("/v1/chat/completions", json={**CHAT, "thinking_budget": {"max_tokens": "x"}}, headers=ALICE)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "thinking_budget.max_tokens" and r.json()["error"]["code"] == 400
    r = client.post("/v1/messages", json={**CHAT, "thinking": {"type": "enabled"}}, headers=ALICE)
    assert r.json()["error"]["param"] == "thinking.budget_tokens"
    assert inner.bodies == []
    assert requests_total(metrics, endpoint="chat", status="400", key="alice", finish_reason="error") == 1


def test_keys_are_checked_with_names_and_a_www_authenticate_header(caplog: pytest.LogCaptureFixture) -> None:
    client, inner, metrics, _ = build()
    with caplog.at_level(logging.INFO, logger="s1serve.requests"):
        r = client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert (
            client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert (
            client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-bob"}).status_code
            == 200
        )
        assert client.get("/health").status_code == 200  # probes need no key
    assert requests_total(metrics, endpoint="chat", status="401", key="none") == 2
    assert requests_total(metrics, endpoint="chat", status="200", key="bob", finish_reason="stop") == 1
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "s1serve.requests"]
    assert [(line["status"], line["key"]) for line in lines] == [(401, "none"), (401, "none"), (200, "bob")]
    assert lines[2]["thinking_tokens"] == 7 and lines[2]["prompt_tokens"] == 5
    assert not any("sk-" in json.dumps(line) for line in lines), "secrets never reach the log"


def test_key_label_is_bounded_to_configured_names() -> None:
    client, _, metrics, _ = build()
    for secret in ("sk-alice", "sk-bob", "made-up-1", "made-up-2", "sk-alice2"):
        client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {secret}"})
    samples = parse(generate_latest(metrics.registry).decode())
    assert {dict(labels)["key"] for (_, labels) in samples if "key" in dict(labels)} == {"alice", "bob", "none"}


def test_draining_refuses_new_generation_with_503_and_retry_after() -> None:
    client, inner, metrics, gate = build()
    gate.draining = True
    r = client.post("/v1/chat/completions", json=CHAT, headers=ALICE)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert client.get("/v1/models", headers=ALICE).status_code == 200  # only new generation is refused
    assert requests_total(metrics, endpoint="chat", status="503") == 1


def test_metrics_count_exactly_what_the_record_reported() -> None:
    client, _, metrics, _ = build()
    client.post("/v1/chat/completions", json=CHAT, headers=ALICE)
    samples = parse(generate_latest(metrics.registry).decode())
    assert total(samples, "s1serve_prompt_tokens_total", key="alice") == 5
    assert total(samples, "s1serve_thinking_tokens_sum", key="alice") == 7
    assert total(samples, "s1serve_requests_running") == 0 and total(samples, "s1serve_requests_waiting") == 0


def test_text_log_lines() -> None:
    client, _, _, _ = build(log_json=False)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("s1serve.requests")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.post("/v1/chat/completions", json=CHAT)
    finally:
        logger.removeHandler(handler)
    [line] = records
    assert line.startswith("request_id=rejected-") and " status=401 " in line and " key=none " in line


def test_every_report_field_has_a_series_with_the_same_labels() -> None:
    metrics = Metrics("tiny", registry=CollectorRegistry())
    before = parse(generate_latest(metrics.registry).decode())
    assert total(before, "s1serve_grace_tokens_total", key="none") == 0  # created at 0 for rate()
    assert total(before, "s1serve_forcing_events_total", key="none", event="end_ignored") == 0
    report = ThinkingReport(thinking_tokens=20, waits_inserted=1, ends_ignored=3, grace_tokens=4, cut_tokens=5)
    report.inserted["cap_message"] = 6
    metrics.observe_choice(report, "alice", start=0.0, first_token=None, first_answer=None, end=1.0, output_tokens=20)
    samples = parse(generate_latest(metrics.registry).decode())
    assert total(samples, "s1serve_forcing_events_total", model="tiny", key="alice", event="end_ignored") == 3
    assert total(samples, "s1serve_grace_tokens_total", model="tiny", key="alice") == 4
    assert total(samples, "s1serve_cut_tokens_total", model="tiny", key="alice") == 5
    assert total(samples, "s1serve_inserted_tokens_total", model="tiny", key="alice", kind="cap_message") == 6


def test_the_body_is_parsed_once_and_the_budget_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import budget.spec

    client, inner, _, _ = build()
    parses: list[Any] = []
    validations: list[int] = []
    loads, validate = json.loads, budget.spec._validate
    monkeypatch.setattr(json, "loads", lambda text, **k: parses.append(text) or loads(text, **k))
    monkeypatch.setattr(budget.spec, "_validate", lambda spec: validations.append(1) or validate(spec))
    body = {**CHAT, "thinking_budget": {"max_tokens": 9, "min_tokens": 2}}
    assert client.post("/v1/chat/completions", json=body, headers=ALICE).status_code == 200
    assert inner.budgets[-1] is not None and (inner.budgets[-1].max_tokens, inner.budgets[-1].min_tokens) == (9, 2)
    # The request body: one parse by the gateway, one by the fake serving layer (vLLM's own);
    # the third parse is of the response, which gets the report.
    requests = [text for text in parses if b"thinking_budget" in bytes(text)]
    assert len(requests) == 1 and len(parses) == 3 and len(validations) == 1


def test_invocations_pass_the_gateway_as_the_protocol_their_body_speaks() -> None:
    client, inner, metrics, gate = build()
    r = client.post("/invocations", json={**CHAT, "thinking_budget": 6}, headers=ALICE)
    assert r.status_code == 200 and r.json()["choices"][0]["thinking"]["thinking_tokens"] == 7
    assert inner.budgets[-1] == BudgetSpec(max_tokens=6) and "thinking_budget" not in inner.bodies[-1]
    assert requests_total(metrics, endpoint="invocations", status="200", key="alice") == 1
    r = client.post("/invocations", json={"prompt": "x", "thinking_budget": {"max_tokens": -1}}, headers=ALICE)
    assert r.status_code == 400 and r.json()["error"]["param"] == "thinking_budget.max_tokens"
    gate.draining = True
    r = client.post("/invocations", json=CHAT, headers=ALICE)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert requests_total(metrics, endpoint="invocations", status="503") == 1
    assert len(inner.bodies) == 1

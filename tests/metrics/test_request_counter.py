"""Requests rejected before generation are counted and logged, without an engine.

The app is s1serve's own (routers, error handlers) with a stand-in state; its lifespan (the
engine) never runs, so the requests below end in validation, authentication or model checks.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from budget.formats import get_format
from server.app import create_app
from server.metrics import Metrics, RequestCounter
from server.state import ServerConfig, ServerState
from tests.metrics.scrape import parse, total

KEYS = {"sk-alice": "alice", "sk-bob": "bob"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def installs_request_counter(app) -> bool:
    return any(m.cls is RequestCounter for m in app.user_middleware)


def build(log_json: bool = True) -> tuple[TestClient, Metrics]:
    app = create_app(engine_args=None, config_overrides={}, thinking_format=None)
    if not installs_request_counter(app):
        app.add_middleware(RequestCounter)
    metrics = Metrics("tiny")
    config = ServerConfig(
        served_model_name="tiny", model_path="/models/tiny", thinking_format=get_format("s1"), api_keys=KEYS
    )
    config.log_json = log_json
    app.state.s1 = ServerState(
        config=config,
        engine=SimpleNamespace(errored=False),
        tokenizer=None,
        loop=None,
        metrics=metrics,
        max_model_len=1024,
        default_sampling={},
    )
    return TestClient(app), metrics


def requests_total(metrics: Metrics, **labels: str) -> float:
    from prometheus_client import generate_latest

    return total(parse(generate_latest(metrics.registry).decode()), "s1serve_requests_total", **labels)


def test_rejected_requests_are_counted_by_endpoint_status_and_key(caplog: pytest.LogCaptureFixture) -> None:
    client, metrics = build()
    alice = {"Authorization": "Bearer sk-alice"}
    with caplog.at_level(logging.INFO, logger="s1serve.requests"):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 401
        assert (
            client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert client.post("/v1/chat/completions", json={**CHAT, "model": "other"}, headers=alice).status_code == 404
        assert client.post("/v1/completions", json={"prompt": "x", "n": 0}, headers=alice).status_code == 400
        bob = {"Authorization": "Bearer sk-bob"}
        assert client.post("/v1/completions", json={"prompt": "x", "bogus": 1}, headers=bob).status_code == 400
        assert client.get("/v1/models", headers=alice).status_code == 200
        assert client.get("/health").status_code == 200  # not an API endpoint: not counted

    assert requests_total(metrics, endpoint="chat", status="401", key="none", finish_reason="error") == 2
    assert requests_total(metrics, endpoint="chat", status="404", key="alice", finish_reason="error") == 1
    assert requests_total(metrics, endpoint="completions", status="400", key="alice") == 1
    assert requests_total(metrics, endpoint="completions", status="400", key="bob") == 1
    assert requests_total(metrics, endpoint="models", status="200", key="alice", finish_reason="none") == 1
    assert requests_total(metrics) == 6

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "s1serve.requests"]
    assert [(r["endpoint"], r["status"], r["key"]) for r in lines] == [
        ("chat", 401, "none"),
        ("chat", 401, "none"),
        ("chat", 404, "alice"),
        ("completions", 400, "alice"),
        ("completions", 400, "bob"),
    ], "one log line per rejected generation request (none for /v1/models)"
    assert lines[0]["error"] == "invalid or missing API key"
    assert "does not exist" in lines[2]["error"]
    assert all(r["prompt_tokens"] == 0 and r["latency_s"] >= 0 and r["model"] == "tiny" for r in lines)
    assert not any("sk-" in json.dumps(r) for r in lines), "secrets never reach the log"


def test_text_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    client, _ = build(log_json=False)
    with caplog.at_level(logging.INFO, logger="s1serve.requests"):
        client.post("/v1/chat/completions", json=CHAT)
    [line] = [r.getMessage() for r in caplog.records if r.name == "s1serve.requests"]
    assert line.startswith("request_id=rejected-") and " status=401 " in line and " key=none " in line


def test_key_label_is_bounded_to_configured_names() -> None:
    client, metrics = build()
    for secret in ("sk-alice", "sk-bob", "made-up-1", "made-up-2", "sk-alice2"):
        client.post(
            "/v1/chat/completions", json={**CHAT, "model": "other"}, headers={"Authorization": f"Bearer {secret}"}
        )
    from prometheus_client import generate_latest

    samples = parse(generate_latest(metrics.registry).decode())
    keys = {dict(labels)["key"] for (_, labels) in samples if "key" in dict(labels)}
    assert keys == {"alice", "bob", "none"}


def test_app_factory_installs_the_request_counter() -> None:
    app = create_app(engine_args=None, config_overrides={}, thinking_format=None)
    assert installs_request_counter(app)

"""The OpenAI surface on a real server (tiny random s1-format model), driven by the openai SDK."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine

MESSAGES = [{"role": "user", "content": "What is the sum of two and three?"}]


def chat(client: openai.OpenAI, **kw):  # noqa: ANN201
    kw.setdefault("max_tokens", 200)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="tiny", messages=MESSAGES, **kw)


def thinking_span(ids: list[int], end_ids: list[int]) -> int:
    """Tokens before the first end delimiter in a completion."""
    for at in range(len(ids) - len(end_ids) + 1):
        if ids[at : at + len(end_ids)] == end_ids:
            return at
    raise AssertionError("no end delimiter in the completion")


def test_cap_is_exact_when_the_model_would_think_longer(tiny: openai.OpenAI, tiny_model: Path) -> None:
    # Masked until the cap (min == max, no wait text), the model cannot end early: it would think longer.
    for cap in (5, 17, 33):
        r = chat(
            tiny,
            extra_body={
                "thinking_budget": {"max_tokens": cap, "min_tokens": cap, "wait_text": ""},
                "return_token_ids": True,
            },
        )
        choice = r.model_dump()["choices"][0]
        assert choice["thinking"]["thinking_tokens"] == cap and choice["thinking"]["forced_end"]
        assert r.usage.completion_tokens_details.reasoning_tokens == cap
        tok_ids = choice["token_ids"]
        end = [AutoTokenizer.from_pretrained(tiny_model).convert_tokens_to_ids("<|im_start|>")]  # opens the delimiter
        assert thinking_span(tok_ids, end) in (cap, cap + 1)  # +1: the newline s1 adds before the delimiter
        assert choice["message"]["content"].startswith("Final Answer:")


def test_min_budget_no_end_before_min_tokens(tiny: openai.OpenAI) -> None:
    for floor in (50, 70):
        r = chat(
            tiny, extra_body={"thinking_budget": {"max_tokens": 150, "min_tokens": floor}, "return_token_ids": True}
        )
        report = r.model_dump()["choices"][0]["thinking"]
        assert report["thinking_tokens"] >= floor
        assert report["waits_inserted"] >= 1  # this model tries to stop after ~40 tokens
        assert "Wait" in r.choices[0].message.model_extra["reasoning_content"]


def test_reasoning_and_content_fields(tiny: openai.OpenAI) -> None:
    r = chat(tiny, extra_body={"thinking_budget": 10})
    msg = r.choices[0].message.model_extra
    assert msg["reasoning_content"] == msg["reasoning"] and msg["reasoning_content"]
    assert r.choices[0].message.content.startswith("Final Answer:")
    assert r.usage.completion_tokens_details.reasoning_tokens == 10
    # completion = thinking + delimiter tokens + answer (final-answer text included)
    report = r.model_dump()["choices"][0]["thinking"]
    assert r.usage.completion_tokens > report["thinking_tokens"] + report["answer_tokens"]


@pytest.mark.parametrize(
    "extra",
    [
        {"thinking_budget": 9},
        {"thinking_budget": {"max_tokens": 9}},
        {"max_thinking_tokens": 9},
        {"thinking_token_budget": 9},
        {"thinking": {"type": "enabled", "budget_tokens": 9}},
    ],
)
def test_budget_spellings_agree(tiny: openai.OpenAI, extra: dict) -> None:
    r = chat(tiny, extra_body={**extra, "return_token_ids": True})
    choice = r.model_dump()["choices"][0]
    assert choice["thinking"] == {
        "thinking_tokens": 9,
        "answer_tokens": choice["thinking"]["answer_tokens"],
        "waits_inserted": 0,
        "forced_end": True,
    }
    reference = chat(tiny, extra_body={"thinking_budget": 9, "return_token_ids": True}).model_dump()
    assert choice["token_ids"] == reference["choices"][0]["token_ids"]


def test_thinking_disabled_answers_at_once(tiny: openai.OpenAI) -> None:
    r = chat(tiny, extra_body={"thinking": {"type": "disabled"}})
    report = r.model_dump()["choices"][0]["thinking"]
    assert report["thinking_tokens"] == 0 and not report["forced_end"]
    assert r.choices[0].message.model_extra["reasoning_content"] == ""


def test_reasoning_effort_uses_server_caps(tiny: openai.OpenAI) -> None:
    # The server was started with --reasoning-effort-budgets low=7,medium=21.
    for effort, cap in (("low", 7), ("medium", 21)):
        r = chat(tiny, reasoning_effort=effort, extra_body={})
        assert r.usage.completion_tokens_details.reasoning_tokens == cap


def test_request_max_tokens_bounds_thinking_and_answer(tiny: openai.OpenAI) -> None:
    r = chat(tiny, max_tokens=30, extra_body={"thinking_budget": {"max_tokens": 100, "min_tokens": 100}})
    assert r.usage.completion_tokens == 30
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens_details.reasoning_tokens == 30


def _stream_text(stream) -> tuple[dict[int, str], dict[int, str], dict, list]:  # noqa: ANN001
    reasoning: dict[int, str] = {}
    content: dict[int, str] = {}
    reports: dict = {}
    usage = []
    for chunk in stream:
        if chunk.usage is not None:
            usage.append(chunk.usage)
        for c in chunk.choices:
            delta = c.delta.model_dump()
            reasoning[c.index] = reasoning.get(c.index, "") + (delta.get("reasoning_content") or "")
            content[c.index] = content.get(c.index, "") + (delta.get("content") or "")
            if c.finish_reason is not None:
                reports[c.index] = c.model_extra["thinking"]
    return reasoning, content, reports, usage


def test_streamed_deltas_concatenate_to_the_non_streamed_output(tiny: openai.OpenAI) -> None:
    budget = {"thinking_budget": {"max_tokens": 150, "min_tokens": 70}}
    full = chat(tiny, extra_body=budget)
    stream = chat(tiny, stream=True, stream_options={"include_usage": True}, extra_body=budget)
    reasoning, content, reports, usage = _stream_text(stream)
    assert reasoning[0] == full.choices[0].message.model_extra["reasoning_content"]
    assert content[0] == full.choices[0].message.content
    assert reports[0] == full.model_dump()["choices"][0]["thinking"]
    assert reports[0]["waits_inserted"] >= 1  # inserted text was streamed too
    assert len(usage) == 1 and usage[0].completion_tokens == full.usage.completion_tokens


def test_n2_budgets_each_choice(tiny: openai.OpenAI) -> None:
    r = chat(
        tiny,
        n=2,
        temperature=1.0,
        seed=3,
        extra_body={"thinking_budget": {"max_tokens": 40, "min_tokens": 40, "wait_text": ""}, "return_token_ids": True},
    )
    data = r.model_dump()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    for c in data["choices"]:
        assert c["thinking"]["thinking_tokens"] == 40 and c["thinking"]["forced_end"]
    assert data["usage"]["completion_tokens"] == sum(len(c["token_ids"]) for c in data["choices"])
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 80
    assert data["choices"][0]["token_ids"] != data["choices"][1]["token_ids"]

    stream = chat(
        tiny,
        n=2,
        temperature=1.0,
        seed=3,
        stream=True,
        extra_body={"thinking_budget": {"max_tokens": 40, "min_tokens": 40, "wait_text": ""}},
    )
    reasoning, content, reports, _ = _stream_text(stream)
    assert set(reports) == {0, 1} and all(rep["thinking_tokens"] == 40 for rep in reports.values())
    for c in r.choices:
        assert reasoning[c.index] == c.message.model_extra["reasoning_content"]
        assert content[c.index] == c.message.content


CAP8 = {"max_tokens": 8, "min_tokens": 8, "wait_text": ""}  # masked to the cap: the model cannot stop sooner


def test_completions_endpoint_with_budget(tiny: openai.OpenAI) -> None:
    r = tiny.completions.create(
        model="tiny", prompt="the sum of two", max_tokens=60, temperature=0, extra_body={"thinking_budget": CAP8}
    )
    choice = r.model_dump()["choices"][0]
    assert choice["thinking"]["thinking_tokens"] == 8 and choice["thinking"]["forced_end"]
    assert "<|im_start|>answer\nFinal Answer:" in choice["text"]
    streamed = "".join(
        c.choices[0].text
        for c in tiny.completions.create(
            model="tiny",
            prompt="the sum of two",
            max_tokens=60,
            temperature=0,
            stream=True,
            extra_body={"thinking_budget": CAP8},
        )
        if c.choices
    )
    assert streamed == choice["text"]


def test_logprobs_cover_every_completion_token(tiny: openai.OpenAI, tiny_model: Path) -> None:
    r = chat(tiny, max_tokens=40, logprobs=True, top_logprobs=3, extra_body={"thinking_budget": 5})
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens  # thinking, inserted and answer tokens alike
    generated = [e for e in entries if len(e.top_logprobs) == 3]
    assert generated and all(e.logprob <= 0 and e.logprob >= e.top_logprobs[-1].logprob for e in generated)
    # Inserted tokens (delimiter, "Final Answer:") are certain under the forcing policy: logprob 0, no rivals.
    inserted = [e for e in entries if len(e.top_logprobs) != 3]
    report = r.model_dump()["choices"][0]["thinking"]
    final = len(AutoTokenizer.from_pretrained(tiny_model).encode("Final Answer:", add_special_tokens=False))
    generated_answer = report["answer_tokens"] - final
    assert len(inserted) == r.usage.completion_tokens - report["thinking_tokens"] - generated_answer
    assert len(inserted) > final  # the end delimiter and the final-answer text
    assert all(e.logprob == 0.0 and [t.token for t in e.top_logprobs] == [e.token] for e in inserted)


BAD_REQUESTS = [
    ({"thinking_budget": {"max_tokens": 5, "min_tokens": 9}}, "thinking_budget.min_tokens"),
    ({"thinking_budget": {"max_tokens": -1}}, "thinking_budget.max_tokens"),
    ({"thinking_budget": -4}, "thinking_budget"),
    ({"thinking_budget": {"max_tokens": 10, "bogus": 1}}, "thinking_budget.bogus"),
    ({"thinking_budget": {"max_tokens": "ten"}}, "thinking_budget.max_tokens"),
    ({"thinking_budget": {"max_tokens": 100000}}, "thinking_budget.max_tokens"),
    ({"thinking_budget": 5, "thinking_token_budget": 5}, "thinking_token_budget"),
    ({"min_thinking_tokens": 9, "max_thinking_tokens": 5}, "min_thinking_tokens"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": 5000}, "max_tokens"),
    ({"max_tokens": None, "max_completion_tokens": 5000}, "max_completion_tokens"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, "messages"),  # longer than the context
]


@pytest.mark.parametrize(("extra", "param"), BAD_REQUESTS)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    tiny_server: ServerProcess, extra: dict, param: str
) -> None:
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 20, **extra}
    r = httpx.post(f"{tiny_server.base_url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and param in error["message"]
    assert error["type"] == "BadRequestError" and error["code"] == 400
    ok = httpx.post(
        f"{tiny_server.base_url}/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": MESSAGES,
            "max_tokens": 5,
            "temperature": 0,
            "thinking_budget": {"max_tokens": 3, "min_tokens": 3, "wait_text": ""},
        },
        timeout=60,
    )
    assert ok.status_code == 200 and ok.json()["choices"][0]["thinking"]["thinking_tokens"] == 3


def test_completions_prompt_longer_than_the_context_names_prompt(tiny_server: ServerProcess) -> None:
    body = {"model": "tiny", "prompt": "word " * 3000, "max_tokens": 5}
    r = httpx.post(f"{tiny_server.base_url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "prompt" and "context" in r.json()["error"]["message"]


def test_sdk_raises_bad_request(tiny: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        chat(tiny, extra_body={"thinking_budget": {"min_tokens": 9, "max_tokens": 1}})
    assert err.value.body["param"] == "thinking_budget.min_tokens"


def test_unknown_model_is_404(tiny: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        tiny.chat.completions.create(model="gpt-4", messages=MESSAGES, max_tokens=3)


def test_models_health_version(tiny: openai.OpenAI, tiny_server: ServerProcess) -> None:
    models = tiny.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert httpx.get(f"{tiny_server.base_url}/health").status_code == 200
    version = httpx.get(f"{tiny_server.base_url}/version").json()
    assert version["vllm"] == "0.32.0"
    assert version["thinking_format"] == "s1"  # read from the folder's s1serve.json


def test_unknown_fields_are_ignored_as_vllm_ignores_them(tiny: openai.OpenAI) -> None:
    """SDK and vLLM fields s1serve does not use pass to vLLM's serving layer instead of being refused."""
    r = chat(
        tiny,
        max_tokens=8,
        metadata={"k": "v"},
        store=False,
        parallel_tool_calls=False,
        logit_bias={"5": 1},
        extra_body={
            "unknown_field": 1,
            "min_tokens": 2,
            "skip_special_tokens": True,
            "thinking_budget": {"max_tokens": 3, "min_tokens": 3, "wait_text": ""},
        },
    )
    assert r.model_dump()["choices"][0]["thinking"]["thinking_tokens"] == 3


def _gauge(base_url: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == name)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def test_client_disconnect_aborts_the_generation(tiny_server: ServerProcess) -> None:
    """A non-streamed request whose client goes away stops using the engine.

    The client leaves as soon as the server reports the request running, so the test does not
    depend on how fast this machine decodes: the full request is far more work than that moment.
    """
    url = tiny_server.base_url
    n, budget = 32, 890
    body = json.dumps(
        {
            "model": "tiny",
            "messages": MESSAGES,
            "max_tokens": 900,
            "temperature": 1.0,  # vLLM refuses n > 1 with greedy sampling
            "n": n,
            "thinking_budget": {"max_tokens": budget, "min_tokens": budget, "wait_text": ""},
        }
    ).encode()
    host, port = urlsplit(url).hostname, urlsplit(url).port
    before = _gauge(url, "vllm:generation_tokens_total")
    with socket.create_connection((host, port), timeout=10) as client:
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        client.sendall(head.encode() + body)
        _wait_for(lambda: _gauge(url, "vllm:generation_tokens_total") > before, "the engine generates")
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(1)  # no response yet: the client leaves while the request is in flight
    _wait_for(lambda: _gauge(url, "s1serve_requests_running") == 0, "the server drops the request")
    _wait_for(lambda: _gauge(url, "vllm:num_requests_running") == 0, "the engine stops the sequences")
    settled = _gauge(url, "vllm:generation_tokens_total")
    time.sleep(1.0)
    assert _gauge(url, "vllm:generation_tokens_total") == settled  # nothing is generating any more
    assert settled - before < n * budget  # and the choices were cut short


def test_cap_message_sits_inside_the_cap_before_the_end(tiny: openai.OpenAI, tiny_model: Path) -> None:
    message = "Time is up, answering now."
    budget = {"max_tokens": 20, "min_tokens": 20, "wait_text": "", "cap_message": message}
    r = chat(tiny, extra_body={"thinking_budget": budget})
    report = r.model_dump()["choices"][0]["thinking"]
    reasoning = r.choices[0].message.model_extra["reasoning_content"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert report["thinking_tokens"] == 20 and report["forced_end"]  # the message fits inside the cap
    assert report["cap_message_tokens"] in (len(tok.encode(message)), len(tok.encode("\n" + message)))
    assert reasoning.rstrip().endswith(message)
    assert r.choices[0].message.content.startswith("Final Answer:")


def test_grace_tokens_extend_the_cap_and_stream_as_they_are_returned(tiny: openai.OpenAI) -> None:
    budget = {"thinking_budget": {"max_tokens": 10, "min_tokens": 10, "wait_text": "", "grace_tokens": 5}}
    full = chat(tiny, max_tokens=60, extra_body=budget)
    report = full.model_dump()["choices"][0]["thinking"]
    grace = report.get("grace_tokens", 0)
    assert 0 <= grace <= 5 and report["thinking_tokens"] == 10 + grace and report["forced_end"]
    reasoning, content, reports, _ = _stream_text(chat(tiny, max_tokens=60, stream=True, extra_body=budget))
    assert reasoning[0] == full.choices[0].message.model_extra["reasoning_content"]  # trimmed grace text only
    assert content[0] == full.choices[0].message.content and reports[0] == report


def test_invocations_pass_the_gateway_and_uncovered_routes_are_not_served(tiny_server: ServerProcess) -> None:
    """SageMaker's /invocations speaks chat (or completions) under the same budgets, reports and
    metrics; vLLM routes that would generate outside them, and its admin routes, are 404."""
    from tests.metrics.scrape import parse, total

    url = tiny_server.base_url

    def counted() -> float:
        return total(
            parse(httpx.get(f"{url}/metrics", timeout=10).text), "s1serve_requests_total", endpoint="invocations"
        )

    before = counted()
    body = {
        "messages": MESSAGES,
        "max_tokens": 60,
        "temperature": 0,
        "thinking_budget": {"max_tokens": 7, "min_tokens": 7},
    }
    r = httpx.post(f"{url}/invocations", json=body, timeout=120)
    assert r.status_code == 200
    choice = r.json()["choices"][0]
    assert choice["thinking"]["thinking_tokens"] == 7 and choice["message"]["content"].startswith("Final Answer:")
    r = httpx.post(f"{url}/invocations", json={**body, "thinking_budget": {"max_tokens": "lots"}}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "thinking_budget.max_tokens"
    assert counted() == before + 2
    for path in ("/v1/systemone", "/v1/chat/completions/batch", "/generative_scoring", "/scale_elastic_ep"):
        assert httpx.post(f"{url}{path}", json={}, timeout=10).status_code == 404, path
    assert "/v1/systemone" not in httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]

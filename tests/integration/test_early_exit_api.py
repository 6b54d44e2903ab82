"""`thinking_budget.early_exit` on every generation surface of a real server (tiny random s1 model).

The tiny model rarely closes a probe's `\\boxed{`, so these requests ask for agreement that
cannot come (`agree` above the number of probes): each must then be token-identical to the
same request without `early_exit`, with the probes seen only in the report and the metrics.
The exit itself is tested on an engine whose model closes braces (test_early_exit_engine.py).
Bodies go over plain HTTP so that each surface is read exactly as a client receives it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.server_process import ServerProcess
from tests.metrics.scrape import parse, total

pytestmark = pytest.mark.engine

PROMPT = "What is the sum of two and three?"
MESSAGES = [{"role": "user", "content": PROMPT}]
# The thinking must reach 48 tokens (the min budget), where the first probe is due.
BUDGET = {"max_tokens": 100, "min_tokens": 48, "wait_text": ""}
EARLY = {**BUDGET, "early_exit": {"every": 16, "agree": 99}}

SURFACES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 160}),
    "completions": ("/v1/completions", {"prompt": PROMPT, "max_tokens": 160}),
    "responses": ("/v1/responses", {"input": PROMPT, "max_output_tokens": 160}),
    "messages": ("/v1/messages", {"messages": MESSAGES, "max_tokens": 160}),
}


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json={"model": "tiny", "temperature": 0, **body}, timeout=120)


def report_of(surface: str, data: dict[str, Any]) -> dict[str, Any]:
    return data["choices"][0]["thinking"] if surface in ("chat", "completions") else data["thinking"]


def without_ids(surface: str, data: dict[str, Any]) -> Any:
    """The generated content and usage: what must not change when probes never agree."""
    if surface in ("chat", "completions"):
        return [{k: v for k, v in c.items() if k != "thinking"} for c in data["choices"]], data["usage"]
    if surface == "responses":
        return [{k: v for k, v in o.items() if k != "id"} for o in data["output"]], data["usage"]
    content = [{k: v for k, v in block.items() if k != "signature"} for block in data["content"]]  # signed anew
    return content, data["usage"], data["stop_reason"]


def probe_metrics(server: ServerProcess) -> tuple[float, float, float]:
    samples = parse(httpx.get(f"{server.base_url}/metrics", timeout=10).text)
    return (
        total(samples, "s1serve_probes_total"),
        total(samples, "s1serve_probe_tokens_total"),
        total(samples, "s1serve_forcing_events_total", event="early_exit"),
    )


@pytest.mark.parametrize("surface", SURFACES)
def test_probes_that_never_agree_change_nothing_but_the_report(tiny_server: ServerProcess, surface: str) -> None:
    path, body = SURFACES[surface]
    plain = post(tiny_server, path, {**body, "thinking_budget": BUDGET})
    assert plain.status_code == 200, plain.text
    before = probe_metrics(tiny_server)
    probed = post(tiny_server, path, {**body, "thinking_budget": EARLY})
    assert probed.status_code == 200, probed.text
    after = probe_metrics(tiny_server)

    assert without_ids(surface, probed.json()) == without_ids(surface, plain.json())
    report, plain_report = report_of(surface, probed.json()), report_of(surface, plain.json())
    assert "probes" not in plain_report and "early_exit" not in plain_report
    assert report["early_exit"] is False and report["forced_end"] == plain_report["forced_end"]
    due = [k for k in range(48, report["thinking_tokens"] + 1, 16) if k < 100]
    assert report["probes"] == len(due) >= 1
    assert report["probe_tokens"] >= report["probes"]  # each probe writes at least one token
    assert after[0] - before[0] == report["probes"] and after[1] - before[1] == report["probe_tokens"]
    assert after[2] == before[2]


def test_a_streamed_chat_shows_no_probe_and_bills_none(tiny_server: ServerProcess) -> None:
    path, body = SURFACES["chat"]
    plain = post(tiny_server, path, {**body, "thinking_budget": BUDGET}).json()
    stream_body = {**body, "thinking_budget": EARLY, "stream": True, "stream_options": {"include_usage": True}}
    reasoning, content, usage, report = "", "", None, None
    with httpx.stream("POST", f"{tiny_server.base_url}{path}", json={"model": "tiny", "temperature": 0, **stream_body},
                      timeout=120) as r:  # fmt: skip
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                delta = choice.get("delta") or {}
                reasoning += delta.get("reasoning_content") or ""
                content += delta.get("content") or ""
                report = choice.get("thinking") or report
    message = plain["choices"][0]["message"]
    assert (reasoning, content) == (message["reasoning_content"], message["content"])
    counts = ("prompt_tokens", "completion_tokens", "total_tokens", "completion_tokens_details")
    assert usage is not None and {k: usage[k] for k in counts} == {k: plain["usage"][k] for k in counts}
    assert report is not None and report["probes"] >= 1 and report["early_exit"] is False


def test_vllm_xargs_carries_early_exit(tiny_server: ServerProcess) -> None:
    path, body = SURFACES["chat"]
    xargs = {"vllm_xargs": {"s1serve_budget": json.dumps(EARLY)}}
    r = post(tiny_server, path, {**body, **xargs})
    assert r.status_code == 200, r.text
    assert report_of("chat", r.json())["probes"] >= 1


@pytest.mark.parametrize(
    ("early_exit", "param"),
    [
        ({"every": 8}, "thinking_budget.early_exit.every"),
        ({"agree": 0}, "thinking_budget.early_exit.agree"),
        ({"sometimes": 1}, "thinking_budget.early_exit.sometimes"),
        ("yes", "thinking_budget.early_exit"),
    ],
)
def test_bad_early_exit_values_are_400s_naming_the_field(
    tiny_server: ServerProcess, early_exit: Any, param: str
) -> None:
    for surface in ("chat", "messages"):
        path, body = SURFACES[surface]
        r = post(tiny_server, path, {**body, "thinking_budget": {"max_tokens": 20, "early_exit": early_exit}})
        assert r.status_code == 400, r.text
        assert param in r.text
    path, body = SURFACES["chat"]
    harness = {"max_tokens": 20, "profile": "harness", "early_exit": True}
    r = post(tiny_server, path, {**body, "thinking_budget": harness})
    assert r.status_code == 400 and "thinking_budget.early_exit" in r.text
    assert post(tiny_server, path, {**body, "thinking_budget": 5}).status_code == 200  # still serving

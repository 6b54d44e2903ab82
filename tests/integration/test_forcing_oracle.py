"""The server's token ids against the port of s1's evaluation harness, over HTTP.

The port is benchmarks/harness_port.py; tests/oracle/ runs it.

Every oracle case on the tiny s1-format model: under the default (exact) profile the served ids
are what docs/fidelity.md says the exact profile returns for that harness run (identical to the
harness except the documented cases); with `"profile": "harness"` they are the harness's ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from transformers import AutoTokenizer

from tests.oracle.results import oracle_results
from tests.oracle.run import CASE_NAMES, MESSAGES

pytestmark = pytest.mark.engine

FORCED = [name for name in CASE_NAMES if name != "no-budget"]


@pytest.fixture(scope="module")
def oracle(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return oracle_results(tiny_model, "s1", tmp_path_factory)


def served(client: openai.OpenAI, budget: dict[str, Any] | None, max_tokens: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"return_token_ids": True}
    if budget is not None:
        extra["thinking_budget"] = budget
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=max_tokens, temperature=0, extra_body=extra
    )
    return response.model_dump()


def test_plain_request_equals_the_harness_without_thinking_kwargs(
    oracle: dict[str, Any], tiny: openai.OpenAI, tiny_model: Path
) -> None:
    case = oracle["cases"]["no-budget"]
    out = served(tiny, None, case["max_gen"])
    assert out["prompt_token_ids"] == oracle["prompt"]
    assert out["choices"][0]["token_ids"] == case["port"]["completion"]


@pytest.mark.parametrize("name", FORCED)
def test_default_profile_serves_the_documented_ids(
    oracle: dict[str, Any], tiny: openai.OpenAI, tiny_model: Path, name: str
) -> None:
    case = oracle["cases"][name]
    out = served(tiny, case["budget"], case["max_gen"])
    opener = AutoTokenizer.from_pretrained(tiny_model).encode("<|im_start|>think", add_special_tokens=False)
    assert out["prompt_token_ids"] == oracle["prompt"] + opener  # the bare opener, as the harness appends it
    choice = out["choices"][0]
    assert choice["token_ids"] == case["expected_exact"]
    assert choice["thinking"]["thinking_tokens"] == case["exact"]["report"]["thinking_tokens"]
    assert choice["thinking"]["waits_inserted"] == case["exact"]["report"]["waits_inserted"]


@pytest.mark.parametrize("name", FORCED)
def test_harness_profile_serves_the_harness_ids(oracle: dict[str, Any], tiny: openai.OpenAI, name: str) -> None:
    case = oracle["cases"][name]
    out = served(tiny, {**case["budget"], "profile": "harness"}, case["max_gen"])
    assert out["choices"][0]["token_ids"] == case["port"]["completion"]
    assert out["choices"][0]["thinking"]["thinking_tokens"] == len(case["port"]["thinking"])


def test_these_cases_run_on_sessions(oracle: dict[str, Any], tiny: openai.OpenAI, tiny_server) -> None:  # noqa: ANN001
    """The tiny s1 model's trigger is one token: the server forces on sessions, one engine
    request per choice (the resubmission path runs the same cases in test_sessions.py)."""
    import httpx

    def engine_requests() -> dict[str, float]:
        text = httpx.get(f"{tiny_server.base_url}/metrics").text
        out = {}
        for line in text.splitlines():
            if line.startswith("s1serve_forcing_engine_requests_total{"):
                out[line.split('kind="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        return out

    assert httpx.get(f"{tiny_server.base_url}/version").json()["forcing"] == "sessions"
    case = oracle["cases"]["ignore-3"]
    before = engine_requests()
    out = served(tiny, case["budget"], case["max_gen"])
    after = engine_requests()
    assert out["choices"][0]["thinking"]["waits_inserted"] == 3
    assert (after["session"] - before["session"], after["round"] - before["round"]) == (1, 0)


@pytest.mark.parametrize("name", ["ignore-3", "cap-after-wait", "auto-ignore-2", "exact-fill", "long-wait"])
def test_harness_profile_streams_the_harness_ids(oracle: dict[str, Any], tiny: openai.OpenAI, name: str) -> None:
    """Streamed under `harness`. The harness never streams (it calls `vllm.LLM.generate`), so the
    oracle is its whole output: the streamed ids, joined in order, are exactly the harness's ids,
    including the cases whose rounds the cap may cut and which the server holds back until they settle."""
    case = oracle["cases"][name]
    stream = tiny.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=case["max_gen"],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"return_token_ids": True, "thinking_budget": {**case["budget"], "profile": "harness"}},
    )
    ids: list[int] = []
    reports, usage = [], None
    for chunk in stream:
        data = chunk.model_dump()
        for choice in data["choices"]:
            ids += choice.get("token_ids") or []
            if choice.get("thinking") is not None:
                reports.append(choice["thinking"])
        usage = data.get("usage") or usage
    port = case["port"]
    assert ids == port["completion"]
    assert len(reports) == 1 and reports[0]["thinking_tokens"] == len(port["thinking"])
    assert usage is not None and usage["completion_tokens"] == len(port["completion"])

"""End to end on the embedded default model (SmolLM2-135M-Instruct), started with no --model."""

from __future__ import annotations

import openai
import pytest
from transformers import AutoTokenizer

from server.default_model import ensure_default_model

pytestmark = pytest.mark.engine


def test_default_model_is_served_in_think_format_on_sessions(smol: openai.OpenAI, smol_server) -> None:  # noqa: ANN001
    import httpx

    model = smol.models.list().data[0]
    assert model.id == "SmolLM2-135M-Instruct"
    version = httpx.get(f"{smol_server.base_url}/version").json()
    assert version["thinking_format"] == "think"
    # `</think>` is one token in the converted tokenizer, so forced choices run as sessions.
    assert version["forcing"] == "sessions"
    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    assert [len(tok.encode(t, add_special_tokens=False)) for t in ("<think>", "</think>")] == [1, 1]


def test_cap_binds_on_a_model_that_would_think_longer(smol: openai.OpenAI) -> None:
    response = smol.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "Write a long, detailed story about a dragon and a knight."}],
        max_tokens=120,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 24}, "return_token_ids": True},
    )
    data = response.model_dump()
    choice = data["choices"][0]
    assert choice["thinking"]["thinking_tokens"] == 24 and choice["thinking"]["forced_end"]
    assert choice["message"]["content"].startswith("Final Answer:")
    # On token ids: 24 thinking tokens, then (a newline and) the `</think>` delimiter.
    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    end = tok.encode("</think>", add_special_tokens=False)
    ids = choice["token_ids"]
    assert ids[24 : 24 + len(end)] == end or ids[25 : 25 + len(end)] == end
    opener = tok.encode("<think>", add_special_tokens=False)  # the bare start delimiter, as s1's harness appends it
    assert data["prompt_token_ids"][-len(opener) :] == opener


def test_min_budget_inserts_waits_on_the_default_model(smol: openai.OpenAI) -> None:
    # The README's example request.
    response = smol.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
        max_tokens=200,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 96, "min_tokens": 48, "wait_text": "Wait"}},
    )
    report = response.model_dump()["choices"][0]["thinking"]
    reasoning = response.choices[0].message.model_extra["reasoning_content"]
    assert report["thinking_tokens"] >= 48
    assert report["waits_inserted"] >= 1 and reasoning.count("Wait") >= report["waits_inserted"]


def test_streaming_matches_the_full_response(smol: openai.OpenAI) -> None:
    """Streamed deltas of a forced session add up to the full response; no delimiter shows."""
    kwargs = dict(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "What is 7 * 6?"}],
        max_tokens=160,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 80, "min_tokens": 40}},
    )
    full = smol.chat.completions.create(**kwargs)
    reasoning = content = ""
    for chunk in smol.chat.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            delta = c.delta.model_dump()
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
    assert reasoning == full.choices[0].message.model_extra["reasoning_content"]
    assert content == full.choices[0].message.content
    assert "</think" not in reasoning + content and "<think" not in reasoning

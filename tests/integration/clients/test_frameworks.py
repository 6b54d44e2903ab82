"""Client compatibility: the anthropic SDK, langchain, litellm, lm-eval, tokenize (see common.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx
import pytest
from transformers import PreTrainedTokenizerBase

from tests.integration.clients.common import (
    EFFORT_CAPS,
    MESSAGES,
    MODEL,
    Verdict,
)
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine


# -- anthropic SDK ------------------------------------------------------------------------------
def _anthropic_stream(claude: anthropic.Anthropic, **kwargs: Any) -> tuple[str, str, dict[str, Any], Any]:
    """(thinking text, answer text, `thinking` report, usage) from a streamed /v1/messages."""
    thinking, text, report, usage = "", "", None, None
    for event in claude.messages.create(stream=True, **kwargs):
        if event.type == "content_block_delta":
            if event.delta.type == "thinking_delta":
                thinking += event.delta.thinking
            elif event.delta.type == "text_delta":
                text += event.delta.text
        elif event.type == "message_delta":
            report, usage = (event.model_extra or {}).get("thinking"), event.usage
    assert report is not None, "the message_delta event carries the thinking report"
    return thinking, text, report, usage


def _blocks(message: Any) -> tuple[str, str]:
    thinking = "".join(b.thinking for b in message.content if b.type == "thinking")
    text = "".join(b.text for b in message.content if b.type == "text")
    return thinking, text


@pytest.mark.parametrize("budget", [0, 12])
def test_anthropic_thinking_cap_is_exact(claude: anthropic.Anthropic, natural_thinking: int, budget: int) -> None:
    """budget_tokens below Anthropic's 1024 minimum is accepted, and the cap is exact."""
    assert budget < natural_thinking
    kwargs: dict[str, Any] = dict(
        model=MODEL,
        max_tokens=60,
        messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": budget},
        extra_body={"temperature": 0},
    )
    m = claude.messages.create(**kwargs)
    report = m.model_extra["thinking"]
    assert report["thinking_tokens"] == budget and report["forced_end"]
    assert m.usage.output_tokens <= 60 and m.stop_reason in ("max_tokens", "end_turn")
    thinking, text, streamed_report, usage = _anthropic_stream(claude, **kwargs)
    assert streamed_report == report
    assert (thinking, text) == _blocks(m)
    assert usage.output_tokens == m.usage.output_tokens
    with claude.messages.stream(**kwargs) as stream:  # the SDK's own accumulation of the events
        assert _blocks(stream.get_final_message()) == _blocks(m)


def test_anthropic_thinking_and_text_blocks(claude: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = dict(
        model=MODEL,
        max_tokens=60,
        messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 12},
        extra_body={"temperature": 0},
    )
    m = claude.messages.create(**kwargs)
    assert [b.type for b in m.content] == ["thinking", "text"]
    thinking, text = _blocks(m)
    assert "Final Answer" not in thinking and "answer" not in thinking.split("\n")
    assert text.startswith("Final Answer:")
    streamed_thinking, streamed_text, _, _ = _anthropic_stream(claude, **kwargs)
    assert (streamed_thinking, streamed_text) == (thinking, text)
    disabled = claude.messages.create(**{**kwargs, "thinking": {"type": "disabled"}})
    assert [b.type for b in disabled.content] == ["text"]


def test_anthropic_thinking_disabled(claude: anthropic.Anthropic) -> None:
    m = claude.messages.create(
        model=MODEL, max_tokens=20, messages=MESSAGES, thinking={"type": "disabled"}, extra_body={"temperature": 0}
    )
    report = m.model_extra["thinking"]
    assert report["thinking_tokens"] == 0 and not report["forced_end"]


def test_anthropic_count_tokens_matches_the_prompt(claude: anthropic.Anthropic, server: ServerProcess) -> None:
    counted = claude.messages.count_tokens(model=MODEL, messages=MESSAGES)
    rendered = httpx.post(
        f"{server.base_url}/tokenize",
        json={"model": MODEL, "messages": MESSAGES, "add_generation_prompt": True},
        timeout=30,
    ).json()
    assert counted.input_tokens == rendered["count"]
    m = claude.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES, extra_body={"temperature": 0})
    assert counted.input_tokens == m.usage.input_tokens


def test_anthropic_count_tokens_with_thinking_matches_create(claude: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 4}
    counted = claude.messages.count_tokens(model=MODEL, messages=MESSAGES, thinking=thinking)
    m = claude.messages.create(
        model=MODEL, max_tokens=30, messages=MESSAGES, thinking=thinking, extra_body={"temperature": 0}
    )
    assert counted.input_tokens == m.usage.input_tokens


# -- langchain-openai ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_model(server: ServerProcess, no_whitespace: dict[str, int]) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL,
        base_url=f"{server.base_url}/v1",
        api_key="unused",
        max_tokens=150,
        temperature=0,
        max_retries=0,
        logit_bias={int(k): v for k, v in no_whitespace.items()},
        extra_body={"thinking_budget": {"max_tokens": 6, "min_tokens": 6, "wait_text": ""}},
    )


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(chat_model: Any, method: str) -> None:
    structured = chat_model.with_structured_output(Verdict, method=method, strict=True, include_raw=True)
    out = structured.invoke("Is two plus three five?")
    assert out["parsing_error"] is None
    assert isinstance(out["parsed"], Verdict)
    usage = out["raw"].response_metadata["token_usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 6
    if method == "function_calling":
        assert [call["name"] for call in out["raw"].tool_calls] == ["Verdict"]


def test_langchain_bind_tools(chat_model: Any) -> None:
    def get_weather(city: Literal["Paris", "Rome"]) -> str:
        """The weather in a city."""
        return "sunny"

    message = chat_model.bind_tools([get_weather], tool_choice="get_weather", strict=True).invoke(
        "What is the weather in Paris?"
    )
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]
    assert message.tool_calls[0]["args"]["city"] in ("Paris", "Rome")
    assert message.response_metadata["token_usage"]["completion_tokens_details"]["reasoning_tokens"] == 6


# -- litellm ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def litellm_module() -> Any:
    # The bundled model price list: litellm would otherwise fetch it from the network at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


@pytest.mark.parametrize(
    ("kwargs", "cap"),
    [
        # litellm passes `thinking` to OpenAI-compatible servers when it is named as allowed.
        ({"thinking": {"type": "enabled", "budget_tokens": 9}, "allowed_openai_params": ["thinking"]}, 9),
        ({"reasoning_effort": "minimal"}, EFFORT_CAPS["minimal"]),
    ],
    ids=["thinking", "reasoning_effort"],
)
def test_litellm_budget_applies(
    litellm_module: Any, server: ServerProcess, natural_thinking: int, kwargs: dict[str, Any], cap: int
) -> None:
    assert cap < natural_thinking
    r = litellm_module.completion(
        model=f"openai/{MODEL}",
        api_base=f"{server.base_url}/v1",
        api_key="unused",
        messages=MESSAGES,
        max_tokens=40,
        temperature=0,
        **kwargs,
    )
    assert r.usage.completion_tokens_details.reasoning_tokens == cap
    assert r.choices[0].message.reasoning_content
    assert r.choices[0].message.content.startswith("Final Answer:")


# -- lm-evaluation-harness ----------------------------------------------------------------------
def test_lm_eval_local_completions_loglikelihood(
    server: ServerProcess, tiny_model: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring by echoed prompt logprobs, checked against the model run locally in transformers.

    Two one-token continuations: the model's greedy next token (is_greedy must be True) and
    another one (False, and less likely).
    """
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    context = "What is the sum of two and three?"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ctx_ids = tokenizer.encode(context, add_special_tokens=False)
    with torch.no_grad():
        next_logp = model(torch.tensor([ctx_ids])).logits[0, -1].log_softmax(-1)
    # Candidates in order of likelihood whose text tokenizes back to exactly that one token after the context.
    candidates = [
        (int(i), tokenizer.decode([int(i)]))
        for i in next_logp.argsort(descending=True)[:50]
        if int(i) < len(tokenizer)
        and tokenizer.encode(context + tokenizer.decode([int(i)]), add_special_tokens=False) == [*ctx_ids, int(i)]
    ]
    greedy_id = int(next_logp[: len(tokenizer)].argmax())
    assert candidates[0][0] == greedy_id, "the greedy token's text round-trips"
    other_id, other = candidates[-1]

    lm = LocalCompletionsAPI(
        base_url=f"{server.base_url}/v1/completions",
        model=MODEL,
        tokenizer_backend="huggingface",
        tokenizer=str(tiny_model),
        max_length=1024,
        max_retries=1,
    )
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(context, cont), idx=n)
        for n, cont in enumerate([candidates[0][1], other])
    ]
    (greedy_ll, greedy_flag), (other_ll, other_flag) = lm.loglikelihood(requests, disable_tqdm=True)
    assert math.isfinite(greedy_ll) and math.isfinite(other_ll)
    assert greedy_flag is True and other_flag is False
    assert greedy_ll == pytest.approx(float(next_logp[greedy_id]), abs=1e-3)
    assert other_ll == pytest.approx(float(next_logp[other_id]), abs=1e-3)
    assert other_ll < greedy_ll


# -- /tokenize and /detokenize ------------------------------------------------------------------
def test_tokenize_detokenize_round_trip(server: ServerProcess, tokenizer: PreTrainedTokenizerBase) -> None:
    url = server.base_url
    text = "What is the sum of two and three? Wait, let me verify."
    tokens = httpx.post(f"{url}/tokenize", json={"model": MODEL, "prompt": text}, timeout=30).json()
    assert tokens["tokens"] == tokenizer.encode(text, add_special_tokens=False)
    assert tokens["count"] == len(tokens["tokens"]) and tokens["max_model_len"] == 1024
    back = httpx.post(f"{url}/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}, timeout=30).json()
    assert back["prompt"] == text

    chat = httpx.post(
        f"{url}/tokenize",
        json={"model": MODEL, "messages": MESSAGES, "add_generation_prompt": True, "return_token_strs": True},
        timeout=30,
    ).json()
    rendered = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert chat["tokens"] == tokenizer.encode(rendered, add_special_tokens=False)
    assert "".join(chat["token_strs"]) == "".join(tokenizer.convert_ids_to_tokens(chat["tokens"]))

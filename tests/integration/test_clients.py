"""Client compatibility: the official SDKs and common frameworks against a real s1serve.

One server for the module: the tiny random s1-format model with hermes tool calling and
effort caps small enough to bind (`minimal=5,low=7,medium=21`). Every cap asserted here is
below the length the greedy model thinks on its own (`natural_thinking`), so an exact count
shows the budget was applied, not that the model happened to stop there.

A random model under a grammar may write whitespace forever (JSON allows it between any two
tokens), so the structured-output requests bias whitespace tokens away with `logit_bias`: the
grammar still decides what is allowed, the bias only makes the model close the JSON quickly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine

MODEL = "tiny"
QUESTION = "What is two plus three?"
MESSAGES = [{"role": "user", "content": QUESTION}]
EFFORT_CAPS = {"minimal": 5, "low": 7, "medium": 21}  # the tiny server's --reasoning-effort-budgets
# Thinking of exactly N tokens: the end is masked until the cap (no wait text), then forced.
EXACT = {"max_tokens": 8, "min_tokens": 8, "wait_text": ""}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "strict": True,  # vLLM constrains the arguments to the schema only for strict tools
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class Verdict(BaseModel):
    """Whether a statement is correct: a boolean, so even a random model closes the JSON at once."""

    correct: bool


class Color(BaseModel):
    color: Literal["red", "green"]


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_server: ServerProcess) -> ServerProcess:
    """The session's tiny server: it runs with hermes tool parsing and minimal/low/medium effort caps."""
    return tiny_server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server: ServerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def no_whitespace(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """logit_bias that pushes every whitespace-only token down (see the module docstring)."""
    ids = [i for i in range(len(tokenizer)) if (s := tokenizer.decode([i])) and not s.strip()]
    assert ids, "the byte-level vocabulary has whitespace tokens"
    return {str(i): -100 for i in ids}


@pytest.fixture(scope="module")
def natural_thinking(client: openai.OpenAI) -> int:
    """How many tokens the greedy model thinks on QUESTION when nothing stops it.

    A cap below this binds: with greedy decoding the capped request thinks the same tokens up
    to the cap, so its report must say exactly the cap.
    """
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=200,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 190}},
    )
    report = r.model_dump()["choices"][0]["thinking"]
    assert not report["forced_end"], "the model ends its thinking on its own within the budget"
    assert report["thinking_tokens"] > max(EFFORT_CAPS.values()), report
    return report["thinking_tokens"]


def report_of(choice: Any) -> dict[str, Any]:
    """The per-choice `thinking` report, an extra field the SDK keeps in model_extra."""
    return choice.model_extra["thinking"]


# -- openai SDK: tools, structured outputs, parse() ---------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "named"],
)
def test_tool_call_after_forced_thinking(
    client: openai.OpenAI, no_whitespace: dict[str, int], tool_choice: Any, stream: bool
) -> None:
    """The thinking is cut at the cap, then the answer is a tool call whose arguments are JSON."""
    kwargs: dict[str, Any] = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
        max_tokens=200,
        temperature=0,
        logit_bias=no_whitespace,
        extra_body={"thinking_budget": EXACT},
    )
    if stream:
        names, arguments, content, report, finish = [], "", "", None, None
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            for c in chunk.choices:
                content += c.delta.content or ""
                for call in c.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names.append(call.function.name)
                    arguments += (call.function.arguments or "") if call.function else ""
                if c.finish_reason is not None:
                    report, finish = report_of(c), c.finish_reason
    else:
        r = client.chat.completions.create(**kwargs)
        choice = r.choices[0]
        calls = choice.message.tool_calls or []
        names = [call.function.name for call in calls]
        arguments = "".join(call.function.arguments for call in calls)
        content, report, finish = choice.message.content or "", report_of(choice), choice.finish_reason
        assert r.usage.completion_tokens_details.reasoning_tokens == EXACT["max_tokens"]
    assert report is not None and report["thinking_tokens"] == EXACT["max_tokens"] and report["forced_end"]
    assert finish in ("tool_calls", "stop"), finish  # closed by the grammar, not cut by max_tokens
    assert names == ["get_weather"]
    assert json.loads(arguments)["city"] in ("Paris", "Rome")
    assert "Final Answer" not in content  # the grammar owns the answer: no inserted text before the call


def test_response_format_json_schema_answer_is_only_the_json(
    client: openai.OpenAI, no_whitespace: dict[str, int]
) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=100,
        temperature=0,
        logit_bias=no_whitespace,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "color", "schema": Color.model_json_schema(), "strict": True},
        },
        extra_body={"thinking_budget": EXACT},
    )
    choice = r.choices[0]
    assert report_of(choice)["thinking_tokens"] == EXACT["max_tokens"] and report_of(choice)["forced_end"]
    assert choice.message.model_extra["reasoning_content"]
    assert Color.model_validate_json(choice.message.content).color in ("red", "green")  # nothing but the JSON


@pytest.mark.parametrize("helper", ["chat.completions.parse", "beta.chat.completions.parse"])
def test_sdk_parse_with_a_binding_cap(client: openai.OpenAI, no_whitespace: dict[str, int], helper: str) -> None:
    parse: Any = client
    for part in helper.split("."):
        parse = getattr(parse, part, None)
    if parse is None:
        pytest.skip(f"this openai SDK has no client.{helper}()")
    cap = 6
    r = parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Is two plus three five?"}],
        response_format=Verdict,
        max_tokens=60,
        temperature=0,
        logit_bias=no_whitespace,
        extra_body={"thinking_budget": {"max_tokens": cap, "min_tokens": cap, "wait_text": ""}},
    )
    choice = r.choices[0]
    assert isinstance(choice.message.parsed, Verdict)
    assert r.usage.completion_tokens_details.reasoning_tokens == cap
    assert report_of(choice)["thinking_tokens"] == cap


# -- openai SDK: Responses API ------------------------------------------------------------------
def _responses_text(r: Any) -> tuple[str, str]:
    """(reasoning text, answer text) of a Responses API result."""
    reasoning = "".join(part.text for item in r.output if item.type == "reasoning" for part in (item.content or []))
    return reasoning, r.output_text


def test_responses_reasoning_effort_uses_the_server_cap(client: openai.OpenAI, natural_thinking: int) -> None:
    r = client.responses.create(
        model=MODEL, input=QUESTION, reasoning={"effort": "low"}, max_output_tokens=40, temperature=0
    )
    cap = EFFORT_CAPS["low"]
    assert r.model_extra["thinking"]["thinking_tokens"] == cap < natural_thinking
    assert r.model_extra["thinking"]["forced_end"]
    assert r.usage.output_tokens_details.reasoning_tokens == cap
    reasoning, answer = _responses_text(r)
    assert reasoning and answer.startswith("Final Answer:")


def test_responses_budget_in_extra_body(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model=MODEL,
        input=QUESTION,
        max_output_tokens=40,
        temperature=0,
        extra_body={"thinking_budget": {"max_tokens": 9, "min_tokens": 9, "wait_text": ""}},
    )
    assert r.model_extra["thinking"]["thinking_tokens"] == 9
    assert r.usage.output_tokens_details.reasoning_tokens == 9
    assert _responses_text(r)[1].startswith("Final Answer:")


# -- openai SDK: fields the server does not act on, and vLLM's extras ----------------------------
def test_unknown_sdk_fields_are_accepted(client: openai.OpenAI) -> None:
    """Fields OpenAI clients send by default or habit must not turn a request into a 400."""
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=30,
        temperature=0,
        metadata={"team": "search"},
        store=False,
        parallel_tool_calls=False,
        service_tier="auto",
        user="user-1",
        logit_bias={"0": 0},
        extra_body={
            "thinking_budget": {"max_tokens": 5, "min_tokens": 5, "wait_text": ""},
            "min_tokens": 1,
            "skip_special_tokens": False,
            "include_stop_str_in_output": False,
        },
    )
    assert report_of(r.choices[0])["thinking_tokens"] == 5
    assert r.usage.completion_tokens_details.reasoning_tokens == 5
    assert r.choices[0].message.content.startswith("Final Answer:")


def test_explicit_skip_special_tokens_keeps_the_answer_in_content(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=40,
        temperature=0,
        extra_body={
            "thinking_budget": {"max_tokens": 5, "min_tokens": 5, "wait_text": ""},
            "skip_special_tokens": True,
        },
    )
    message = r.choices[0].message
    assert report_of(r.choices[0])["thinking_tokens"] == 5
    assert "Final Answer" not in message.model_extra["reasoning_content"]
    assert message.content is not None and message.content.startswith("Final Answer:")


@pytest.mark.parametrize("include", [True, False])
def test_logit_bias_and_stop_apply_in_the_forced_rounds(
    client: openai.OpenAI, tokenizer: PreTrainedTokenizerBase, include: bool
) -> None:
    """A +100 bias makes the model write one token only, thinking and answer alike; the stop
    string ends the answer (not the thinking, which holds it too), with or without itself."""
    (bang,) = tokenizer.encode("!", add_special_tokens=False)
    cap = 6
    r = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=40,
        temperature=0,
        logit_bias={str(bang): 100},
        stop=["!!!"],
        extra_body={
            "thinking_budget": {"max_tokens": cap, "min_tokens": cap, "wait_text": ""},
            "include_stop_str_in_output": include,
        },
    )
    choice = r.choices[0]
    assert choice.message.model_extra["reasoning_content"].strip() == "!" * cap
    assert choice.message.content == "Final Answer:" + ("!!!" if include else "")
    assert choice.finish_reason == "stop"


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

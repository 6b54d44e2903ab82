"""Client compatibility, the openai SDK: tools, structured outputs, parse(), Responses (see common.py)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from transformers import PreTrainedTokenizerBase

from tests.integration.clients.common import (
    EFFORT_CAPS,
    EXACT,
    MESSAGES,
    MODEL,
    QUESTION,
    WEATHER_TOOL,
    Color,
    Verdict,
    report_of,
)

pytestmark = pytest.mark.engine


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

"""The budget fields and report in the OpenAPI document match what the code accepts and sends."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from budget.controller import ThinkingReport
from budget.schema import key_schema, sampling_schema, thinking_budget_schema
from budget.spec import REQUEST_KEYS, SAMPLING_RANGES, BudgetError, BudgetSpec, declared, parse_thinking_budget
from server.http.openapi import REPORT_PROPERTIES, document_budget, thinking_report_schema

DOCS_API = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def accepted(value: Any) -> bool:
    try:
        parse_thinking_budget(value)
    except BudgetError:
        return False
    return True


def test_every_key_of_the_budget_object_is_documented() -> None:
    budget_object = next(b for b in thinking_budget_schema()["anyOf"] if b.get("type") == "object")
    assert list(budget_object["properties"]) == list(REQUEST_KEYS)
    assert set(sampling_schema()["properties"]) == set(SAMPLING_RANGES)


def test_one_declaration_gives_the_keys_the_schema_and_the_docs_table() -> None:
    """BudgetSpec's fields are the one source: the accepted keys, each key's schema (with the
    field's own default and description) and the docs table's rows all follow from them."""
    request_fields = [f for f in declared() if f.metadata["key"].request]
    assert list(REQUEST_KEYS) == [f.name for f in request_fields]
    for f in request_fields:
        schema = key_schema(f.name)
        assert schema["description"] == f.metadata["key"].description
        if "default" in schema:
            assert schema["default"] == f.default
            assert getattr(parse_thinking_budget({f.name: f.default}), f.name) == f.default
    flags = {f.name for f in declared()} - set(REQUEST_KEYS)
    assert flags == {"enabled", "fit_to_context"}  # set by other spellings and the server only
    for flag in flags:
        with pytest.raises(BudgetError) as err:
            parse_thinking_budget({flag: True})
        assert err.value.param == f"thinking_budget.{flag}"
    documented = set(re.findall(r"^\| `thinking_budget\.(\w+)`", DOCS_API.read_text(), re.MULTILINE))
    assert documented == set(REQUEST_KEYS), "docs/api.md's table lists exactly the declared keys"


def test_a_spec_names_the_field_the_client_sent_in_every_error() -> None:
    names = {"max_tokens": "max_thinking_tokens", "min_tokens": "min_thinking_tokens"}
    spec = BudgetSpec(max_tokens=50, names=names)
    with pytest.raises(BudgetError) as err:
        spec.check_context(10)
    assert err.value.param == "max_thinking_tokens" and "thinking_budget" not in err.value.message
    with pytest.raises(BudgetError) as err:
        BudgetSpec(max_tokens=3, min_tokens=4, names=names)
    assert err.value.param == "min_thinking_tokens" and "max_thinking_tokens (3)" in err.value.message


@pytest.mark.parametrize("key", list(SAMPLING_RANGES))
def test_sampling_ranges_in_the_document_are_the_ones_the_spec_enforces(key: str) -> None:
    schema = sampling_schema()
    for value in (-3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 7):
        assert jsonschema_rs.is_valid(schema, {key: value}) == accepted({"sampling": {key: value}}), (key, value)


BUDGET_VALUES: list[Any] = [
    0,
    12,
    -1,
    "auto",
    "lots",
    True,
    1.5,
    [],
    {},
    {"max_tokens": None},
    {"max_tokens": "auto"},
    {"max_tokens": "x"},
    {"max_tokens": 4, "min_tokens": 2, "num_ignore": 1, "wait_text": "Hmm", "final_answer_text": ""},
    {"min_tokens": -1},
    {"num_ignore": 1.5},
    {"wait_text": 3},
    {"wait_text": None},
    {"profile": "harness"},
    {"profile": None},
    {"profile": "fast"},
    {"sampling": {"temperature": 0.7, "top_k": 5}},
    {"sampling": {"top_k": 1.5}},
    {"sampling": {"seed": 1}},
    {"sampling": None},
    {"cap_message": "Time is up.", "grace_tokens": 8},
    {"grace_tokens": -2},
    {"enabled": False},
    {"unknown": 1},
]


@pytest.mark.parametrize("value", BUDGET_VALUES, ids=repr)
def test_thinking_budget_schema_accepts_what_the_server_accepts(value: Any) -> None:
    # Cross-field rules (min_tokens <= max_tokens, harness without cap_message) are prose only.
    assert jsonschema_rs.is_valid(thinking_budget_schema(), value) == accepted(value)


def test_null_is_no_budget() -> None:
    assert jsonschema_rs.is_valid(thinking_budget_schema(), None)


def test_report_schema_covers_every_key_the_report_can_hold() -> None:
    plain = ThinkingReport(thinking_tokens=3, answer_tokens=2)
    full = ThinkingReport(
        thinking_tokens=9, answer_tokens=4, waits_inserted=1, forced_end=True, ends_ignored=2, grace_tokens=3
    )
    full.inserted["cap_message"] = 5
    full.profile = "harness"
    full.cut_tokens = 1
    assert set(full.public()) == set(REPORT_PROPERTIES)
    for report in (plain, full):
        jsonschema_rs.validate(thinking_report_schema(), report.public())
    assert not jsonschema_rs.is_valid(thinking_report_schema(), {**plain.public(), "surprise": 1})


def _vllm_like_document() -> dict[str, Any]:
    """The parts of vLLM's document that document_budget reads and changes."""
    xargs = {"anyOf": [{"type": "object", "additionalProperties": {"type": "string"}}, {"type": "null"}]}
    effort = {"anyOf": [{"type": "string", "enum": ["low", "high"]}, {"type": "null"}], "description": "vLLM's"}
    requests = {
        "ChatCompletionRequest": {"properties": {"messages": {}, "vllm_xargs": xargs, "reasoning_effort": effort}},
        "CompletionRequest": {"properties": {"prompt": {}, "vllm_xargs": xargs}},
        "ResponsesRequest": {"properties": {"input": {}}},
        "AnthropicMessagesRequest": {"properties": {"messages": {}, "thinking": {"$ref": "#/x"}}},
        "AnthropicCountTokensRequest": {"properties": {"messages": {}}},
    }
    paths = {
        "/v1/chat/completions": "ChatCompletionRequest",
        "/v1/completions": "CompletionRequest",
        "/v1/responses": "ResponsesRequest",
        "/v1/messages": "AnthropicMessagesRequest",
        "/v1/messages/count_tokens": "AnthropicCountTokensRequest",
    }
    return {
        "paths": {
            path: {
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
                    },
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}}},
                }
            }
            for path, name in paths.items()
        },
        "components": {"schemas": copy.deepcopy(requests)},
    }


def test_document_budget_adds_the_fields_to_each_request_and_the_report_to_each_answer() -> None:
    doc = _vllm_like_document()
    document_budget(doc)
    schemas = doc["components"]["schemas"]
    for name in ("ChatCompletionRequest", "CompletionRequest", "ResponsesRequest", "AnthropicMessagesRequest"):
        props = schemas[name]["properties"]
        assert props["thinking_budget"] == {"$ref": "#/components/schemas/ThinkingBudget"}, name
        for field in ("max_thinking_tokens", "min_thinking_tokens", "thinking_token_budget", "thinking"):
            assert field in props, (name, field)
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert chat["reasoning_effort"]["description"] == "vLLM's"  # vLLM's own entry stays
    assert "s1serve_budget" in chat["vllm_xargs"]["anyOf"][0]["properties"]
    assert "reasoning_effort" in schemas["ResponsesRequest"]["properties"]
    # Anthropic's thinking: any non-negative budget_tokens, not vLLM's 1024 minimum.
    thinking = schemas["AnthropicMessagesRequest"]["properties"]["thinking"]
    assert jsonschema_rs.is_valid(thinking, {"type": "enabled", "budget_tokens": 5})
    assert not jsonschema_rs.is_valid(thinking, {"type": "enabled"})
    assert "thinking_budget" in schemas["AnthropicCountTokensRequest"]["properties"]
    chat_ok = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["application/json"]
    item = chat_ok["schema"]["properties"]["choices"]["items"]
    assert item["properties"]["thinking"] == {"$ref": "#/components/schemas/ThinkingReport"}
    for path in ("/v1/responses", "/v1/messages"):
        ok = doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["properties"]["thinking"] == {"$ref": "#/components/schemas/ThinkingReport"}
    count = doc["paths"]["/v1/messages/count_tokens"]["post"]["responses"]["200"]["content"]["application/json"]
    assert count["schema"] == {}  # no report there: count_tokens only counts

"""Generated requests against a real server, checked against its own /openapi.json.

Schemathesis builds requests from the document the tiny server serves (valid ones, and ones
that break the schema) for the v1 generation routes and the cheap routes beside them. Every
answer must be a documented status with a documented content type and body shape, and none
may be a 5xx: a server error from client input is a bug at the HTTP boundary.

Generation is kept short: output caps are clamped to a few tokens and `n` to two, and the
model name is set to the served one so most requests get past the model lookup. The examples
are derandomized, so a run is reproducible; a failure prints a curl command that repeats it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup, UnsupportedSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from budget.spec import REQUEST_KEYS
from tests.integration.server_process import ServerProcess

pytestmark = pytest.mark.engine

OUTPUT_CAP = 8  # tokens: every generated request decodes at most this many
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# (method, path, examples of valid requests, examples of invalid ones)
OPERATIONS = [
    ("POST", "/v1/chat/completions", 60, 30),
    ("POST", "/v1/completions", 60, 30),
    ("POST", "/v1/responses", 60, 30),
    ("POST", "/v1/messages", 60, 30),
    ("POST", "/v1/messages/count_tokens", 30, 20),
    ("POST", "/tokenize", 30, 20),
    ("POST", "/detokenize", 30, 20),
    ("GET", "/v1/models", 1, 0),
]
CASES = [
    pytest.param(method, path, mode, examples, id=f"{path}-{mode.value}")
    for method, path, positive, negative in OPERATIONS
    for mode, examples in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative))
    if examples
]


@pytest.fixture(scope="module")
def api(tiny_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{tiny_server.base_url}/openapi.json", timeout=30)


def steer(body: Any, path: str) -> None:
    """Keep a generated body cheap to serve and aimed at the served model (in place)."""
    if not isinstance(body, dict):
        return
    if isinstance(body.get("model"), str) or path.startswith("/v1/messages"):
        body["model"] = "tiny"
    for name in OUTPUT_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > OUTPUT_CAP:
            body[name] = OUTPUT_CAP
    if path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"):
        if not any(isinstance(body.get(name), int) for name in OUTPUT_FIELDS):
            body["max_output_tokens" if path == "/v1/responses" else "max_tokens"] = OUTPUT_CAP
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 2:
        body["n"] = 2
    if path == "/v1/completions" and body.get("prompt") is None and body.get("prompt_embeds") is None:
        body["prompt"] = "two and three"


@pytest.mark.parametrize(("method", "path", "mode", "examples"), CASES)
def test_generated_requests_get_documented_answers_and_no_server_error(
    api: Any, tiny_server: ServerProcess, method: str, path: str, mode: GenerationMode, examples: int
) -> None:
    operation = api[path][method]
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        steer(case.body, path)
        response = case.call(base_url=tiny_server.base_url, timeout=120)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            key = f"{response.status_code} " + "; ".join(sorted({f.title for f in group.exceptions}))
            failures.setdefault(key, str(group)[:3000])

    try:
        run()
    except UnsupportedSchema:
        # Schemathesis cannot negate some of vLLM's Responses schema; the cases made before
        # it gave up were sent and checked (and at least one must have been, below).
        assert mode is GenerationMode.NEGATIVE
    assert not failures, f"{path} ({mode.value}): {sorted(failures)}\n\n" + "\n\n".join(failures.values())
    assert sum(statuses.values()) > 0
    if mode is GenerationMode.POSITIVE:
        assert statuses[200] > 0, f"no valid request got through: {dict(statuses)}"


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def example(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A value the schema allows, from its default, its first branch or the middle of its range."""
    schema = _resolve(doc, schema)
    if "default" in schema:
        return schema["default"]
    if "anyOf" in schema:
        return example(doc, next(b for b in schema["anyOf"] if b.get("type") != "null"))
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(doc, prop) for name, prop in schema.get("properties", {}).items()}
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            value = (low + high) / 2
        else:
            value = low + 1 if low is not None else (high - 1 if high is not None else 1)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    return ""


def test_openapi_documents_the_budget_fields_the_server_accepts(tiny_server: ServerProcess) -> None:
    url = tiny_server.base_url
    doc = httpx.get(f"{url}/openapi.json", timeout=30).json()
    schemas = doc["components"]["schemas"]
    budget = schemas["ThinkingBudget"]
    kinds = [b.get("type") for b in budget["anyOf"]]
    assert kinds == ["integer", "string", "object", "null"]
    budget_object = budget["anyOf"][2]
    assert list(budget_object["properties"]) == list(REQUEST_KEYS)
    assert budget_object["additionalProperties"] is False
    requests = {}
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        props = _resolve(doc, body)["properties"]
        requests[path] = props
        assert props["thinking_budget"] == {"$ref": "#/components/schemas/ThinkingBudget"}, path
        for name in ("max_thinking_tokens", "min_thinking_tokens", "thinking_token_budget"):
            assert [b["type"] for b in props[name]["anyOf"]] == ["integer", "null"], (path, name)
        assert "reasoning_effort" in props and "thinking" in props
    report = schemas["ThinkingReport"]
    assert report["required"] == ["thinking_tokens", "answer_tokens", "waits_inserted", "forced_end"]
    assert report["properties"]["forced_end"]["type"] == "boolean"
    ok = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["properties"]["choices"]["items"]["properties"]["thinking"]["$ref"].endswith("/ThinkingReport")

    # Requests built from the document are accepted, and their reports match it.
    value = example(doc, budget_object)
    assert set(value) == set(REQUEST_KEYS) and set(value["sampling"]) == set(
        budget_object["properties"]["sampling"]["properties"]
    )
    value.update(max_tokens=4, min_tokens=2)
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    r = httpx.post(f"{url}/v1/chat/completions", json={**chat, "thinking_budget": value}, timeout=120)
    assert r.status_code == 200, r.text
    thinking = r.json()["choices"][0]["thinking"]
    jsonschema_rs.validate(report, thinking)
    assert 2 <= thinking["thinking_tokens"] <= 4
    anthropic = example(doc, requests["/v1/messages"]["thinking"])  # budget_tokens 0..: below vLLM's 1024
    assert anthropic == {"type": "enabled", "budget_tokens": 1}
    messages = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    cases = [
        ("/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 16, "max_thinking_tokens": 3}),
        ("/v1/responses", {"model": "tiny", "input": "hi", "max_output_tokens": 16, "thinking_budget": 3}),
        ("/v1/messages", {**messages, "thinking": anthropic}),
    ]
    for path, body in cases:
        r = httpx.post(f"{url}{path}", json=body, timeout=120)
        assert r.status_code == 200, (path, r.text)
        data = r.json()
        jsonschema_rs.validate(report, data["choices"][0]["thinking"] if "choices" in data else data["thinking"])

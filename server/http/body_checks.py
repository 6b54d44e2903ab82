"""What the gateway checks in a parsed body before vLLM sees it, and what it estimates from it.

vLLM answers some well-typed but out-of-range values with a 500 (or lets them crash later):
they are 400s naming the field here. Wrong types, missing fields and the rest stay vLLM's own
400s. The estimates size a request for admission before it is tokenized.
"""

from __future__ import annotations

import json
import math
from typing import Any

from server.http.asgi import ClientError
from server.http.routes import CHECKED_PATHS, prompt_field, protocol_path

BYTES_PER_TOKEN = 4  # prompt size estimate before tokenization: text averages about 4 bytes a token
# Deeper bodies are refused: the layers behind (budget translation, vLLM's parsing, the chat
# template) recurse per level and would fail with a 500 near Python's recursion limit. vLLM
# itself refuses JSON schemas nested over 64 levels, so no body it accepts comes close.
MAX_JSON_DEPTH = 128
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _int_field(data: dict[str, Any], name: str, low: int | None, high: int | None) -> None:
    value = data.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        return  # a wrong type is vLLM's own 400
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            why = f"between {low} and {high}"
        elif low is not None:
            why = f"at least {low}"
        else:
            why = f"at most {high}"
        raise ClientError(400, f"{name} must be {why}, got {value}", name)


def _finite_field(data: dict[str, Any], name: str) -> None:
    value = data.get(name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ClientError(400, f"{name} must be a finite number", name)


def _token_ids(values: Any, name: str, vocab: int) -> None:
    if not isinstance(values, list):
        return
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            continue
        if v < 0 or (vocab and v >= vocab):
            bound = f"between 0 and {vocab - 1}" if vocab else "non-negative"
            raise ClientError(400, f"{name} holds token id {v}; token ids must be {bound}", name)


FLOAT_FIELDS = (
    "temperature",
    "top_p",
    "min_p",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "length_penalty",
)


def check_body(data: Any, path: str, vocab: int) -> None:
    """Refuse the sampling values vLLM's serving layer answers with a 500 (or lets crash later).

    Only values of the right type are judged here; wrong types, missing fields and the rest
    stay vLLM's own 400s.
    """
    if isinstance(data, dict) and path == "/v1/responses":
        _check_response_input(data.get("input"))
    if not isinstance(data, dict) or path not in CHECKED_PATHS:
        return
    structured = data.get("structured_outputs")
    if structured is not None and not isinstance(structured, dict):
        # vLLM's request model reads it as a mapping before validating it: a 500 otherwise.
        raise ClientError(400, "structured_outputs must be an object", "structured_outputs")
    _int_field(data, "seed", -(2**63), INT64_MAX)
    _int_field(data, "top_k", -1, None)  # -1 and 0 both mean "off" to vLLM
    _int_field(data, "n", 1, None)
    for name in FLOAT_FIELDS:
        _finite_field(data, name)
    _token_ids(data.get("stop_token_ids"), "stop_token_ids", vocab)
    _token_ids(data.get("allowed_token_ids"), "allowed_token_ids", vocab)
    bias = data.get("logit_bias")
    if isinstance(bias, dict):
        for key in bias:
            try:
                token = int(key)
            except (TypeError, ValueError):
                continue
            _token_ids([token], "logit_bias", vocab)
    if path == "/v1/completions":
        prompt = data.get("prompt")
        if prompt == "" or prompt == []:
            raise ClientError(400, "prompt must not be empty", "prompt")
        if isinstance(prompt, list) and prompt:
            if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
                _token_ids(prompt, "prompt", vocab)
            else:
                for p in prompt:
                    if p == "" or p == []:
                        raise ClientError(400, "prompt must not hold an empty prompt", "prompt")
                    if isinstance(p, list):
                        _token_ids(p, "prompt", vocab)


def _check_response_input(items: Any) -> None:
    """An earlier assistant message handed back as Responses input must start with its text.

    vLLM reads the first content part's text of such an item and fails with a 500 when the
    content is empty or starts with a refusal.
    """
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant"):
            continue
        content = item.get("content")
        if content == [] or (isinstance(content, list) and isinstance(content[0], dict) and "text" not in content[0]):
            raise ClientError(
                400, f"input[{i}]: an assistant message's content must start with an output_text part", "input"
            )


TEXT_KEYS = frozenset({"content", "text", "prompt", "input", "messages", "system", "instructions"})


def prompt_chars(value: Any) -> int:
    """Characters of prompt text in a body (message contents, text parts, prompts); not media."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(prompt_chars(v) for v in value)
    if isinstance(value, dict):
        return sum(prompt_chars(v) for k, v in value.items() if k in TEXT_KEYS)
    return 0


def check_prompt_length(data: Any, path: str, max_model_len: int, max_chars_per_token: int) -> None:
    """A prompt whose text alone cannot fit the context is refused here, off the event loop.

    vLLM makes the same check, but only after parsing the whole body on the event loop; a
    many-megabyte prompt would stall every other request meanwhile.
    """
    field_name = prompt_field(path)
    if not (field_name and max_model_len and max_chars_per_token and isinstance(data, dict)):
        return
    if data.get("truncate_prompt_tokens") is not None:
        return
    bound = max_model_len * max_chars_per_token
    chars = prompt_chars({k: v for k, v in data.items() if k in TEXT_KEYS})
    if chars > bound:
        raise ClientError(
            400,
            f"{field_name}: the model's context is {max_model_len} tokens, and the prompt holds {chars} characters "
            f"(more than {bound}, the most {max_model_len} tokens can hold)",
            field_name,
        )


def estimate_tokens(data: Any, body_bytes: int, max_model_len: int) -> int:
    """Prompt + output tokens a request may hold, for the token queue, before tokenization.

    The prompt is estimated from the body size, the output from the request's own cap (or
    what is left of the context when it names none), times its choices.
    """
    prompt = body_bytes // BYTES_PER_TOKEN
    if max_model_len:
        prompt = min(prompt, max_model_len)
    cap = None
    n = 1
    if isinstance(data, dict):
        for name in OUTPUT_FIELDS:
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                cap = value
                break
        if isinstance(data.get("n"), int) and not isinstance(data.get("n"), bool) and data["n"] > 1:
            n = data["n"]
    if cap is None:
        cap = max(0, max_model_len - prompt)
    if max_model_len:
        cap = min(cap, max_model_len)
    return prompt + cap * n


def engine_sequences(data: Any, path: str) -> int:
    """Engine requests a generation request starts: its choices, times its prompts on completions.

    vLLM's --max-num-queued-reqs counts these; admission counts them the same way when that
    flag set its limit, so vLLM's own check, made again after a stream's 200, never fires.
    """
    if not isinstance(data, dict):
        return 1
    n = data.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    prompt = data.get("prompt") if path == "/v1/completions" else None
    prompts = 1
    if isinstance(prompt, list) and prompt and not all(isinstance(p, int) for p in prompt):
        prompts = len(prompt)  # a list of texts or of token lists: one engine request each
    return choices * prompts


def parse_and_check(body: bytes, path: str, max_model_len: int, max_chars_per_token: int, vocab: int) -> Any:
    """Parse the body and check its nesting, integers, values and prompt length.

    Pure and thread-safe: the gateway runs it in a worker thread for big bodies.
    """
    data = json.loads(body)
    path = protocol_path(path, data)
    check_json_values(data, MAX_JSON_DEPTH)
    check_prompt_length(data, path, max_model_len, max_chars_per_token)
    check_body(data, path, vocab)
    return data


_SCALARS = frozenset({str, float, bool, type(None)})


def check_json_values(data: Any, depth_limit: int) -> None:
    """Refuse a body nesting deeper than `depth_limit`, or holding an integer beyond 64 bits.

    Both would otherwise be a 500 further in: deep nesting exhausts the recursion of the
    layers behind, and an integer outside the signed 64-bit range cannot be serialized to the
    engine (vLLM passes fields like `chat_template_kwargs` and `vllm_xargs` there). Walks
    without recursion; a long list of plain values costs one pass in C.
    """
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        stack = [(value, 2)]
        while stack:
            item, depth = stack.pop()
            kind = type(item)
            if kind is int:
                if not INT64_MIN <= item <= INT64_MAX:
                    raise ClientError(400, f"{key} holds an integer outside the signed 64-bit range", key)
                continue
            if kind is not dict and kind is not list:
                continue
            if depth > depth_limit:
                raise ClientError(400, f"{key}: the request body nests JSON more than {depth_limit} levels deep", key)
            children = list(item.values()) if kind is dict else item
            kinds = set(map(type, children))
            if kinds <= _SCALARS:
                continue
            if kinds == {int} and INT64_MIN <= min(children) and max(children) <= INT64_MAX:
                continue
            stack.extend((child, depth + 1) for child in children if type(child) not in _SCALARS)

"""Client compatibility: the official SDKs and common frameworks against a real s1serve.

One server for these modules (the session's tiny server): the tiny random s1-format model with hermes tool calling and
effort caps small enough to bind (`minimal=5,low=7,medium=21`). Every cap asserted here is
below the length the greedy model thinks on its own (`natural_thinking`), so an exact count
shows the budget was applied, not that the model happened to stop there.

A random model under a grammar may write whitespace forever (JSON allows it between any two
tokens), so the structured-output requests bias whitespace tokens away with `logit_bias`: the
grammar still decides what is allowed, the bias only makes the model close the JSON quickly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

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


def report_of(choice: Any) -> dict[str, Any]:
    """The per-choice `thinking` report, an extra field the SDK keeps in model_extra."""
    return choice.model_extra["thinking"]

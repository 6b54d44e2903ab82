"""An OpenAI-compatible chat endpoint inside the test process (httpx.MockTransport): no server, no model.

Each choice's reply comes from a script, `reply(body, choice_index) -> Choice`, so a test decides what
every sample says and can count the requests and choices the program asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from evals import cli
from evals.client import Endpoint

MODEL = "fake-model"


@dataclass(frozen=True)
class Choice:
    answer: str
    thinking: str = ""  # sent as reasoning_content; empty: a model that writes no thinking segment
    completion_tokens: int = 10
    report: dict[str, Any] | None = None  # s1serve's per-choice `thinking` report


@dataclass(frozen=True)
class Refusal:
    """A reply script's way to have the request refused: the fake answers `status` with an OpenAI error body."""

    message: str
    param: str | None = None
    status: int = 400


class FakeChat:
    def __init__(
        self,
        reply: Callable[[dict[str, Any], int], Choice | Refusal],
        takes_n: bool = True,
        context: int | None = None,
        tokenize: bool = True,
    ) -> None:
        self.reply = reply
        self.takes_n = takes_n
        self.context = context  # max_model_len listed by GET /models; None: not listed
        self.tokenize = tokenize  # whether POST /tokenize exists
        self.bodies: list[dict[str, Any]] = []  # every chat request's body, refused ones included

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            entry: dict[str, Any] = {"id": MODEL}
            if self.context is not None:
                entry["max_model_len"] = self.context
            return httpx.Response(200, json={"data": [entry]})
        body = json.loads(request.content)
        if request.url.path.endswith("/tokenize"):
            if not self.tokenize:
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, json={"count": fake_token_count(body["messages"][-1]["content"])})
        self.bodies.append(body)
        n = body.get("n", 1)
        if n > 1 and not self.takes_n:
            return httpx.Response(400, json={"error": {"message": "n must be 1", "param": "n"}})
        made = [self.reply(body, i) for i in range(n)]
        refused = next((m for m in made if isinstance(m, Refusal)), None)
        if refused is not None:
            error = {"message": refused.message, "type": "BadRequestError", "param": refused.param}
            return httpx.Response(refused.status, json={"error": error})
        choices = []
        for i, c in enumerate(made):
            message = {"role": "assistant", "content": c.answer}
            if c.thinking:
                message["reasoning_content"] = c.thinking
            choice: dict[str, Any] = {"index": i, "message": message, "finish_reason": "stop"}
            if c.report is not None:
                choice["thinking"] = c.report
            choices.append(choice)
        usage = {"completion_tokens": sum(c.completion_tokens for c in made)}
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    def choices_drawn(self) -> int:
        return sum(b.get("n", 1) for b in self.bodies if self.takes_n or b.get("n", 1) == 1)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make `evals.cli` talk to this fake whatever --base-url says."""
        transport = httpx.MockTransport(self.handle)

        def endpoint(*args: Any, **kwargs: Any) -> Endpoint:
            return Endpoint(*args, **kwargs, backoff_s=0.001, transport=transport)

        monkeypatch.setattr(cli, "Endpoint", endpoint)


def fake_token_count(content: str) -> int:
    """The fake's tokenizer: one token per whitespace-separated word, plus 10 for a chat template."""
    return len(content.split()) + 10


def question_of(body: dict[str, Any]) -> str:
    """The question text of a request (its prompt up to the first blank line)."""
    return body["messages"][-1]["content"].split("\n\n")[0]

"""The bound on all a sample generates (`max_tokens`), chosen to fit the served model's context.

`--max-tokens` wins when given. Otherwise the context length comes from GET /models (vLLM and s1serve
list `max_model_len` with each model), the prompts are counted by POST /tokenize beside /v1, and the
bound is the context minus the longest prompt minus a little room for the thinking opener a server
appends after the chat template. Where either is missing no `max_tokens` is sent at all, and the
server's own default applies (vLLM's: the rest of the context after each prompt). The choice and its
reason go into summary.json, summary.md and stderr.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from evals.client import Endpoint, EndpointError

OPENER_ROOM = 16  # tokens kept free for a thinking opener (`<|im_start|>think`, `<think>\n`) after the template


@dataclass(frozen=True)
class Bound:
    max_tokens: int | None  # None: no max_tokens is sent
    how: str  # one line: what was chosen and why


def given(value: int) -> Bound:
    return Bound(value, f"{value} tokens, as --max-tokens says")


async def fit_to_context(endpoint: Endpoint, model: str, prompts: dict[str, list[str]]) -> Bound:
    """The bound for `model` given every question's prompts (`prompts[question_id]`, one per method prompt)."""
    listed = await endpoint.listed_models() or []
    context = next((m.get("max_model_len") for m in listed if m["id"] == model), None)
    if not isinstance(context, int) or context < 1:
        return Bound(
            None,
            f"not sent: {endpoint.base_url}/models reports no max_model_len for {model}, so the server's own "
            "limit applies; pass --max-tokens to fix one",
        )
    # Per question the longest prompt by characters (they differ only in a method's prompt), counted exactly.
    longest = [max(texts, key=len) for texts in prompts.values() if texts]
    counts = await asyncio.gather(*(endpoint.prompt_tokens(model, text) for text in longest))
    if not counts or any(c is None for c in counts):
        return Bound(
            None,
            f"not sent: the served context is {context} tokens, but {endpoint.base_url.removesuffix('/v1')}/tokenize "
            "cannot count the prompts, so each request gets the server's default (vLLM's: the rest of the "
            "context after its prompt); pass --max-tokens to fix one",
        )
    prompt = max(c for c in counts if c is not None)
    value = context - prompt - OPENER_ROOM
    if value < 1:
        raise EndpointError(f"the longest prompt ({prompt} tokens) leaves no room in {model}'s context of {context}")
    return Bound(
        value,
        f"{value} tokens = the served context of {context} (max_model_len) - the longest prompt, {prompt} tokens "
        f"- {OPENER_ROOM} for the thinking opener",
    )

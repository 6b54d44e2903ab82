"""How a controller round becomes engine work: its sampling params, the resubmission runner,
and the answer probe.

`round_params` is shared by both forcing paths (a session chunk carries the same params as a
resubmitted round) and by the oracle driver, so the three run the controller's rounds alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from budget.early_exit import closed_answer
from budget.rounds import Probe, Round
from server.engine.session import GRAMMAR_ONLY_KWARGS
from server.engine.xargs import without_own_keys
from server.vllm_compat import CompletionOutput, Logprob, RequestOutputKind, SamplingParams, tokens_input

# Round seeds: a forced choice's rounds are each seeded from the request seed so a seeded
# request is reproducible; the stride keeps rounds of neighbouring choices apart.
ROUND_SEED_STRIDE = 7919


class Codec:
    """Token ids <-> text for the controller; never adds special tokens."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def certain(token_id: int, codec: Codec) -> dict[int, Logprob]:
    """A forced token's logprob: inserted text is certain under the forcing policy."""
    return {token_id: Logprob(logprob=0.0, rank=1, decoded_token=codec.decode([token_id]))}


def round_params(
    base: SamplingParams,
    rnd: Round,
    index: int,
    round_no: int,
    output_kind: RequestOutputKind = RequestOutputKind.DELTA,
) -> SamplingParams:
    """This round's sampling params: the user's, with the round's limits, stops and overrides."""
    seed = None if base.seed is None else base.seed + index + ROUND_SEED_STRIDE * round_no
    common: dict[str, Any] = {
        "n": 1,
        "temperature": base.temperature,
        "top_p": base.top_p,
        "top_k": base.top_k,
        "min_p": base.min_p,
        "presence_penalty": base.presence_penalty,
        "frequency_penalty": base.frequency_penalty,
        "repetition_penalty": base.repetition_penalty,
        "seed": seed,
        "ignore_eos": base.ignore_eos,
        "logprobs": base.logprobs,
        "logit_bias": base.logit_bias,
        "allowed_token_ids": base.allowed_token_ids,
        "skip_special_tokens": base.skip_special_tokens,
        "spaces_between_special_tokens": base.spaces_between_special_tokens,
        "output_kind": output_kind,
        "extra_args": without_own_keys(base.extra_args),
        "max_tokens": rnd.max_tokens,
    }
    common.update(rnd.sampling or {})
    if rnd.segment == "thinking":
        return SamplingParams(
            **common,
            min_tokens=rnd.min_tokens,
            stop=list(rnd.stop) or None,
            # Keep a text trigger in the engine's text so it streams without the engine's
            # stop-string hold-back; TriggerHoldback drops it (the ids are the same either way).
            include_stop_str_in_output=bool(rnd.stop),
            stop_token_ids=list(rnd.stop_token_ids) or None,
            bad_words=list(rnd.bad_words) or None,
        )
    return SamplingParams(
        **common,
        min_tokens=0,
        stop=base.stop or None,
        stop_token_ids=base.stop_token_ids or None,
        include_stop_str_in_output=base.include_stop_str_in_output,
        bad_words=base.bad_words or None,
        structured_outputs=base.structured_outputs,
    )


async def resubmitted_round(
    engine: Any,
    target: list[int],
    params: SamplingParams,
    round_id: str,
    kwargs: dict[str, Any],
    *,
    cache_salt: str | None,
    answer: bool,
    live: set[str],
) -> AsyncIterator[CompletionOutput]:
    """A round as its own engine request (the resubmission path): the sequence is prefilled
    again, mostly from the prefix cache. `live` holds its id while it runs, for abort."""
    live.add(round_id)
    round_kwargs = {**kwargs, "reasoning_ended": answer}
    try:
        async for out in engine.generate(tokens_input(target, cache_salt=cache_salt), params, round_id, **round_kwargs):
            yield out.outputs[0]
    finally:
        live.discard(round_id)


def probe_params(probe: Probe) -> SamplingParams:
    """A probe decodes greedily (the answer the model holds now, not a sample of it), shows
    nothing, and stops at EOS or `probe.max_tokens` if its answer's brace never closes."""
    return SamplingParams(
        n=1, temperature=0.0, max_tokens=probe.max_tokens, skip_special_tokens=True, output_kind=RequestOutputKind.DELTA
    )


async def probe_round(
    engine: Any,
    target: list[int],
    probe: Probe,
    probe_id: str,
    kwargs: dict[str, Any],
    *,
    cache_salt: str | None,
    live: set[str],
) -> tuple[str, int]:
    """Run one answer probe as its own engine request over `target` (the choice's sequence
    plus the probe's ids): most of it is a prefix-cache hit on the blocks the choice's session
    or last round holds. Returns the probe's text and token count. The request is aborted as
    soon as the answer's brace closes, and `live` holds its id while it runs."""
    live.add(probe_id)
    round_kwargs = {k: v for k, v in kwargs.items() if k not in GRAMMAR_ONLY_KWARGS}
    text, count = "", 0
    try:
        outputs = engine.generate(
            tokens_input(target, cache_salt=cache_salt), probe_params(probe), probe_id, **round_kwargs
        )
        async with aclosing(outputs):  # closing a running request's stream aborts it in the engine
            async for out in outputs:
                o = out.outputs[0]
                text += o.text
                count += len(o.token_ids)
                if closed_answer(text) is not None:
                    break
    finally:
        live.discard(probe_id)
    return text, count

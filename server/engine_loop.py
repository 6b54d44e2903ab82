"""Per-choice generation on a shared vLLM engine, with budget forcing by resubmission.

Every forced choice runs as a chain of ordinary engine requests ("rounds"). A thinking round
stops at the end trigger or EOS; the budget controller then strips the attempt and appends
wait text, the end delimiter or the final-answer text as token ids, and the next round
continues from the whole sequence. vLLM's prefix cache makes that re-prefill nearly free,
and since each round is an independent request, continuous batching carries on for every
other request while one choice is between rounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from vllm import SamplingParams
from vllm.inputs import TokensPrompt
from vllm.sampling_params import RequestOutputKind

from budget.controller import EndAttempt, FormatTokens, Round, ThinkingController, ThinkingReport
from budget.spec import BudgetSpec
from budget.splitter import ThinkingSplitter, TriggerHoldback

SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)


class Codec:
    """Token ids <-> text for the controller; never adds special tokens."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass(slots=True)
class Delta:
    """A piece of one choice's output. segment None marks delimiter text (raw completions only)."""

    index: int
    segment: str | None
    text: str
    logprobs: list[TokenLogprob] | None = None
    final: bool = False  # the choice is finished; its ChoiceResult is complete


@dataclass(slots=True)
class ChoiceResult:
    """Filled in as the choice runs; complete once its `finish_reason` is set."""

    index: int
    report: ThinkingReport = field(default_factory=ThinkingReport)
    completion_tokens: int = 0
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    first_answer_at: float | None = None


@dataclass
class GenerationPlan:
    """Everything one request needs, after validation."""

    request_id: str
    prompt_ids: list[int]
    base_params: dict[str, Any]
    output_limit: int
    n: int
    spec: BudgetSpec | None
    opened: bool  # the prompt already ends inside a thinking segment
    user_stop: list[str]
    user_stop_token_ids: list[int]
    num_logprobs: int | None
    split_reasoning: bool  # chat: route thinking text to the reasoning field
    results: list[ChoiceResult] = field(default_factory=list)


class EngineLoop:
    def __init__(self, engine: Any, tokenizer: Any, tokens: FormatTokens) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.codec = Codec(tokenizer)
        self.tokens = tokens

    # -- entry ---------------------------------------------------------------------------------
    def stream(self, plan: GenerationPlan) -> AsyncIterator[Delta]:
        plan.results = [ChoiceResult(index=i) for i in range(plan.n)]
        if plan.spec is None:
            return self._plain(plan)
        if plan.n == 1:
            return self._forced(plan, 0)
        return _merge([self._forced(plan, i) for i in range(plan.n)])

    # -- plain generation: one engine request, exactly as vLLM would run it -----------------------
    async def _plain(self, plan: GenerationPlan) -> AsyncIterator[Delta]:
        params = SamplingParams(
            n=plan.n,
            max_tokens=plan.output_limit,
            stop=plan.user_stop or None,
            stop_token_ids=plan.user_stop_token_ids or None,
            logprobs=plan.num_logprobs,
            output_kind=RequestOutputKind.DELTA,
            **plan.base_params,
        )
        splitters = (
            [ThinkingSplitter(self.tokens.fmt, opened=plan.opened) for _ in range(plan.n)]
            if plan.split_reasoning
            else None
        )
        async for out in self.engine.generate(TokensPrompt(prompt_token_ids=plan.prompt_ids), params, plan.request_id):
            for o in out.outputs:
                result = plan.results[o.index]
                if o.token_ids:
                    if result.first_token_at is None:
                        result.first_token_at = time.monotonic()
                    result.token_ids.extend(o.token_ids)
                    result.completion_tokens += len(o.token_ids)
                logprobs = self._logprobs(o, plan.num_logprobs) if plan.num_logprobs is not None else None
                if splitters is None:
                    if o.text or logprobs:
                        if result.first_answer_at is None:
                            result.first_answer_at = time.monotonic()
                        yield Delta(o.index, "answer", o.text, logprobs)
                else:
                    pieces = splitters[o.index].feed(o.text)
                    if o.finish_reason is not None:
                        pieces += splitters[o.index].flush()
                    for segment, text in pieces:
                        if segment == "answer" and result.first_answer_at is None:
                            result.first_answer_at = time.monotonic()
                        yield Delta(o.index, segment, text, logprobs if segment == "answer" else None)
                        if segment == "answer":
                            logprobs = None
                    if splitters[o.index].state == "thinking":
                        result.report.thinking_tokens += len(o.token_ids)
                if o.finish_reason is not None:
                    result.finish_reason = o.finish_reason
                    report = result.report
                    report.answer_tokens = result.completion_tokens - report.thinking_tokens
                    report.generated_answer_tokens = report.answer_tokens
                    report.generated_thinking_tokens = report.thinking_tokens
                    yield Delta(o.index, "answer", "", final=True)

    # -- forced generation: a chain of rounds driven by the budget controller ---------------------
    async def _forced(self, plan: GenerationPlan, index: int) -> AsyncIterator[Delta]:
        assert plan.spec is not None
        result = plan.results[index]
        ctl = ThinkingController(plan.spec, self.tokens, self.codec, plan.output_limit)
        result.report = ctl.report
        prompt = plan.prompt_ids
        seed = plan.base_params.get("seed")
        action = ctl.start()
        round_no = 0
        while True:
            for insert in action.inserts:
                if insert.segment is not None:
                    if insert.segment == "answer" and result.first_answer_at is None:
                        result.first_answer_at = time.monotonic()
                    yield Delta(index, insert.segment, insert.text)
                elif not plan.split_reasoning:
                    yield Delta(index, None, self.codec.decode(list(insert.ids)))
            if action.round is None:
                result.finish_reason = action.finish_reason
                break
            rnd = action.round
            params = self._round_params(plan, rnd, None if seed is None else seed + index + 7919 * round_no)
            ids: list[int] = []
            finish_reason, stop_reason = "length", None
            request_id = f"{plan.request_id}-{index}-{round_no}"
            sequence = TokensPrompt(prompt_token_ids=prompt + ctl.completion_ids)
            holdback = TriggerHoldback(rnd.stop[0]) if rnd.stop else None
            wants_logprobs = rnd.segment == "answer" and plan.num_logprobs is not None
            async for out in self.engine.generate(sequence, params, request_id):
                o = out.outputs[0]
                if o.token_ids:
                    if result.first_token_at is None:
                        result.first_token_at = time.monotonic()
                    ids.extend(o.token_ids)
                text = o.text if holdback is None else holdback.feed(o.text)
                if o.finish_reason is not None:
                    finish_reason, stop_reason = o.finish_reason, o.stop_reason
                    if holdback is not None and finish_reason != "stop":
                        text += holdback.flush()
                if text or (wants_logprobs and o.token_ids):
                    if rnd.segment == "answer" and result.first_answer_at is None:
                        result.first_answer_at = time.monotonic()
                    logprobs = self._logprobs(o, plan.num_logprobs) if wants_logprobs else None
                    yield Delta(index, rnd.segment, text, logprobs)
            attempt = None
            if rnd.segment == "thinking" and finish_reason == "stop":
                attempt = EndAttempt.EOS if stop_reason is None else EndAttempt.TRIGGER
            action = ctl.finish_round(ids, attempt, finish_reason)
            round_no += 1
        result.token_ids = ctl.completion_ids
        result.completion_tokens = len(ctl.completion_ids)
        yield Delta(index, "answer", "", final=True)

    def _round_params(self, plan: GenerationPlan, rnd: Round, seed: int | None) -> SamplingParams:
        base = dict(plan.base_params)
        base["seed"] = seed
        if rnd.segment == "thinking":
            return SamplingParams(
                max_tokens=rnd.max_tokens,
                min_tokens=rnd.min_tokens,
                stop=list(rnd.stop) or None,
                # Keep a text trigger in the engine's text so it streams without a hold-back
                # buffer; TriggerHoldback drops it (token ids are the same either way).
                include_stop_str_in_output=bool(rnd.stop),
                stop_token_ids=list(rnd.stop_token_ids) or None,
                bad_words=list(rnd.bad_words) or None,
                output_kind=RequestOutputKind.DELTA,
                **base,
            )
        return SamplingParams(
            max_tokens=rnd.max_tokens,
            stop=plan.user_stop or None,
            stop_token_ids=plan.user_stop_token_ids or None,
            logprobs=plan.num_logprobs,
            output_kind=RequestOutputKind.DELTA,
            **base,
        )

    def _logprobs(self, o: Any, k: int) -> list[TokenLogprob]:
        """OpenAI-shaped logprobs: the chosen token and the k most likely candidates."""
        entries: list[TokenLogprob] = []
        for token_id, candidates in zip(o.token_ids, o.logprobs or [], strict=False):
            chosen = candidates.get(token_id)
            top = sorted(candidates.items(), key=lambda kv: -kv[1].logprob)[:k]
            entries.append(
                TokenLogprob(
                    token=self._token_text(token_id, chosen),
                    logprob=max(chosen.logprob, -9999.0) if chosen else -9999.0,
                    top=[(self._token_text(t, lp), max(lp.logprob, -9999.0)) for t, lp in top],
                )
            )
        return entries

    def _token_text(self, token_id: int, lp: Any) -> str:
        if lp is not None and lp.decoded_token is not None:
            return lp.decoded_token
        return self.tokenizer.decode([token_id])


async def _merge(streams: list[AsyncIterator[Delta]]) -> AsyncIterator[Delta]:
    """Interleave the deltas of several choices as they come."""
    queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Delta]) -> None:
        try:
            async for delta in stream:
                await queue.put(delta)
            await queue.put(None)
        except BaseException as e:  # noqa: BLE001 - forwarded to the consumer
            await queue.put(e)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

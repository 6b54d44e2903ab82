"""An engine client that forces thinking budgets beneath vLLM's serving layer.

vLLM's OpenAI, Responses and Anthropic servers call `generate()` on an engine client. This
one wraps `AsyncLLM`: a request whose sampling params carry a budget (the `s1serve_budget`
entry of `extra_args`, set by the request translation from `vllm_xargs`) runs as a chain of
engine rounds driven by the budget controller, and comes back as ordinary `RequestOutput`s with
the inserted text and token ids in place. Everything else (plain requests, abort, health,
tokenizer, metrics, shutdown) goes to the wrapped engine unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.inputs.engine import tokens_input
from vllm.logprobs import Logprob
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind

from budget.controller import EndAttempt, FormatTokens, Round, ThinkingController, ThinkingReport
from budget.spec import BudgetError, BudgetSpec
from budget.splitter import TriggerHoldback
from server.budget_fields import BUDGET_KEY, FIT_KEY, fits_context, spec_from_extra_args
from server.forcing_session import ForcingSession, session_compatible
from server.session_stats import keep_first_timestamps

logger = logging.getLogger("s1serve")

FORCING_PATHS = ("auto", "sessions", "resubmission")

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


@dataclass
class ChoiceRecord:
    """What one choice did, for the `thinking` report, metrics and the request log."""

    index: int
    report: ThinkingReport = field(default_factory=ThinkingReport)
    completion_tokens: int = 0
    finish_reason: str | None = None
    first_token_at: float | None = None
    first_answer_at: float | None = None
    engine_requests: dict[str, int] = field(default_factory=lambda: {"session": 0, "round": 0})
    session_chunks: int = 0


@dataclass
class RequestRecord:
    """One HTTP request's engine work, filled in by the engine client as it runs.

    The HTTP layer creates it and puts it in `current_record`; `generate()` (called inside
    the same request context by vLLM's serving layer) adds its choices and prompt length.
    """

    start: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    choices: list[ChoiceRecord] = field(default_factory=list)
    forced: bool = False
    waiting: bool = True  # no output yet
    on_generating: Callable[[RequestRecord], None] | None = None

    def generating(self) -> None:
        """The first output arrived: the request moves from waiting to generating."""
        if self.waiting:
            self.waiting = False
            if self.on_generating is not None:
                self.on_generating(self)


current_record: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("s1serve_record", default=None)


@dataclass(frozen=True)
class _ForcedRequest:
    """What every choice of one forced request shares, validated by `generate()`."""

    request_id: str
    prompt: dict[str, Any]  # the engine input as vLLM's serving layer rendered it
    prompt_ids: list[int]  # its token ids, with the thinking opener when the prompt lacked it
    params: SamplingParams
    spec: BudgetSpec
    total: int  # bound on everything generated or inserted after the prompt
    kwargs: dict[str, Any]  # generate() keywords passed through to each round


@dataclass
class _Piece:
    """One update of one choice: new text and ids, and the finish reason on the last."""

    index: int
    text: str
    ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ForcingEngineClient:
    """`EngineClient` for vLLM's serving layer; forces budgets, delegates everything else."""

    def __init__(
        self,
        engine: Any,
        tokens: FormatTokens,
        codec: Codec,
        *,
        drain_timeout: float = 30.0,
        default_profile: str = "exact",
        keep_special_tokens: bool = False,
    ) -> None:
        self._engine = engine
        self.tokens = tokens
        self.codec = codec
        self.drain_timeout = drain_timeout
        self.default_profile = default_profile
        # The format's delimiters hold special tokens (s1's <|im_start|>): text keeps them whatever
        # the request's skip_special_tokens, or no parser could see where the thinking ends.
        self.keep_special_tokens = keep_special_tokens
        self.draining = False  # set at shutdown: the HTTP layer refuses new work with 503
        self.max_model_len: int = engine.model_config.max_model_len
        self._rounds: dict[str, set[str]] = {}  # request id -> engine ids of its live rounds or sessions
        self.in_flight = 0  # forced and plain requests between admission and their last output
        # Forced choices run as streaming-input sessions (one engine request each) when set;
        # decided once at start-up by `choose_forcing_path`.
        self.sessions = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    @property
    def forcing_path(self) -> str:
        """How forced choices run: "sessions" (one resumable engine request per choice, its
        rounds appended as chunks) or "resubmission" (one engine request per round)."""
        return "sessions" if self.sessions else "resubmission"

    async def choose_forcing_path(self, requested: str = "auto") -> str:
        """Pick the forcing path once, before serving: sessions need a one-token end trigger
        (they stop on token ids; vLLM refuses stop strings in streaming input) and an engine
        that runs a two-chunk session. Returns why, for the start-up log."""
        if requested not in FORCING_PATHS:
            raise ValueError(f"--forcing-path must be one of {', '.join(FORCING_PATHS)}, not {requested!r}")
        self.sessions = False
        if requested == "resubmission":
            return "requested with --forcing-path resubmission"
        trigger = self.tokens.fmt.trigger
        if not self.tokens.single_token_trigger:
            why = f"the end trigger {trigger!r} is {len(self.tokens.trigger_ids)} tokens; sessions stop on one token id"
            if requested == "sessions":
                raise ValueError(f"--forcing-path sessions is not possible: {why}")
            return why
        keep_first_timestamps()
        problem = await self._probe_sessions()
        if problem is not None:
            if requested == "sessions":
                raise ValueError(f"--forcing-path sessions is not possible: streaming input failed: {problem}")
            return f"this engine's streaming input failed ({problem})"
        self.sessions = True
        return f"the end trigger {trigger!r} is one token and the engine runs streaming-input sessions"

    async def _probe_sessions(self) -> str | None:
        """Run a two-chunk session of one token each; None when it behaves, else what went wrong."""
        start = list(self.tokens.start_ids)
        params = SamplingParams(max_tokens=1, temperature=0, output_kind=RequestOutputKind.DELTA)
        session = ForcingSession(self._engine, f"s1serve-probe-{time.monotonic_ns()}", params, {})
        stops = 0
        try:
            async with asyncio.timeout(120):
                for last in (False, True):
                    target = start if not last else session.held + start
                    async for o in session.run(target, params, last=last):
                        stops += o.finish_reason is not None
                await session.close()
        except Exception as e:  # noqa: BLE001 - any failure means: use resubmission
            await session.close(abort=True)
            return f"{type(e).__name__}: {e}"
        return None if stops == 2 else f"{stops} of 2 chunks stopped"

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain, then stop the engine. vLLM's launcher calls this from a worker thread on SIGTERM.

        New generation requests get 503 at once; in-flight ones, forced rounds included, get up
        to the drain timeout to finish, since stopping the engine first would refuse their
        next round.
        """
        if not self.draining:
            self.draining = True
            logger.info("draining: finishing %d in-flight requests (up to %ss)", self.in_flight, self.drain_timeout)
        deadline = time.monotonic() + self.drain_timeout
        while self.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.in_flight:
            logger.warning("drain timeout: stopping the engine under %d requests", self.in_flight)
        self._engine.shutdown(timeout=0)

    # -- generate --------------------------------------------------------------------------------
    def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, **kwargs: Any
    ) -> AsyncGenerator[RequestOutput, None]:
        """Validate synchronously (so a bad budget is a 400 before any stream starts), then run."""
        record = current_record.get()
        try:
            spec = spec_from_extra_args(getattr(sampling_params, "extra_args", None))
        except BudgetError as e:
            raise VLLMValidationError(e.message, parameter=e.param) from None
        if (
            isinstance(sampling_params, SamplingParams)
            and self.keep_special_tokens
            and sampling_params.skip_special_tokens
        ):
            sampling_params = sampling_params.clone()
            sampling_params.skip_special_tokens = False
        if spec is None or not isinstance(sampling_params, SamplingParams):
            return self._plain(prompt, sampling_params, request_id, record, kwargs)
        try:
            spec = spec.with_profile(self.default_profile)
        except BudgetError as e:
            raise VLLMValidationError(e.message, parameter=e.param) from None
        if not isinstance(prompt, dict) or "prompt_token_ids" not in prompt:
            raise VLLMValidationError("a thinking budget needs a text or token prompt", parameter="thinking_budget")
        prompt_ids = list(prompt["prompt_token_ids"])
        if not self._opened(prompt_ids):
            prompt_ids += self.tokens.start_ids
        context_left = self.max_model_len - len(prompt_ids)
        if context_left <= 0:
            raise VLLMValidationError(
                f"the prompt and the thinking opener take {len(prompt_ids)} tokens, the model's context is "
                f"{self.max_model_len}",
                parameter="messages",
            )
        total = context_left if sampling_params.max_tokens is None else min(sampling_params.max_tokens, context_left)
        if fits_context(sampling_params.extra_args) and isinstance(spec.max_tokens, int):
            # A level (reasoning_effort), not a number: the server's cap fits into the context.
            spec = dataclasses.replace(spec, max_tokens=min(spec.max_tokens, context_left))
        if sampling_params.structured_outputs is not None and spec.final_answer_text:
            # The grammar owns the whole answer: no text may precede the JSON or the tool call.
            spec = dataclasses.replace(spec, final_answer_text="")
        try:
            spec.check_context(context_left)
            # Built once here so an impossible budget (an `auto` cap with no room left) is a 400
            # before any stream starts; each choice builds its own below.
            self._controller(spec, total, prompt_ids)
        except BudgetError as e:
            raise VLLMValidationError(e.message, parameter=e.param) from None
        request = _ForcedRequest(request_id, prompt, prompt_ids, sampling_params, spec, total, kwargs)
        return self._forced(request, record)

    def _controller(self, spec: BudgetSpec, total: int, prompt_ids: list[int]) -> ThinkingController:
        return ThinkingController(
            spec, self.tokens, self.codec, total, prompt_tokens=len(prompt_ids), default_profile=self.default_profile
        )

    def _opened(self, prompt_ids: list[int]) -> bool:
        """Whether the prompt (e.g. the chat template) already opened the thinking segment."""
        tail = self.codec.decode(prompt_ids[-8:]) if prompt_ids else ""
        return tail.rstrip().endswith(self.tokens.fmt.start)

    # -- plain: one engine request, observed for the report --------------------------------------
    async def _plain(
        self, prompt: Any, params: Any, request_id: str, record: RequestRecord | None, kwargs: dict[str, Any]
    ) -> AsyncGenerator[RequestOutput, None]:
        n = getattr(params, "n", 1) or 1
        choices = [ChoiceRecord(index=i) for i in range(n)]
        ids: list[list[int]] = [[] for _ in range(n)]
        cumulative = getattr(params, "output_kind", None) != RequestOutputKind.DELTA
        self._admit(record, choices, prompt, forced=False)
        try:
            async for out in self._engine.generate(prompt, params, request_id, **kwargs):
                now = time.monotonic()
                if record is not None:
                    record.generating()
                for o in out.outputs:
                    c = choices[o.index] if o.index < n else None
                    if c is None:
                        continue
                    if o.token_ids and c.first_token_at is None:
                        c.first_token_at = now
                    if cumulative:
                        ids[o.index] = list(o.token_ids)
                    else:
                        ids[o.index].extend(o.token_ids)
                    if o.finish_reason is not None:
                        c.finish_reason = o.finish_reason
                        self._account_plain(c, ids[o.index], now)
                yield out
        finally:
            self._release(choices)

    def _account_plain(self, c: ChoiceRecord, ids: list[int], now: float) -> None:
        """Split an unforced generation at its end delimiter, for the report."""
        thinking = self._thinking_length(ids)
        c.completion_tokens = len(ids)
        r = c.report
        r.thinking_tokens = r.generated_thinking_tokens = thinking
        r.answer_tokens = r.generated_answer_tokens = len(ids) - thinking
        if r.answer_tokens and c.first_answer_at is None:
            c.first_answer_at = now

    def _thinking_length(self, ids: list[int]) -> int:
        """Tokens before the end delimiter of an unforced output (0 when it never thought)."""
        end = self.tokens.end_ids
        for k in range(len(ids) - len(end) + 1):
            if tuple(ids[k : k + len(end)]) == end:
                return k
        return 0

    # -- forced: rounds driven by the controller -----------------------------------------------------
    async def _forced(self, req: _ForcedRequest, record: RequestRecord | None) -> AsyncGenerator[RequestOutput, None]:
        params, request_id, prompt_ids = req.params, req.request_id, req.prompt_ids
        n = params.n
        choices = [ChoiceRecord(index=i) for i in range(n)]
        self._admit(record, choices, {"prompt_token_ids": prompt_ids}, forced=True)
        self._rounds[request_id] = set()
        streams = [self._choice(req, choices[i]) for i in range(n)]
        pieces = streams[0] if n == 1 else _merge(streams)
        texts = [""] * n
        ids: list[list[int]] = [[] for _ in range(n)]
        lps: list[list[dict[int, Logprob]]] = [[] for _ in range(n)]
        finish: list[_Piece | None] = [None] * n
        kind = params.output_kind
        want_logprobs = params.logprobs is not None
        try:
            async for p in pieces:
                if record is not None:
                    record.generating()
                texts[p.index] += p.text
                ids[p.index].extend(p.ids)
                if p.logprobs:
                    lps[p.index].extend(p.logprobs)
                if p.finish_reason is not None:
                    finish[p.index] = p
                done = all(f is not None for f in finish)
                if kind == RequestOutputKind.FINAL_ONLY:
                    if not done:
                        continue
                    outputs = [
                        self._output(i, texts[i], ids[i], lps[i] if want_logprobs else None, finish[i])
                        for i in range(n)
                    ]
                elif kind == RequestOutputKind.DELTA:
                    outputs = [
                        self._output(
                            p.index,
                            p.text,
                            p.ids,
                            (p.logprobs or []) if want_logprobs else None,
                            p if p.finish_reason is not None else None,
                        )
                    ]
                else:
                    outputs = [
                        self._output(i, texts[i], ids[i], lps[i] if want_logprobs else None, finish[i])
                        for i in range(n)
                    ]
                yield RequestOutput(
                    request_id=request_id,
                    prompt=req.prompt.get("prompt"),
                    prompt_token_ids=prompt_ids,
                    prompt_logprobs=None,
                    outputs=outputs,
                    finished=done,
                )
        finally:
            self._rounds.pop(request_id, None)
            self._release(choices)

    @staticmethod
    def _output(
        index: int, text: str, ids: list[int], logprobs: list[dict[int, Logprob]] | None, last: _Piece | None
    ) -> CompletionOutput:
        return CompletionOutput(
            index=index,
            text=text,
            token_ids=list(ids),
            cumulative_logprob=None,
            logprobs=list(logprobs) if logprobs is not None else None,
            finish_reason=None if last is None else last.finish_reason,
            stop_reason=None if last is None else last.stop_reason,
        )

    async def _choice(self, req: _ForcedRequest, choice: ChoiceRecord) -> AsyncIterator[_Piece]:
        params, request_id, prompt_ids = req.params, req.request_id, req.prompt_ids
        index = choice.index
        ctl = self._controller(req.spec, req.total, prompt_ids)
        choice.report = ctl.report
        want_logprobs = params.logprobs is not None
        action = ctl.start()
        round_no = 0
        session: ForcingSession | None = None
        aborted = False
        live = self._rounds.get(request_id, set())
        try:
            while True:
                for insert in action.inserts:
                    if insert.segment == "answer" and choice.first_answer_at is None:
                        choice.first_answer_at = time.monotonic()
                    text = insert.text if insert.segment is not None else self._text(insert.ids, params)
                    forced_lp = [_certain(t, self.codec) for t in insert.ids] if want_logprobs else None
                    yield _Piece(index, text, list(insert.ids), forced_lp)
                if action.round is None:
                    choice.finish_reason = action.finish_reason
                    choice.completion_tokens = len(ctl.completion_ids)
                    yield _Piece(index, "", [], None, finish_reason=action.finish_reason)
                    return
                if self._rounds.get(request_id) is None:  # aborted between rounds
                    choice.finish_reason = "abort"
                    return
                rnd = action.round
                target = prompt_ids + ctl.context_ids
                round_params = self._round_params(params, rnd, index, round_no)
                in_session = self.sessions and session_compatible(round_params)
                if session is not None and not (in_session and session.continues(target)):
                    await _end_session(session, live)
                    session = None
                if in_session and session is None:
                    # The engine seeds a session's random stream once, from its first chunk.
                    session = ForcingSession(
                        self._engine,
                        f"{request_id}-{index}-{round_no}",
                        round_params,
                        req.kwargs,
                        cache_salt=req.prompt.get("cache_salt"),
                    )
                    live.add(session.engine_id)
                    choice.engine_requests["session"] += 1
                if session is not None:
                    choice.session_chunks += 1
                    outputs = session.run(target, round_params, last=rnd.segment == "answer")
                else:
                    choice.engine_requests["round"] += 1
                    outputs = self._one_round(req, rnd, target, round_params, f"{request_id}-{index}-{round_no}", live)
                # Thinking ids stream as they come when the end attempt is one stop token (the
                # controller strips exactly that last id); a text trigger or a provisional round
                # settles its ids when the round ends.
                live_ids = rnd.segment == "answer" or not (rnd.stop or rnd.provisional)
                holdback = TriggerHoldback(rnd.stop[0]) if rnd.stop else None
                got: list[int] = []
                got_lp: list[dict[int, Logprob]] = []
                finish_reason, stop_reason = "length", None
                async for o in outputs:
                    new_ids = list(o.token_ids)
                    new_lp = list(o.logprobs) if (want_logprobs and o.logprobs) else ([] if want_logprobs else None)
                    if new_ids and choice.first_token_at is None:
                        choice.first_token_at = time.monotonic()
                    got.extend(new_ids)
                    if new_lp:
                        got_lp.extend(new_lp)
                    text = o.text if holdback is None else holdback.feed(o.text)
                    if o.finish_reason is not None:
                        finish_reason, stop_reason = o.finish_reason, o.stop_reason
                        if session is not None:
                            # A session's stop_reason may still be an earlier chunk's: read the ids.
                            stop_reason = got[-1] if got and got[-1] in rnd.stop_token_ids else None
                        if holdback is not None and finish_reason != "stop":
                            text += holdback.flush()
                    if rnd.segment == "answer":
                        if (text or new_ids) and choice.first_answer_at is None:
                            choice.first_answer_at = time.monotonic()
                        yield _Piece(index, text, new_ids, new_lp)
                        continue
                    if live_ids and o.finish_reason == "stop" and new_ids:
                        new_ids = new_ids[:-1]  # the end attempt: EOS or the one-token trigger
                        new_lp = new_lp[:-1] if new_lp else new_lp
                    if not live_ids:
                        new_ids, new_lp = [], ([] if want_logprobs else None)
                    if rnd.provisional:
                        text = ""
                    if text or new_ids:
                        yield _Piece(index, text, new_ids, new_lp)
                attempt = None
                if rnd.segment == "thinking" and finish_reason == "stop":
                    attempt = EndAttempt.EOS if stop_reason is None else EndAttempt.TRIGGER
                before = len(ctl.completion_ids)
                action = ctl.finish_round(got, attempt, finish_reason)
                if rnd.segment == "thinking" and not live_ids:
                    kept = self._kept_thinking(ctl, before, action)
                    if kept:
                        lp = None
                        if want_logprobs:
                            lp = [
                                got_lp[i] if i < len(got_lp) and got[i] == t else _certain(t, self.codec)
                                for i, t in enumerate(kept)
                            ]
                        yield _Piece(index, self.codec.decode(kept) if rnd.provisional else "", kept, lp)
                round_no += 1
        except BaseException:
            aborted = True  # cut short (disconnect, error): the engine request is aborted
            raise
        finally:
            if session is not None:
                await _end_session(session, live, abort=aborted)

    async def _one_round(
        self,
        req: _ForcedRequest,
        rnd: Round,
        target: list[int],
        round_params: SamplingParams,
        round_id: str,
        live: set[str],
    ) -> AsyncIterator[CompletionOutput]:
        """A round as its own engine request (resubmission): the sequence is prefilled again."""
        live.add(round_id)
        round_prompt = tokens_input(target, cache_salt=req.prompt.get("cache_salt"))
        round_kwargs = {**req.kwargs, "reasoning_ended": rnd.segment == "answer"}
        try:
            async for out in self._engine.generate(round_prompt, round_params, round_id, **round_kwargs):
                yield out.outputs[0]
        finally:
            live.discard(round_id)

    def _text(self, ids: Any, params: SamplingParams) -> str:
        """Inserted delimiter text, decoded as the engine decodes generated text."""
        return self.codec.tokenizer.decode(list(ids), skip_special_tokens=params.skip_special_tokens)

    @staticmethod
    def _kept_thinking(ctl: ThinkingController, before: int, action: Any) -> list[int]:
        """The ids a text-trigger round kept (its text was already streamed by the hold-back)."""
        inserted = sum(len(i.ids) for i in action.inserts)
        end = len(ctl.completion_ids) - inserted
        return ctl.completion_ids[before:end]

    def _round_params(self, base: SamplingParams, rnd: Round, index: int, round_no: int) -> SamplingParams:
        """This round's sampling params: the user's, with the round's limits and stops."""
        seed = None if base.seed is None else base.seed + index + ROUND_SEED_STRIDE * round_no
        extra = {k: v for k, v in (base.extra_args or {}).items() if k not in (BUDGET_KEY, FIT_KEY)} or None
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
            "output_kind": RequestOutputKind.DELTA,
            "extra_args": extra,
            "max_tokens": rnd.max_tokens,
        }
        common.update(getattr(rnd, "sampling", None) or {})
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

    # -- bookkeeping -----------------------------------------------------------------------------
    def _admit(self, record: RequestRecord | None, choices: list[ChoiceRecord], prompt: Any, forced: bool) -> None:
        self.in_flight += 1
        if record is not None:
            record.choices.extend(choices)
            record.forced = record.forced or forced
            ids = prompt.get("prompt_token_ids") if isinstance(prompt, dict) else None
            record.prompt_tokens += len(ids or [])

    def _release(self, choices: list[ChoiceRecord]) -> None:
        self.in_flight -= 1

    def owns(self, engine_request_id: str) -> bool:
        """Whether an engine request (vLLM's internal id: ours plus a random suffix) is a
        forced request's round or session, admitted with its HTTP request."""
        base = engine_request_id.rsplit("-", 1)[0]
        return any(base in live or engine_request_id in live for live in self._rounds.values())

    async def abort(self, request_id: str | Any) -> None:
        """Abort a request: a forced one's live round, and no further rounds."""
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        engine_ids: list[str] = []
        for rid in ids:
            rounds = self._rounds.pop(rid, None)
            if rounds is not None:
                engine_ids.extend(rounds)
            else:
                engine_ids.append(rid)
        await self._engine.abort(engine_ids)


async def _end_session(session: ForcingSession, live: set[str], *, abort: bool = False) -> None:
    """End a choice's session and drop it from the request's live engine ids."""
    live.discard(session.engine_id)
    await session.close(abort=abort)


def _certain(token_id: int, codec: Codec) -> dict[int, Logprob]:
    """A forced token's logprob: inserted text is certain under the forcing policy."""
    return {token_id: Logprob(logprob=0.0, rank=1, decoded_token=codec.decode([token_id]))}


async def _merge(streams: list[AsyncIterator[_Piece]]) -> AsyncIterator[_Piece]:
    """Interleave the pieces of several choices as they come."""
    queue: asyncio.Queue[_Piece | BaseException | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[_Piece]) -> None:
        try:
            async for piece in stream:
                await queue.put(piece)
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

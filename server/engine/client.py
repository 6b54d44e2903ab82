"""The engine client vLLM's serving layer calls: it forces thinking budgets, and passes the rest.

vLLM's OpenAI, Responses and Anthropic servers call `generate()` on an engine client. This one
wraps `AsyncLLM`: a request whose record carries a budget (set by the gateway; or, for calls
made outside an HTTP request, a `vllm_xargs.s1serve_budget` spec) runs as a `ForcedRun` of
engine rounds driven by the budget controller, and comes back as ordinary `RequestOutput`s
with the inserted text and token ids in place. Plain requests run as they are, observed for
the report; the rest of the engine client interface is delegated (`delegate.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from budget.controller import FormatTokens, ThinkingController
from budget.spec import BudgetError
from server.engine.delegate import DelegatingEngineClient
from server.engine.forced import ForcedRequest, ForcedRun
from server.engine.records import ChoiceRecord, RequestRecord, current_record
from server.engine.rounds import Codec, resubmitted_round
from server.engine.session import ForcingSession
from server.engine.xargs import spec_from_extra_args
from server.vllm_compat import (
    RequestOutput,
    RequestOutputKind,
    SamplingParams,
    VLLMValidationError,
    keep_first_timestamps,
    skip_admission_for,
)

logger = logging.getLogger("s1serve")

FORCING_PATHS = ("auto", "sessions", "resubmission")
PROBE_TOKENS = 4  # greedy tokens per chunk of the start-up session probe


class ForcingEngineClient(DelegatingEngineClient):
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
        super().__init__(engine)
        self.tokens = tokens
        self.codec = codec
        self.drain_timeout = drain_timeout
        self.default_profile = default_profile
        # The format's delimiters hold special tokens (s1's <|im_start|>): text keeps them whatever
        # the request's skip_special_tokens, or no parser could see where the thinking ends.
        self.keep_special_tokens = keep_special_tokens
        self.draining = False  # set at shutdown: the HTTP layer refuses new work with 503
        self.max_model_len: int = engine.model_config.max_model_len
        self.live_rounds: dict[str, set[str]] = {}  # request id -> engine ids of its live rounds or sessions
        self.in_flight = 0  # forced and plain requests between admission and their last output
        # Forced choices run as streaming-input sessions (one engine request each) when set;
        # decided once at start-up by `choose_forcing_path`.
        self.sessions = False
        self.forcing_reason = "not chosen yet"  # why the forcing path is what it is (/version)

    @property
    def forcing_path(self) -> str:
        """How forced choices run: "sessions" (one resumable engine request per choice, its
        rounds appended as chunks) or "resubmission" (one engine request per round)."""
        return "sessions" if self.sessions else "resubmission"

    async def choose_forcing_path(self, requested: str = "auto") -> str:
        """Pick the forcing path once, before serving; returns (and keeps) why."""
        self.forcing_reason = await self._choose_forcing_path(requested)
        return self.forcing_reason

    async def _choose_forcing_path(self, requested: str) -> str:
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
            logger.warning("forcing by resubmission: the sessions probe failed: %s", problem)
            return f"this engine's streaming input failed ({problem})"
        self.sessions = True
        return f"the end trigger {trigger!r} is one token and the engine runs streaming-input sessions"

    async def _probe_sessions(self) -> str | None:
        """Run a two-chunk greedy session and the same two rounds resubmitted; None when the
        session stops at each chunk and continues with the ids resubmission gives, else what
        went wrong. A session that forced different ids would be wrong silently."""
        start = list(self.tokens.start_ids)
        params = SamplingParams(
            max_tokens=PROBE_TOKENS, temperature=0, ignore_eos=True, output_kind=RequestOutputKind.DELTA
        )
        probe_id = f"s1serve-probe-{time.monotonic_ns()}"
        session = ForcingSession(self.engine, probe_id, params, {})
        chunks: list[list[int]] = []
        targets: list[list[int]] = []
        stops = 0
        try:
            async with asyncio.timeout(120):
                for last in (False, True):
                    target = start if not last else targets[0] + chunks[0] + start
                    targets.append(target)
                    chunks.append([])
                    async for o in session.run(target, params, last=last):
                        chunks[-1].extend(o.token_ids)
                        stops += o.finish_reason is not None
                await session.close()
                if stops != 2:
                    return f"{stops} of 2 chunks stopped"
                for n, (target, chunk) in enumerate(zip(targets, chunks, strict=True)):
                    rounds: list[int] = []
                    live: set[str] = set()
                    async for o in resubmitted_round(
                        self.engine,
                        target,
                        params,
                        f"{probe_id}-round{n}",
                        {},
                        cache_salt=None,
                        answer=False,
                        live=live,
                    ):
                        rounds.extend(o.token_ids)
                    if rounds != chunk:
                        return f"chunk {n + 1} of a session gave ids {chunk}, resubmission {rounds}"
        except Exception as e:  # noqa: BLE001 - any failure means: use resubmission
            await session.close(abort=True)
            return f"{type(e).__name__}: {e}"
        return None

    def exempt_rounds_from_queue_check(self) -> None:
        """vLLM's own queue limits count engine requests, and each forced round is one: a forced
        request is admitted once, by the serving layer's check before its response starts, and
        its rounds skip the per-request one, so it is never refused between rounds."""
        skip_admission_for(self.engine, self.owns)

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
        self.engine.shutdown(timeout=0)

    # -- generate --------------------------------------------------------------------------------
    def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, **kwargs: Any
    ) -> AsyncGenerator[RequestOutput, None]:
        """Check the budget against this prompt synchronously (so an impossible one is a 400
        before any stream starts), then run."""
        record = current_record.get()
        spec = record.budget if record is not None else None
        if spec is None:
            try:
                spec = spec_from_extra_args(getattr(sampling_params, "extra_args", None), self.default_profile)
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
        req = ForcedRequest(request_id, prompt, prompt_ids, sampling_params, spec, total, context_left, kwargs)
        try:
            if not spec.fit_to_context:  # a level's cap shrinks to the context instead
                spec.check_context(context_left)
            # One controller per choice, built here so an impossible budget (an `auto` cap with
            # no room left, a harness budget the trigger cannot run) is a 400 before any output.
            controllers = [self._controller(req) for _ in range(sampling_params.n)]
        except BudgetError as e:
            raise VLLMValidationError(e.message, parameter=e.param) from None
        return ForcedRun(self, req, controllers, record).outputs()

    def _controller(self, req: ForcedRequest) -> ThinkingController:
        return ThinkingController(
            req.spec,
            self.tokens,
            self.codec,
            req.total,
            prompt_tokens=len(req.prompt_ids),
            default_profile=self.default_profile,
            context_left=req.context_left,
            # The grammar owns the whole answer: no text may precede the JSON or the tool call.
            answer_text=req.params.structured_outputs is None,
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
        self.admit(record, choices, _prompt_ids(prompt), forced=False)
        try:
            async for out in self.engine.generate(prompt, params, request_id, **kwargs):
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
            self.release()

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

    # -- bookkeeping -----------------------------------------------------------------------------
    def admit(
        self, record: RequestRecord | None, choices: list[ChoiceRecord], prompt_ids: list[int], forced: bool
    ) -> None:
        """A request starts: counted in flight (the drain waits for it) and in its record."""
        self.in_flight += 1
        if record is not None:
            record.choices.extend(choices)
            record.forced = record.forced or forced
            record.prompt_tokens += len(prompt_ids)

    def release(self) -> None:
        self.in_flight -= 1

    def owns(self, engine_request_id: str) -> bool:
        """Whether an engine request (vLLM's internal id: ours plus a random suffix) is a
        forced request's round or session, admitted with its HTTP request."""
        base = engine_request_id.rsplit("-", 1)[0]
        return any(base in live or engine_request_id in live for live in self.live_rounds.values())

    async def abort(self, request_id: str | Any) -> None:
        """Abort a request: a forced one's live round, and no further rounds."""
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        engine_ids: list[str] = []
        for rid in ids:
            rounds = self.live_rounds.pop(rid, None)
            if rounds is not None:
                engine_ids.extend(rounds)
            else:
                engine_ids.append(rid)
        await self.engine.abort(engine_ids)


def _prompt_ids(prompt: Any) -> list[int]:
    ids = prompt.get("prompt_token_ids") if isinstance(prompt, dict) else None
    return list(ids or [])

"""A budget-forced request: each choice's controller rounds, run on the forcing path, merged.

Each choice runs its controller's rounds on the engine: as chunks of one streaming-input
session when the server forces on sessions and the round can be a chunk, else as resubmitted
rounds (`rounds.resubmitted_round`); both take `rounds.round_params`. Inserted text and token
ids are put in place, and the choices come back as ordinary `RequestOutput`s in the request's
output kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from budget.controller import EndAttempt, ThinkingController
from budget.spec import BudgetSpec
from budget.splitter import TriggerHoldback
from server.engine.records import ChoiceRecord, RequestRecord
from server.engine.rounds import Codec, certain, probe_round, resubmitted_round, round_params
from server.engine.session import ForcingSession, session_compatible
from server.vllm_compat import CompletionOutput, Logprob, RequestOutput, RequestOutputKind, SamplingParams


@dataclass(frozen=True)
class ForcedRequest:
    """What every choice of one forced request shares, validated by `generate()`."""

    request_id: str
    prompt: dict[str, Any]  # the engine input as vLLM's serving layer rendered it
    prompt_ids: list[int]  # its token ids, with the thinking opener when the prompt lacked it
    params: SamplingParams
    spec: BudgetSpec
    total: int  # bound on everything generated or inserted after the prompt
    context_left: int  # context after the prompt: a level's cap shrinks to it
    kwargs: dict[str, Any]  # generate() keywords passed through to each round


@dataclass
class Piece:
    """One update of one choice: new text and ids, and the finish reason on the last."""

    index: int
    text: str
    ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ForcingHost(Protocol):
    """What a forced run needs from the engine client that started it."""

    engine: Any  # vLLM's AsyncLLM
    codec: Codec
    sessions: bool
    live_rounds: dict[str, set[str]]  # request id -> engine ids of its live rounds or sessions

    def admit(self, record: RequestRecord | None, choices: list[ChoiceRecord], prompt_ids: list[int],
              forced: bool) -> None: ...  # fmt: skip
    def release(self) -> None: ...


class ForcedRun:
    """One forced request on its way through the engine."""

    def __init__(
        self,
        host: ForcingHost,
        req: ForcedRequest,
        controllers: list[ThinkingController],
        record: RequestRecord | None,
    ) -> None:
        self.host = host
        self.req = req
        self.controllers = controllers  # one per choice, built (and so checked) before any output
        self.record = record

    async def outputs(self) -> AsyncGenerator[RequestOutput, None]:
        """The request's outputs as vLLM's serving layer expects them, in its output kind."""
        req, record = self.req, self.record
        params, request_id, prompt_ids = req.params, req.request_id, req.prompt_ids
        n = params.n
        choices = [ChoiceRecord(index=i) for i in range(n)]
        self.host.admit(record, choices, prompt_ids, forced=True)
        self.host.live_rounds[request_id] = set()
        streams = [self._choice(choices[i]) for i in range(n)]
        pieces = streams[0] if n == 1 else _merge(streams)
        texts = [""] * n
        ids: list[list[int]] = [[] for _ in range(n)]
        lps: list[list[dict[int, Logprob]]] = [[] for _ in range(n)]
        finish: list[Piece | None] = [None] * n
        kind = params.output_kind
        want_logprobs = params.logprobs is not None
        try:
            async for p in pieces:
                # Rounds' outputs are often ready at once: without a turn to the event loop, a
                # forced request could keep other requests, probes and scrapes waiting.
                await asyncio.sleep(0)
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
            self.host.live_rounds.pop(request_id, None)
            self.host.release()

    @staticmethod
    def _output(
        index: int, text: str, ids: list[int], logprobs: list[dict[int, Logprob]] | None, last: Piece | None
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

    async def _choice(self, choice: ChoiceRecord) -> AsyncIterator[Piece]:
        """One choice's pieces: its controller's rounds on the forcing path, inserts in between."""
        req = self.req
        params, request_id, prompt_ids = req.params, req.request_id, req.prompt_ids
        host = self.host
        index = choice.index
        ctl = self.controllers[index]
        choice.report = ctl.report
        want_logprobs = params.logprobs is not None
        action = ctl.start()
        round_no = 0
        session: ForcingSession | None = None
        aborted = False
        live = host.live_rounds.get(request_id, set())
        try:
            while True:
                for insert in action.inserts:
                    if insert.segment == "answer" and choice.first_answer_at is None:
                        choice.first_answer_at = time.monotonic()
                    text = insert.text if insert.segment is not None else self._text(insert.ids, params)
                    forced_lp = [certain(t, host.codec) for t in insert.ids] if want_logprobs else None
                    yield Piece(index, text, list(insert.ids), forced_lp)
                if action.round is None and action.probe is None:
                    choice.finish_reason = action.finish_reason
                    choice.completion_tokens = len(ctl.completion_ids)
                    yield Piece(index, "", [], None, finish_reason=action.finish_reason)
                    return
                if host.live_rounds.get(request_id) is None:  # aborted before the next probe or round
                    choice.finish_reason = "abort"
                    return
                if action.probe is not None:
                    # The session (if any) waits paused, holding its blocks, for the probe's few steps.
                    text, count = await probe_round(
                        host.engine,
                        prompt_ids + ctl.completion_ids + list(action.probe.ids),
                        action.probe,
                        f"{request_id}-{index}-probe{ctl.report.probes}",
                        req.kwargs,
                        cache_salt=req.prompt.get("cache_salt"),
                        live=live,
                    )
                    action = ctl.finish_probe(text, count)
                    continue
                rnd = action.round
                assert rnd is not None
                target = prompt_ids + ctl.context_ids
                rparams = round_params(params, rnd, index, round_no)
                in_session = host.sessions and session_compatible(rparams)
                if session is not None and not (in_session and session.continues(target)):
                    await end_session(session, live)
                    session = None
                if in_session and session is None:
                    # The engine seeds a session's random stream once, from its first chunk.
                    session = ForcingSession(
                        host.engine,
                        f"{request_id}-{index}-{round_no}",
                        rparams,
                        req.kwargs,
                        cache_salt=req.prompt.get("cache_salt"),
                    )
                    live.add(session.engine_id)
                    choice.engine_requests["session"] += 1
                if session is not None:
                    choice.session_chunks += 1
                    outputs = session.run(target, rparams, last=rnd.segment == "answer")
                else:
                    choice.engine_requests["round"] += 1
                    outputs = resubmitted_round(
                        host.engine,
                        target,
                        rparams,
                        f"{request_id}-{index}-{round_no}",
                        req.kwargs,
                        cache_salt=req.prompt.get("cache_salt"),
                        answer=rnd.segment == "answer",
                        live=live,
                    )
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
                        yield Piece(index, text, new_ids, new_lp)
                        continue
                    if live_ids and o.finish_reason == "stop" and new_ids:
                        new_ids = new_ids[:-1]  # the end attempt: EOS or the one-token trigger
                        new_lp = new_lp[:-1] if new_lp else new_lp
                    if not live_ids:
                        new_ids, new_lp = [], ([] if want_logprobs else None)
                    if rnd.provisional:
                        text = ""
                    if text or new_ids:
                        yield Piece(index, text, new_ids, new_lp)
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
                                got_lp[i] if i < len(got_lp) and got[i] == t else certain(t, host.codec)
                                for i, t in enumerate(kept)
                            ]
                        yield Piece(index, host.codec.decode(kept) if rnd.provisional else "", kept, lp)
                round_no += 1
        except BaseException:
            aborted = True  # cut short (disconnect, error): the engine request is aborted
            raise
        finally:
            if session is not None:
                await end_session(session, live, abort=aborted)

    def _text(self, ids: Any, params: SamplingParams) -> str:
        """Inserted delimiter text, decoded as the engine decodes generated text."""
        return self.host.codec.tokenizer.decode(list(ids), skip_special_tokens=params.skip_special_tokens)

    @staticmethod
    def _kept_thinking(ctl: ThinkingController, before: int, action: Any) -> list[int]:
        """The ids a text-trigger round kept (its text was already streamed by the hold-back)."""
        inserted = sum(len(i.ids) for i in action.inserts)
        end = len(ctl.completion_ids) - inserted
        return ctl.completion_ids[before:end]


async def end_session(session: ForcingSession, live: set[str], *, abort: bool = False) -> None:
    """End a choice's session and drop it from the request's live engine ids."""
    live.discard(session.engine_id)
    await session.close(abort=abort)


async def _merge(streams: list[AsyncIterator[Piece]]) -> AsyncIterator[Piece]:
    """Interleave the pieces of several choices as they come."""
    queue: asyncio.Queue[Piece | BaseException | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Piece]) -> None:
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

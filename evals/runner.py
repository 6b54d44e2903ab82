"""Running every (question, point) of a plan against an endpoint, one JSONL row per sample.

`samples.jsonl` doubles as the resume cache. A row's key hashes what shapes its *generation* (model,
prompt, thinking budget, token bound, temperature, seed, sample index, and for rejection sampling its
cap and tries) and nothing else: not the endpoint's address, not the method's name, not the gold
answer or the checker. A rerun with the same settings skips what is done, a change of settings
computes new rows, and a corrected gold answer or checker costs no request, because the summary
regrades every row from its stored output (evals/summary.py).

Majority voting draws one pool per question: the keys of sample i do not depend on the n of the
point, so the n = 2 point votes over the first two samples of the n = 64 point (s1's maj@n over one
pool), the pool is drawn once, and a larger n later draws only the samples it adds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evals.checkers import GRADER_VERSION, grade_output
from evals.client import Endpoint, EndpointError, RequestRejected
from evals.methods import Point
from evals.replies import Reply, read_replies
from evals.tasks import Question


@dataclass(frozen=True)
class Settings:
    model: str
    max_tokens: int | None  # None: no max_tokens is sent (the server's default applies)
    temperature: float = 0.0
    sample_temperature: float = 0.7
    seed: int = 0
    rejection_temperature: float = 1.0

    def temperature_of(self, point: Point) -> float:
        if point.rejection_cap is not None:
            return self.rejection_temperature
        return self.sample_temperature if point.sampled else self.temperature


class MethodUnsupported(EndpointError):
    """The endpoint rejects or ignores what a method needs (s1serve's budget fields)."""


def row_key(settings: Settings, question: Question, point: Point, sample: int) -> str:
    shaping = {
        "model": settings.model,
        "prompt": prompt_of(question, point),
        "thinking_budget": point.thinking_budget,
        "sample": sample,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature_of(point),
        "seed": settings.seed,
        "rejection_cap": point.rejection_cap,
        "max_tries": point.max_tries,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:24]


def keys_for(settings: Settings, question: Question, point: Point) -> list[str]:
    return [row_key(settings, question, point, i) for i in range(point.samples)]


def prompt_of(question: Question, point: Point) -> str:
    """The question's text, the method's prompt after a blank line (as s1's templates put it), then the
    task's answer-format instruction, if any."""
    return "\n\n".join(part for part in (question.text, point.prompt_suffix, question.instruction) if part)


def request_seed(key: str, attempt: int = 0) -> int:
    return int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Rows already in samples.jsonl by key (a later row with the same key wins; a torn last line is ignored).

    Rows of refused requests (`error`) are left out, so that a rerun asks again."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                if row.get("error"):
                    rows.pop(row["key"], None)
                else:
                    rows[row["key"]] = row
    return rows


class Runner:
    def __init__(
        self,
        endpoint: Endpoint,
        settings: Settings,
        questions: list[Question],
        points: list[Point],
        samples_path: Path,
        show_progress: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.questions = questions
        self.points = points
        self.samples_path = samples_path
        self.show_progress = show_progress
        self.failed_methods: dict[str, str] = {}
        self._n_supported = True

    def keys(self, question: Question, point: Point) -> list[str]:
        return keys_for(self.settings, question, point)

    def pending(self, done: dict[str, dict[str, Any]]) -> list[tuple[Question, Point]]:
        """Units whose rows are not all in the cache, point by point so early points finish first.

        A unit whose missing rows another pending unit of the same question also draws is left out:
        the majority points of one question share a pool, which the largest n draws once.
        """
        missing = {
            (q.id, i): {k for k in self.keys(q, p) if k not in done}
            for i, p in enumerate(self.points)
            for q in self.questions
        }
        claimed: dict[str, set[str]] = {}
        kept: set[tuple[str, int]] = set()
        for (qid, i), keys in sorted(missing.items(), key=lambda item: -len(item[1])):
            if keys and not keys <= claimed.setdefault(qid, set()):
                kept.add((qid, i))
                claimed[qid] |= keys
        return [(q, p) for i, p in enumerate(self.points) for q in self.questions if (q.id, i) in kept]

    async def run(self, done: dict[str, dict[str, Any]]) -> None:
        """Compute every pending unit, appending rows as they finish; an endpoint failure stops the run."""
        units = self.pending(done)
        if not units:
            return
        bar = tqdm(total=len(units), unit="q", desc="eval", file=sys.stderr, disable=not self.show_progress)
        with self.samples_path.open("a", encoding="utf-8") as sink:

            async def one(question: Question, point: Point) -> None:
                if point.method in self.failed_methods:
                    bar.update(1)
                    return
                try:
                    rows = await self._unit(question, point, done)
                except MethodUnsupported as e:
                    self.failed_methods.setdefault(point.method, str(e))
                    rows = []
                except RequestRejected as e:
                    # The endpoint refused this request (a 4xx that retrying will not change): the unit's
                    # samples are recorded as failed, the run goes on, and the summary reports them.
                    keys = [(i, k) for i, k in enumerate(self.keys(question, point)) if k not in done]
                    rows = [self._failed_row(question, point, k, i, {"error": str(e)}) for i, k in keys]
                if rows:
                    for row in rows:
                        done[row["key"]] = row
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    sink.flush()
                bar.update(1)
                bar.set_postfix(requests=self.endpoint.requests_sent, refresh=False)

            tasks = [asyncio.ensure_future(one(q, p)) for q, p in units]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                bar.close()

    async def _unit(self, question: Question, point: Point, done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The unit's rows not yet in `done` (for majority, the pool samples this n adds)."""
        keys = self.keys(question, point)
        if point.rejection_cap is not None:
            reply, latency, tries, rejected = await self._rejection(question, point, keys[0])
            if reply is None:
                failure = f"no try's thinking fit the cap of {point.rejection_cap} tokens in {tries} tries"
                why = {"failure": failure}
                return [self._failed_row(question, point, keys[0], 0, why, tries, rejected_thinking=rejected)]
            row = self._row(question, point, keys[0], 0, reply, latency, 1, tries)
            return [{**row, "rejected_thinking": rejected}]
        todo = [(i, k) for i, k in enumerate(keys) if k not in done]
        if len(todo) > 1 and self._n_supported:
            try:
                started = time.perf_counter()
                replies = await self._ask(question, point, request_seed(todo[0][1]), n=len(todo))
                latency = time.perf_counter() - started
                return [
                    self._row(question, point, k, i, r, latency, len(replies), 1)
                    for (i, k), r in zip(todo, replies, strict=True)
                ]
            except RequestRejected as e:
                if e.param != "n" and " n " not in f" {e.message} ":
                    raise
                self._n_supported = False  # the endpoint takes one choice per request: ask n times instead
        rows = []
        for i, key in todo:
            started = time.perf_counter()
            (reply,) = await self._ask(question, point, request_seed(key), n=1)
            rows.append(self._row(question, point, key, i, reply, time.perf_counter() - started, 1, 1))
        return rows

    async def _rejection(self, question: Question, point: Point, key: str) -> tuple[Reply | None, float, int, list]:
        """s1's rejection sampling: tries whose thinking is stopped at cap + 1 tokens (`point.thinking_budget`),
        drawn until one's thinking fits the cap, at most `point.max_tries`. Returns the kept try (None when
        none fit), the summed latency, the tries drawn and each rejected try's thinking tokens."""
        cap, tries = point.rejection_cap, point.max_tries or 1
        assert cap is not None
        latency, rejected = 0.0, []
        for attempt in range(tries):
            started = time.perf_counter()
            (reply,) = await self._ask(question, point, request_seed(key, attempt), n=1, needs_report=False)
            latency += time.perf_counter() - started
            if reply.thinking_tokens is None:
                raise MethodUnsupported(
                    f"method {point.method} needs thinking token counts, and {self.endpoint.base_url} reports none "
                    "(no `thinking` report, no usage.completion_tokens_details.reasoning_tokens)"
                )
            if reply.thinking_tokens <= cap:
                return reply, latency, attempt + 1, rejected
            rejected.append(reply.thinking_tokens)
        return None, latency, tries, rejected

    async def _ask(self, question: Question, point: Point, seed: int, n: int, needs_report: bool = True) -> list[Reply]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt_of(question, point)}],
            "temperature": self.settings.temperature_of(point),
            "seed": seed,
        }
        if self.settings.max_tokens is not None:
            body["max_tokens"] = self.settings.max_tokens
        if n > 1:
            body["n"] = n
        if point.thinking_budget is not None:
            body["thinking_budget"] = point.thinking_budget
        try:
            response = await self.endpoint.chat(body)
        except RequestRejected as e:
            # A refused budget *value* (error.param `thinking_budget.<key>`, e.g. a cap larger than the context)
            # fails these samples only; a refused budget *field* means the endpoint cannot run the method.
            param, text = e.param or "", e.message.lower()
            unknown_key = any(w in text for w in ("not a thinking budget field", "unknown", "unrecognized", "extra"))
            if point.thinking_budget is not None and (unknown_key or not param.startswith("thinking_budget.")):
                if "thinking" in f"{param} {text}":
                    raise MethodUnsupported(
                        f"method {point.method} needs s1serve's thinking_budget field, "
                        f"which {self.endpoint.base_url} rejected: {e.message}"
                    ) from None
            raise
        replies = read_replies(response)
        if len(replies) != n:
            raise EndpointError(f"{self.endpoint.base_url} returned {len(replies)} choices for n={n}")
        if needs_report and point.thinking_budget is not None and any(r.report is None for r in replies):
            raise MethodUnsupported(
                f"method {point.method} needs s1serve's thinking_budget field, which {self.endpoint.base_url} "
                "ignored (its answer has no per-choice `thinking` report)"
            )
        return replies

    def _failed_row(
        self, question: Question, point: Point, key: str, sample: int, why: dict[str, str], tries: int = 0, **more: Any
    ) -> dict[str, Any]:
        """A sample with no answer: refused by the endpoint (`error`, asked again by a rerun) or, for rejection
        sampling, no try within the cap (`failure`, kept). The summary counts it as failed, never as a sample."""
        blank = Reply("", "", None, None, None, None, None)
        return {**self._row(question, point, key, sample, blank, 0.0, 1, tries), "correct": False, **why, **more}

    def _row(
        self,
        question: Question,
        point: Point,
        key: str,
        sample: int,
        reply: Reply,
        latency: float,
        choices: int,
        tries: int,
    ) -> dict[str, Any]:
        # Graded as written; the summary regrades from `thinking` and `answer` with the gold of its own run.
        graded = grade_output(question.checker, question.gold, reply.answer, reply.thinking)
        report = reply.report or {}
        return {
            "key": key,
            "question_id": question.id,
            "method": point.method,
            "kind": point.kind,
            "budget": point.budget,
            "label": point.label,
            "sample": sample,
            "prompt": prompt_of(question, point),
            "thinking": reply.thinking,
            "answer": reply.answer,
            "extracted": graded.extracted,
            "gold": question.gold,
            "correct": graded.correct,
            "grader_version": GRADER_VERSION,
            "thinking_tokens": reply.thinking_tokens,
            "answer_tokens": reply.answer_tokens,
            "completion_tokens": reply.completion_tokens,
            "waits_inserted": report.get("waits_inserted"),
            "forced_end": report.get("forced_end"),
            "thinking_report": reply.report,
            "finish_reason": reply.finish_reason,
            "tries": tries,
            "latency_s": round(latency / choices, 4),  # this sample's share of its request's time
        }

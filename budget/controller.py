"""The forcing policy of one choice, as a state machine over engine rounds.

A *round* is one engine request that continues the sequence. Thinking rounds stop at every
end attempt (the trigger or EOS), so the policy decides at exactly the points where s1's
reference loop does: override the attempt with wait text, accept it, or force the end when
the cap is reached. The controller works on token ids and never re-tokenizes generated text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol

from budget.formats import ThinkingFormat, ends_with_newline
from budget.spec import BudgetSpec

InsertKind = Literal["wait", "delimiter", "final_answer"]
Segment = Literal["thinking", "answer"]


class TextCodec(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


class EndAttempt(Enum):
    """How a thinking round ended early."""

    TRIGGER = "trigger"  # the end trigger was generated
    EOS = "eos"  # end of sequence inside thinking


@dataclass(frozen=True)
class FormatTokens:
    """A thinking format resolved to one tokenizer's ids, computed once per server."""

    fmt: ThinkingFormat
    start_ids: tuple[int, ...]
    end_ids: tuple[int, ...]
    end_sep_ids: tuple[int, ...]
    trigger_ids: tuple[int, ...]
    newline_ids: tuple[int, ...]

    @classmethod
    def build(cls, fmt: ThinkingFormat, encode: Callable[[str], list[int]]) -> FormatTokens:
        return cls(
            fmt=fmt,
            start_ids=tuple(encode(fmt.prompt_suffix)),
            end_ids=tuple(encode(fmt.end)),
            end_sep_ids=tuple(encode(fmt.end_sep)),
            trigger_ids=tuple(encode(fmt.trigger)),
            newline_ids=tuple(encode("\n")),
        )

    @property
    def single_token_trigger(self) -> bool:
        """One-token triggers are stopped on by id; longer ones by text, like vLLM stop strings."""
        return len(self.trigger_ids) == 1


@dataclass(frozen=True)
class Round:
    """One engine request continuing the sequence by at most `max_tokens` tokens.

    In thinking rounds the engine stops at `stop_token_ids` / `stop` (the trigger) and EOS;
    the first `min_tokens` tokens may not end thinking (EOS and one-token triggers are masked
    through the engine's min_tokens, a text trigger through `bad_words`).
    """

    segment: Segment
    max_tokens: int
    min_tokens: int = 0
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    bad_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Insertion:
    ids: tuple[int, ...]
    text: str
    kind: InsertKind
    segment: Segment | None  # where the text is shown; None for delimiters


@dataclass(frozen=True)
class Action:
    """What the engine loop does next: append `inserts`, then run `round` or finish."""

    inserts: tuple[Insertion, ...] = ()
    round: Round | None = None
    finish_reason: str | None = None


@dataclass
class ThinkingReport:
    """Per-choice accounting, as reported in responses and metrics."""

    thinking_tokens: int = 0
    answer_tokens: int = 0
    waits_inserted: int = 0
    forced_end: bool = False
    min_suppressed: int = 0
    generated_thinking_tokens: int = 0
    generated_answer_tokens: int = 0
    inserted: dict[str, int] = field(default_factory=lambda: {"wait": 0, "final_answer": 0, "delimiter": 0})

    def public(self) -> dict[str, int | bool]:
        return {
            "thinking_tokens": self.thinking_tokens,
            "answer_tokens": self.answer_tokens,
            "waits_inserted": self.waits_inserted,
            "forced_end": self.forced_end,
        }


class ThinkingController:
    """Drives one choice from the first thinking token to the end of its answer.

    `total_limit` bounds every token generated or inserted after the prompt (the request's
    max_tokens, or the context left). The prompt must already end with the thinking-start
    delimiter.
    """

    def __init__(self, spec: BudgetSpec, tokens: FormatTokens, codec: TextCodec, total_limit: int) -> None:
        self.spec = spec
        self.tokens = tokens
        self.codec = codec
        self.total_limit = total_limit
        self.report = ThinkingReport()
        self.completion_ids: list[int] = []
        self.thinking_ids: list[int] = []
        self.segment: Segment = "thinking"
        self._wait_ids = tuple(codec.encode(spec.wait_text)) if spec.wait_text else ()
        self._final_ids = tuple(codec.encode(spec.final_answer_text)) if spec.final_answer_text else ()

    # -- budget arithmetic -------------------------------------------------------------------
    @property
    def total_left(self) -> int:
        return self.total_limit - len(self.completion_ids)

    @property
    def cap_left(self) -> int | None:
        cap = self.spec.max_tokens
        return None if cap is None else cap - self.report.thinking_tokens

    # -- transitions ---------------------------------------------------------------------------
    def start(self) -> Action:
        if not self.spec.enabled:
            return self._end_thinking(forced=False, sep=True)
        if self.cap_left == 0:
            return self._end_thinking(forced=True)
        return self._thinking_round()

    def finish_round(self, ids: list[int], attempt: EndAttempt | None, finish_reason: str) -> Action:
        """Account for one finished round and decide what follows.

        `ids` are the round's generated ids as the engine returned them (an end attempt's
        trigger or EOS still at the end); `attempt` says whether the round ended on one.
        """
        if self.segment == "answer":
            self._append(ids)
            self.report.generated_answer_tokens += len(ids)
            self.report.answer_tokens += len(ids)
            return Action(finish_reason=finish_reason)

        kept = self._strip_attempt(ids, attempt) if attempt is not None else list(ids)
        self._append(kept)
        self.thinking_ids.extend(kept)
        self.report.thinking_tokens += len(kept)
        self.report.generated_thinking_tokens += len(kept)

        if attempt is None:
            if self.cap_left is not None and self.cap_left <= 0:
                return self._end_thinking(forced=True)
            if self.total_left <= 0:
                return Action(finish_reason="length")
            return self._thinking_round()  # stopped early for another reason (not expected)

        below_min = self.report.thinking_tokens < self.spec.min_tokens
        if self.report.waits_inserted < self.spec.num_ignore or below_min:
            if self._wait_ids:
                return self._insert_wait()
            if kept:  # suppress only: mask the delimiter and keep thinking
                self.report.min_suppressed += 1
                return self._thinking_round()
            # A text trigger slipped past the mask without progress: accept the end rather than loop.
        return self._end_thinking(forced=False)

    # -- pieces --------------------------------------------------------------------------------
    def _thinking_round(self) -> Action:
        limit = self.total_left
        if self.cap_left is not None:
            limit = min(limit, self.cap_left)
        if limit <= 0:
            return Action(finish_reason="length")
        mask = 0
        if not self._wait_ids and self.report.thinking_tokens < self.spec.min_tokens:
            mask = min(self.spec.min_tokens - self.report.thinking_tokens, limit)
        single = self.tokens.single_token_trigger
        return Action(
            round=Round(
                segment="thinking",
                max_tokens=limit,
                min_tokens=mask,
                stop_token_ids=self.tokens.trigger_ids if single else (),
                stop=() if single else (self.tokens.fmt.trigger,),
                bad_words=(self.tokens.fmt.trigger,) if mask and not single else (),
            )
        )

    def _insert_wait(self) -> Action:
        n = len(self._wait_ids)
        if (self.cap_left is not None and n > self.cap_left) or n > self.total_left:
            return self._end_thinking(forced=True)
        insert = Insertion(self._wait_ids, self.spec.wait_text, "wait", "thinking")
        self._apply(insert)
        self.thinking_ids.extend(insert.ids)
        self.report.thinking_tokens += n
        self.report.waits_inserted += 1
        action = self._thinking_round()
        return Action(inserts=(insert,), round=action.round, finish_reason=action.finish_reason)

    def _end_thinking(self, *, forced: bool, sep: bool = False) -> Action:
        """Close the thinking segment: end delimiter, and on a forced end the final-answer text."""
        t = self.tokens
        inserts: list[Insertion] = []
        if forced:
            # s1: a newline unless the thinking already ends in one, the delimiter, a separator.
            bare = self.thinking_ids and not ends_with_newline(self.codec.decode, self.thinking_ids)
            lead = t.newline_ids if bare else ()
            inserts.append(Insertion(lead + t.end_ids + t.end_sep_ids, "", "delimiter", None))
            if self._final_ids:
                inserts.append(Insertion(self._final_ids, self.spec.final_answer_text, "final_answer", "answer"))
        else:
            inserts.append(Insertion(t.end_ids + (t.end_sep_ids if sep else ()), "", "delimiter", None))
        if sum(len(i.ids) for i in inserts) > self.total_left:
            return Action(finish_reason="length")
        for insert in inserts:
            self._apply(insert)
        self.report.forced_end = forced
        self.segment = "answer"
        if self.total_left <= 0:
            return Action(inserts=tuple(inserts), finish_reason="length")
        return Action(inserts=tuple(inserts), round=Round(segment="answer", max_tokens=self.total_left))

    def _apply(self, insert: Insertion) -> None:
        self._append(list(insert.ids))
        self.report.inserted[insert.kind] += len(insert.ids)
        if insert.kind == "final_answer":
            self.report.answer_tokens += len(insert.ids)

    def _append(self, ids: list[int]) -> None:
        self.completion_ids.extend(ids)

    def _strip_attempt(self, ids: list[int], attempt: EndAttempt) -> list[int]:
        """Drop the end attempt from a round's ids: one stop token, or a text trigger."""
        if attempt is EndAttempt.EOS or self.tokens.single_token_trigger:
            return list(ids[:-1]) if ids else []
        kept, leftover = strip_text_delimiter(ids, self.codec.decode, self.tokens.fmt.trigger)
        # A token that straddles the delimiter carries text before it: keep that text.
        return kept + (self.codec.encode(leftover) if leftover else [])


def strip_text_delimiter(ids: list[int], decode: Callable[[list[int]], str], delimiter: str) -> tuple[list[int], str]:
    """Remove the last occurrence of a multi-token `delimiter` and anything after it.

    Returns the ids before the first token that overlaps the delimiter, and the text that
    token carried before the delimiter started (usually empty). When the delimiter is not
    found the ids come back unchanged.
    """
    for k in range(len(ids) - 1, -1, -1):
        tail = decode(ids[k:])
        at = tail.rfind(delimiter)
        if at >= 0:
            # ids[k] is the first token of the shortest tail holding the delimiter.
            return list(ids[:k]), tail[:at]
    return list(ids), ""

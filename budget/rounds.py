"""What the forcing policy exchanges with an engine loop: rounds to run, text to insert, a report.

A *round* is one engine request (or one chunk of a session) that continues the sequence; an
*Action* says what to insert and which round runs next; the *report* is what one choice did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Literal, Protocol

from budget.formats import ThinkingFormat
from budget.spec import DEFAULT_PROFILE

InsertKind = Literal["wait", "delimiter", "final_answer", "cap_message"]
Segment = Literal["thinking", "answer"]

_NO_SAMPLING: Mapping[str, float | int] = MappingProxyType({})


class TextCodec(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


class EndAttempt(Enum):
    """How a thinking round ended early."""

    TRIGGER = "trigger"  # the end trigger was generated (or, in a grace round, a stop string)
    EOS = "eos"  # end of sequence inside thinking


@dataclass(frozen=True)
class FormatTokens:
    """A thinking format resolved to one tokenizer's ids, computed once per server.

    `start_ids` is the opener the server appends to a prompt: the bare start delimiter, as
    s1's harness appends it; the model writes the newline after it itself (and that token
    counts as thinking).
    """

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
            start_ids=tuple(encode(fmt.start)),
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
    """One engine request continuing `prompt + controller.context_ids` by at most `max_tokens`.

    In thinking rounds the engine stops at `stop_token_ids` / `stop` and EOS; the first
    `min_tokens` tokens may not be EOS or a stop token id (vLLM's min_tokens); `bad_words`
    bans a multi-token trigger for the whole round. `sampling` overrides the request's
    sampling parameters for this round only. A `provisional` round's output must not be shown
    while it runs: the controller may still cut it; after `finish_round`, the ids it appended
    to `completion_ids` before the returned Action's inserts are the settled thinking.
    """

    segment: Segment
    max_tokens: int
    min_tokens: int = 0
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    bad_words: tuple[str, ...] = ()
    sampling: Mapping[str, float | int] = field(default_factory=lambda: _NO_SAMPLING, hash=False)
    provisional: bool = False


@dataclass(frozen=True)
class Insertion:
    ids: tuple[int, ...]
    text: str
    kind: InsertKind
    segment: Segment | None  # where the text is shown; None for delimiters


@dataclass(frozen=True)
class Probe:
    """An answer probe: a separate greedy engine request over `prompt +
    controller.completion_ids + ids`, at most `max_tokens` long, that stops once its answer's brace is closed
    (`budget.early_exit.closed_answer`). Its output is never shown; `finish_probe` takes it."""

    ids: tuple[int, ...]
    max_tokens: int


@dataclass(frozen=True)
class Action:
    """What the engine loop does next: show `inserts`, then run `probe` (and hand its output
    to `finish_probe`), or run `round`, or finish."""

    inserts: tuple[Insertion, ...] = ()
    round: Round | None = None
    finish_reason: str | None = None
    probe: Probe | None = None


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
    ends_ignored: int = 0  # end attempts overridden (with or without wait text)
    grace_tokens: int = 0  # thinking tokens generated past the cap to finish a sentence
    cut_tokens: int = 0  # harness profile: thinking generated past the cap and cut away
    thinking_cap: int | None = None  # the cap applied ("auto" resolved)
    early_exit: bool | None = None  # None: early exit was off; True: the probes ended the thinking
    probes: int = 0  # answer probes run
    probe_tokens: int = 0  # tokens the probes generated (never shown, never billed)
    profile: str = DEFAULT_PROFILE
    inserted: dict[str, int] = field(
        default_factory=lambda: {"wait": 0, "final_answer": 0, "delimiter": 0, "cap_message": 0}
    )

    def public(self) -> dict[str, int | bool | str | None]:
        """The response's `thinking` object; optional keys appear only when their feature acted."""
        out: dict[str, int | bool | str | None] = {
            "thinking_tokens": self.thinking_tokens,
            "answer_tokens": self.answer_tokens,
            "waits_inserted": self.waits_inserted,
            "forced_end": self.forced_end,
        }
        if self.ends_ignored != self.waits_inserted:
            out["ends_ignored"] = self.ends_ignored
        if self.grace_tokens:
            out["grace_tokens"] = self.grace_tokens
        if self.inserted["cap_message"]:
            out["cap_message_tokens"] = self.inserted["cap_message"]
        if self.profile != DEFAULT_PROFILE:
            out["profile"] = self.profile
            out["cut_tokens"] = self.cut_tokens
        if self.early_exit is not None:
            out["early_exit"] = self.early_exit
            out["probes"] = self.probes
            out["probe_tokens"] = self.probe_tokens
        return out

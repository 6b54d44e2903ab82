"""The forcing policy of one choice, as a state machine over engine rounds.

A *round* is one engine request that continues the sequence. Thinking rounds stop at every
end attempt (the trigger or EOS), so the policy decides at exactly the points where s1's
evaluation harness does: override the attempt (strip it, append wait text), accept it, or
force the end at the cap. The controller works on token ids and never re-tokenizes generated
text.

Two profiles (docs/fidelity.md):
- "exact" (default): the cap is exact; every round is limited to what is left of it.
- "harness": token parity with s1's evaluation harness, quirks included: every thinking round
  may generate the full cap, the joined ids are cut to the cap afterwards, and the end form
  depends on how the last round finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Literal, Protocol

from budget.formats import ThinkingFormat, ends_with_newline
from budget.spec import DEFAULT_PROFILE, PROFILES, BudgetError, BudgetSpec

InsertKind = Literal["wait", "delimiter", "final_answer", "cap_message"]
Segment = Literal["thinking", "answer"]

# s1's automatic cap leaves this many tokens for the answer.
AUTO_ANSWER_RESERVE = 100
# Where a grace continuation may stop: a newline, or a sentence end followed by whitespace.
SENTENCE_ENDS = ".!?"
GRACE_STOPS: tuple[str, ...] = ("\n", ". ", "! ", "? ")

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
class Action:
    """What the engine loop does next: show `inserts`, then run `round` or finish."""

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
    ends_ignored: int = 0  # end attempts overridden (with or without wait text)
    grace_tokens: int = 0  # thinking tokens generated past the cap to finish a sentence
    cut_tokens: int = 0  # harness profile: thinking generated past the cap and cut away
    thinking_cap: int | None = None  # the cap applied ("auto" resolved)
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
        return out


def auto_thinking_cap(tokens: FormatTokens, encode: Callable[[str], list[int]], total_limit: int,
                      prompt_tokens: int, final_answer_text: str) -> int:  # fmt: skip
    """s1's `max_tokens_thinking=auto`: what the request allows, less the prompt with its
    thinking opener (`prompt_tokens`), the forced-end text and 100 tokens for the answer."""
    forced_end = encode(tokens.fmt.end + "\n" + final_answer_text)
    return total_limit - prompt_tokens - len(forced_end) - AUTO_ANSWER_RESERVE


class ThinkingController:
    """Drives one choice from the first thinking token to the end of its answer.

    `total_limit` bounds every token generated or inserted after the prompt (the request's
    max_tokens, or the context left); the harness profile, like the harness, bounds only the
    thinking by the cap and gives the answer round the whole `total_limit`. The prompt must
    already end with the thinking opener (`FormatTokens.start_ids`). `prompt_tokens` (the
    prompt's length, opener included) is needed for `max_tokens="auto"`. `default_profile`
    applies when the spec names none.
    """

    def __init__(
        self,
        spec: BudgetSpec,
        tokens: FormatTokens,
        codec: TextCodec,
        total_limit: int,
        *,
        prompt_tokens: int | None = None,
        default_profile: str = DEFAULT_PROFILE,
    ) -> None:
        if default_profile not in PROFILES:
            raise ValueError(f"unknown budget profile {default_profile!r}")
        spec = spec.with_profile(default_profile)
        self.spec = spec
        self.profile = spec.profile
        self.tokens = tokens
        self.codec = codec
        self.total_limit = total_limit
        self.report = ThinkingReport(profile=self.profile or DEFAULT_PROFILE)
        self.completion_ids: list[int] = []
        self.thinking_ids: list[int] = []
        self.segment: Segment = "thinking"
        self._wait_ids = tuple(codec.encode(spec.wait_text)) if spec.wait_text else ()
        self._delim_ids, self._final_ids = self._forced_end_ids()
        self.cap: int | None = self._resolve_cap(prompt_tokens)
        self.report.thinking_cap = self.cap
        self.min_tokens = spec.min_tokens if self.cap is None else min(spec.min_tokens, self.cap)
        self._sampling = spec.sampling if spec.sampling else _NO_SAMPLING
        # exact profile: room kept inside the cap for the cap message (leading newline included)
        self._message_ids = tuple(codec.encode(spec.cap_message)) if spec.cap_message else ()
        reserve = len(tokens.newline_ids) + len(self._message_ids) if self._message_ids else 0
        self._reserve = reserve if self.cap is not None and reserve <= self.cap else 0
        self._in_grace = False
        # harness profile: the uncut thinking the next round continues from, and its rounds
        self._pending: list[int] = []
        self._wait_starts: list[int] = []
        self._rounds_done = 0
        if self.profile == "harness":
            self._harness_init()

    # -- set-up ----------------------------------------------------------------------------------
    def _resolve_cap(self, prompt_tokens: int | None) -> int | None:
        if not self.spec.auto:
            return self.spec.max_tokens  # type: ignore[return-value]
        if prompt_tokens is None:
            raise ValueError('max_tokens="auto" needs the prompt length (prompt_tokens=)')
        cap = auto_thinking_cap(
            self.tokens, self.codec.encode, self.total_limit, prompt_tokens, self.spec.final_answer_text
        )
        if cap < 0:
            raise BudgetError(
                "thinking_budget.max_tokens",
                f'thinking_budget.max_tokens "auto" leaves no room to think: max tokens {self.total_limit} less the '
                f"prompt ({prompt_tokens}), opener, forced-end text and {AUTO_ANSWER_RESERVE} answer tokens is {cap}",
            )
        return cap

    def _forced_end_ids(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """s1's forced end, `<end>\\nFinal Answer:`, encoded as one string as the harness does,
        split into the delimiter part and the final-answer part."""
        enc = self.codec.encode
        end = self.tokens.fmt.end + "\n"
        joint = tuple(enc(end + self.spec.final_answer_text))
        delim = tuple(enc(end))
        if joint[: len(delim)] == delim:
            return delim, joint[len(delim) :]
        final = tuple(enc(self.spec.final_answer_text)) if self.spec.final_answer_text else ()
        return delim, final

    # -- budget arithmetic -------------------------------------------------------------------------
    @property
    def context_ids(self) -> list[int]:
        """What the next round continues: the prompt plus these ids (beyond the shown output,
        the harness profile's not yet settled thinking)."""
        return self.completion_ids + self._pending if self._pending else self.completion_ids

    @property
    def total_left(self) -> int:
        return self.total_limit - len(self.completion_ids)

    @property
    def cap_left(self) -> int | None:
        """Thinking tokens the rounds may still generate before the cap forces the end."""
        return None if self.cap is None else self.cap - self._reserve - self.report.thinking_tokens

    # -- transitions ---------------------------------------------------------------------------------
    def start(self) -> Action:
        if not self.spec.enabled:
            return self._end_thinking(forced=False, sep=True)
        if self.cap == 0:
            return self._end_thinking(forced=True)
        if self.profile == "harness":
            return self._harness_round()
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
        if self.profile == "harness":
            return self._harness_finish(list(ids), attempt, finish_reason)
        if self._in_grace:
            return self._finish_grace(list(ids), attempt)

        kept = self._strip_attempt(ids, attempt) if attempt is not None else list(ids)
        self._keep_thinking(kept)

        if attempt is None:
            if self.cap_left is not None and self.cap_left <= 0:
                return self._at_cap()
            if self.total_left <= 0:
                return Action(finish_reason="length")
            return self._thinking_round()  # a masking round ended, or a stop for another reason

        below_min = self.report.thinking_tokens < self.min_tokens
        ignoring = self.report.ends_ignored < self.spec.num_ignore
        if ignoring or below_min:
            if self._wait_ids:
                return self._insert_wait()
            if ignoring:  # s1's thinking_n_ignore without a string: drop the attempt, go on
                self.report.ends_ignored += 1
                return self._thinking_round()
            if kept:  # suppress only: mask the delimiter and keep thinking
                self.report.min_suppressed += 1
                return self._thinking_round()
            # A text trigger slipped past the mask without progress: accept the end rather than loop.
        return self._end_thinking(forced=False)

    # -- exact profile ---------------------------------------------------------------------------------
    def _thinking_round(self) -> Action:
        limit = self.total_left
        if self.cap_left is not None:
            limit = min(limit, self.cap_left)
        if limit <= 0:
            if self.cap_left is not None and self.cap_left <= 0:
                return self._at_cap()
            return Action(finish_reason="length")
        # s1 runs every round with min_tokens=1 once end attempts are ignored: after an
        # override the model writes at least one token before it may try to end again.
        floor = 1 if (self.spec.num_ignore or self.report.ends_ignored) else 0
        suppress = 0
        if not self._wait_ids and self.report.thinking_tokens < self.min_tokens:
            suppress = self.min_tokens - self.report.thinking_tokens
        floor = min(max(floor, suppress), limit)
        single = self.tokens.single_token_trigger
        ban = bool(suppress) and not single
        if ban:
            limit = min(limit, suppress)  # the ban must lift once the floor is reached
        return Action(
            round=Round(
                segment="thinking",
                max_tokens=limit,
                min_tokens=floor,
                stop_token_ids=self.tokens.trigger_ids if single else (),
                stop=() if single else (self.tokens.fmt.trigger,),
                bad_words=(self.tokens.fmt.trigger,) if ban else (),
                sampling=self._sampling,
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
        self.report.ends_ignored += 1
        if self.cap_left is not None and self.cap_left <= 0:
            # The wait text filled the cap exactly: close the thinking and answer, as s1 does.
            action = self._end_thinking(forced=True)
        else:
            action = self._thinking_round()
        return Action(inserts=(insert, *action.inserts), round=action.round, finish_reason=action.finish_reason)

    def _at_cap(self) -> Action:
        """The rounds used the cap: a grace round to finish the sentence, or the forced end."""
        if self.spec.grace_tokens and not self._in_grace and self.total_left > 0:
            tail = self.codec.decode(self.thinking_ids[-4:]) if self.thinking_ids else "\n"
            if not tail.endswith("\n"):
                self._in_grace = True
                single = self.tokens.single_token_trigger
                return Action(
                    round=Round(
                        segment="thinking",
                        max_tokens=min(self.spec.grace_tokens, self.total_left),
                        stop_token_ids=self.tokens.trigger_ids if single else (),
                        stop=GRACE_STOPS + (() if single else (self.tokens.fmt.trigger,)),
                        sampling=self._sampling,
                        provisional=True,
                    )
                )
        return self._end_thinking(forced=True)

    def _finish_grace(self, ids: list[int], attempt: EndAttempt | None) -> Action:
        """Keep the grace round's ids up to the first line or sentence end; drop an end attempt."""
        if attempt is EndAttempt.EOS:
            ids = ids[:-1]
        elif self.tokens.single_token_trigger:
            if ids and ids[-1] == self.tokens.trigger_ids[0]:
                ids = ids[:-1]
        else:
            kept, leftover = strip_text_delimiter(ids, self.codec.decode, self.tokens.fmt.trigger)
            ids = kept + (self.codec.encode(leftover) if leftover else [])
        before = self.codec.decode(self.thinking_ids[-4:])[-1:] if self.thinking_ids else ""
        ids = ids[: sentence_end(before, ids, self.codec.decode)]
        self._keep_thinking(ids)
        self.report.grace_tokens = len(ids)
        return self._end_thinking(forced=True)

    def _end_thinking(self, *, forced: bool, sep: bool = False) -> Action:
        """Close the thinking segment: end delimiter, and on a forced end the final-answer text."""
        t = self.tokens
        inserts: list[Insertion] = []
        if forced:
            thinking = list(self.thinking_ids)
            if self._reserve:
                lead = t.newline_ids if thinking and not ends_with_newline(self.codec.decode, thinking) else ()
                ids = lead + self._message_ids
                text = ("\n" if lead else "") + self.spec.cap_message
                inserts.append(Insertion(ids, text, "cap_message", "thinking"))
                thinking += ids
            # s1: a newline unless the thinking already ends in one, the delimiter, the final answer.
            bare = thinking and not ends_with_newline(self.codec.decode, thinking)
            inserts.append(Insertion((t.newline_ids if bare else ()) + self._delim_ids, "", "delimiter", None))
            if self._final_ids:
                inserts.append(Insertion(self._final_ids, self.spec.final_answer_text, "final_answer", "answer"))
        else:
            inserts.append(Insertion(t.end_ids + (t.end_sep_ids if sep else ()), "", "delimiter", None))
        if sum(len(i.ids) for i in inserts) > self.total_left:
            return Action(finish_reason="length")
        return self._close(inserts, forced, None)

    def _close(self, inserts: list[Insertion], forced: bool, answer_limit: int | None) -> Action:
        """Apply the closing inserts and start the answer; `answer_limit` None: what is left."""
        for insert in inserts:
            self._apply(insert)
            if insert.kind == "cap_message":
                self.thinking_ids.extend(insert.ids)
                self.report.thinking_tokens += len(insert.ids)
        self.report.forced_end = forced
        self.segment = "answer"
        if answer_limit is None:
            answer_limit = self.total_left
        if answer_limit <= 0:
            return Action(inserts=tuple(inserts), finish_reason="length")
        return Action(inserts=tuple(inserts), round=Round(segment="answer", max_tokens=answer_limit))

    # -- harness profile ---------------------------------------------------------------------------------
    def _harness_init(self) -> None:
        spec = self.spec
        self._path = "ignore" if spec.num_ignore else ("min" if self.min_tokens else "plain")
        if self._path != "plain" and not self.tokens.single_token_trigger:
            # The harness stops on token ids here and asserts one-token triggers.
            raise BudgetError(
                "thinking_budget.profile",
                "profile 'harness' supports min_tokens and num_ignore only for one-token end triggers; "
                f"{self.tokens.fmt.trigger!r} is {len(self.tokens.trigger_ids)} tokens here",
            )
        # Each round may generate this much; the joined ids are cut to it afterwards.
        self._round_max = self.cap if self.cap is not None else self.total_limit

    def _harness_round(self) -> Action:
        if self._path == "ignore":
            floor = 1
        elif self._path == "min":
            floor = min(self.min_tokens, self._round_max)
        else:
            floor = 0
        single = self.tokens.single_token_trigger
        return Action(
            round=Round(
                segment="thinking",
                max_tokens=self._round_max,
                min_tokens=floor,
                stop_token_ids=self.tokens.trigger_ids if single else (),
                stop=() if single else (self.tokens.fmt.trigger,),
                sampling=self._sampling,
                # Continuing any thinking, a full-cap round may cross the cap and be cut.
                provisional=bool(self.thinking_ids or self._pending),
            )
        )

    def _harness_finish(self, ids: list[int], attempt: EndAttempt | None, finish_reason: str) -> Action:
        provisional = bool(self.thinking_ids or self._pending)
        self._rounds_done += 1
        last = finish_reason != "stop" or self._path != "ignore" or self._rounds_done == self.spec.num_ignore + 1
        if not last:
            kept = self._harness_strip(ids, attempt)
            self.report.ends_ignored += 1
            if provisional:
                self._pending.extend(kept)
            else:  # the first round streamed; it cannot cross the cap
                self._append(kept)
                self.thinking_ids.extend(kept)
            if not self._wait_ids:
                return self._harness_round()
            self._wait_starts.append(len(self.thinking_ids) + len(self._pending))
            fits = len(self.thinking_ids) + len(self._wait_ids) <= self._round_max
            if self._pending or not fits:
                self._pending.extend(self._wait_ids)
                return self._harness_round()
            insert = Insertion(self._wait_ids, self.spec.wait_text, "wait", "thinking")
            self._append(list(insert.ids))
            self.thinking_ids.extend(insert.ids)
            return Action(inserts=(insert,), round=self._harness_round().round)
        # The last round: cut the joined thinking to the cap, then end as the harness does.
        uncut = self.thinking_ids + self._pending + ids
        stripped = self.thinking_ids + self._pending + self._harness_strip(ids, attempt)
        was_cut = self._path == "ignore" and len(uncut) > self._round_max
        final = uncut[: self._round_max] if was_cut else stripped
        release = final[len(self.thinking_ids) :]
        self._pending = []
        self._append(release)
        self.thinking_ids.extend(release)
        r = self.report
        r.cut_tokens = max(0, len(stripped) - len(final))
        r.thinking_tokens = len(final)
        wait_kept = [min(len(self._wait_ids), len(final) - s) for s in self._wait_starts if s < len(final)]
        r.waits_inserted = len(wait_kept)
        r.inserted["wait"] = sum(wait_kept)
        r.generated_thinking_tokens = len(final) - sum(wait_kept)
        if finish_reason == "length":
            # The newline test reads the uncut text, as the harness's does.
            lead = () if ends_with_newline(self.codec.decode, uncut) else self.tokens.newline_ids
            inserts = [Insertion(lead + self._delim_ids, "", "delimiter", None)]
            if self._final_ids:
                inserts.append(Insertion(self._final_ids, self.spec.final_answer_text, "final_answer", "answer"))
            return self._close(inserts, True, self.total_limit)
        # Ended on a stop token: only the end delimiter, even when the cut shortened the thinking.
        return self._close([Insertion(self.tokens.end_ids, "", "delimiter", None)], was_cut, self.total_limit)

    def _harness_strip(self, ids: list[int], attempt: EndAttempt | None) -> list[int]:
        """The harness drops a trailing stop only when the ids end with its exact encoding."""
        if attempt is EndAttempt.EOS:
            return list(ids[:-1])
        trig = list(self.tokens.trigger_ids)
        if attempt is EndAttempt.TRIGGER and ids[-len(trig) :] == trig:
            return list(ids[: -len(trig)])
        return list(ids)

    # -- pieces ---------------------------------------------------------------------------------
    def _keep_thinking(self, kept: list[int]) -> None:
        self._append(kept)
        self.thinking_ids.extend(kept)
        self.report.thinking_tokens += len(kept)
        self.report.generated_thinking_tokens += len(kept)

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


def sentence_end(before: str, ids: list[int], decode: Callable[[list[int]], str]) -> int:
    """How many of `ids` finish the current line or sentence.

    The end is the first newline, or the first `.`, `!` or `?` followed by whitespace (the
    punctuation may be `before`, the last character already written); the token holding it is
    kept, the whitespace after it only when it is in that same token. No end: all ids.
    """
    text = before + decode(ids)
    end = -1
    for p, ch in enumerate(text):
        if ch == "\n" and p >= len(before):
            end = p
            break
        if ch in SENTENCE_ENDS and p + 1 < len(text) and text[p + 1].isspace():
            end = p
            break
    if end < 0:
        return len(ids)
    need = end + 1 - len(before)  # characters of the grace text that must be kept
    if need <= 0:
        return 0
    for k in range(1, len(ids) + 1):
        if len(decode(ids[:k])) >= need:
            return k
    return len(ids)


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

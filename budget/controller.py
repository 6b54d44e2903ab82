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

from collections.abc import Callable
from dataclasses import replace

from budget.early_exit_probes import EarlyExitProbes
from budget.formats import ends_with_newline
from budget.harness_profile import HarnessProfile
from budget.rounds import (
    _NO_SAMPLING,
    Action,
    EndAttempt,
    FormatTokens,
    Insertion,
    InsertKind,
    Probe,
    Round,
    Segment,
    TextCodec,
    ThinkingReport,
)
from budget.spec import DEFAULT_PROFILE, PROFILES, BudgetError, BudgetSpec
from budget.splitter import SENTENCE_ENDS, sentence_end, strip_text_delimiter

# s1's automatic cap leaves this many tokens for the answer.
AUTO_ANSWER_RESERVE = 100
# Where a grace continuation may stop: a newline, or a sentence end followed by whitespace.
GRACE_STOPS: tuple[str, ...] = ("\n", ". ", "! ", "? ")


def auto_thinking_cap(tokens: FormatTokens, encode: Callable[[str], list[int]], total_limit: int,
                      prompt_tokens: int, final_answer_text: str) -> int:  # fmt: skip
    """s1's `max_tokens_thinking=auto`: what the request allows, less the prompt with its
    thinking opener (`prompt_tokens`), the forced-end text and 100 tokens for the answer."""
    forced_end = encode(tokens.fmt.end + "\n" + final_answer_text)
    return total_limit - prompt_tokens - len(forced_end) - AUTO_ANSWER_RESERVE


def resolve_auto_cap(spec: BudgetSpec, tokens: FormatTokens, encode: Callable[[str], list[int]], total_limit: int,
                     prompt_tokens: int, final_answer_text: str) -> int:  # fmt: skip
    """`auto_thinking_cap`, refused with the client's field name when it leaves no room to think."""
    cap = auto_thinking_cap(tokens, encode, total_limit, prompt_tokens, final_answer_text)
    if cap < 0:
        name = spec.param("max_tokens")
        raise BudgetError(
            name,
            f'{name} "auto" leaves no room to think: max tokens {total_limit} less the prompt ({prompt_tokens}), '
            f"opener, forced-end text and {AUTO_ANSWER_RESERVE} answer tokens is {cap}",
        )
    return cap


class ThinkingController(HarnessProfile, EarlyExitProbes):
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
        context_left: int | None = None,
        answer_text: bool = True,
    ) -> None:
        if default_profile not in PROFILES:
            raise ValueError(f"unknown budget profile {default_profile!r}")
        if spec.profile is None and default_profile != DEFAULT_PROFILE:
            spec = spec.with_profile(default_profile)  # a spec the server did not resolve
        self.spec = spec
        self.profile = spec.profile or DEFAULT_PROFILE
        # Under a grammar the answer must start at once: no final-answer text precedes it.
        self.final_answer_text = spec.final_answer_text if answer_text else ""
        self._context_left = context_left
        if spec.until:  # s1's until_thinking: this text, not the format's trigger, ends the thinking
            trigger = tuple(codec.encode(spec.until))
            tokens = replace(tokens, fmt=replace(tokens.fmt, trigger=spec.until), trigger_ids=trigger)
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
        self._floor_spent = False  # a round since the last override (or the start) wrote a token
        self._early_exit_init()

    # -- set-up ----------------------------------------------------------------------------------
    def _resolve_cap(self, prompt_tokens: int | None) -> int | None:
        if not self.spec.auto:
            cap = self.spec.max_tokens
            if self.spec.fit_to_context and cap is not None and self._context_left is not None:
                return min(cap, self._context_left)  # type: ignore[type-var]
            return cap  # type: ignore[return-value]
        if prompt_tokens is None:
            raise ValueError('max_tokens="auto" needs the prompt length (prompt_tokens=)')
        return resolve_auto_cap(
            self.spec, self.tokens, self.codec.encode, self.total_limit, prompt_tokens, self.final_answer_text
        )

    def _forced_end_ids(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """s1's forced end, `<end>\\nFinal Answer:`, encoded as one string as the harness does,
        split into the delimiter part and the final-answer part."""
        enc = self.codec.encode
        end = self.tokens.fmt.end + "\n"
        joint = tuple(enc(end + self.final_answer_text))
        delim = tuple(enc(end))
        if joint[: len(delim)] == delim:
            return delim, joint[len(delim) :]
        final = tuple(enc(self.final_answer_text)) if self.final_answer_text else ()
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

        if self._pending:  # a trigger prefix held over a probe split: the round continued it
            ids, attempt = self._rejoin(list(ids), attempt)
        kept = self._strip_attempt(ids, attempt) if attempt is not None else list(ids)
        if attempt is None and self._early is not None:
            kept = self._hold_partial_trigger(kept)
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
            self._floor_spent = False
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
        """The next thinking round, or the probe due first."""
        limit = self.total_left
        if self.cap_left is not None:
            limit = min(limit, self.cap_left)
        if limit <= 0:
            if self.cap_left is not None and self.cap_left <= 0:
                return self._at_cap()
            return Action(finish_reason="length")
        if (probe := self._probe()) is not None:
            return probe
        if self._early is not None:  # stop where the next probe is due, past a held trigger prefix
            limit = min(limit - len(self._pending), self._probe_at - self._thinking_seen)
        # s1 runs every round with min_tokens=1 once end attempts are ignored: after an
        # override the model writes at least one token before it may try to end again (a round
        # split after that token, at a probe point, does not ask for one more).
        floor = 1 if (self.spec.num_ignore or self.report.ends_ignored) and not self._floor_spent else 0
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
                # A probe split may cut a text trigger: its rounds settle before they are shown.
                provisional=self._early is not None and not single,
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
        return Action(
            inserts=(insert, *action.inserts),
            round=action.round,
            finish_reason=action.finish_reason,
            probe=action.probe,
        )

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

    def _end_thinking(self, *, forced: bool, sep: bool = False, message: bool = True) -> Action:
        """Close the thinking segment: end delimiter, and on a forced end the final-answer text
        (after the cap message, unless `message` is false: an early exit is not out of budget)."""
        t = self.tokens
        inserts: list[Insertion] = []
        if forced:
            thinking = list(self.thinking_ids)
            if self._reserve and message:
                lead = t.newline_ids if thinking and not ends_with_newline(self.codec.decode, thinking) else ()
                ids = lead + self._message_ids
                text = ("\n" if lead else "") + self.spec.cap_message
                inserts.append(Insertion(ids, text, "cap_message", "thinking"))
                thinking += ids
            # s1: a newline unless the thinking already ends in one, the delimiter, the final answer.
            bare = thinking and not ends_with_newline(self.codec.decode, thinking)
            inserts.append(Insertion((t.newline_ids if bare else ()) + self._delim_ids, "", "delimiter", None))
            if self._final_ids:
                inserts.append(Insertion(self._final_ids, self.final_answer_text, "final_answer", "answer"))
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

    # -- pieces ---------------------------------------------------------------------------------
    def _keep_thinking(self, kept: list[int]) -> None:
        if kept:
            self._floor_spent = True
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


__all__ = [
    "AUTO_ANSWER_RESERVE",
    "SENTENCE_ENDS",
    "Action",
    "EndAttempt",
    "FormatTokens",
    "InsertKind",
    "Insertion",
    "Probe",
    "Round",
    "Segment",
    "TextCodec",
    "ThinkingController",
    "ThinkingReport",
    "auto_thinking_cap",
    "resolve_auto_cap",
    "sentence_end",
    "strip_text_delimiter",
]

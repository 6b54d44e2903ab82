"""The early-exit part of the forcing policy: when to probe the answer, and what a probe decides.

Thinking rounds stop at every probe point (a multiple of `every` thinking tokens, not below the
min budget); the controller then asks for a `Probe`, and `finish_probe` feeds the agreement
rule (`budget.early_exit`). A mixin of `ThinkingController`, which owns the state read here.

A multi-token text trigger can be cut by a probe split ("</" in one round, "think>" in the
next, where the engine's stop string sees neither whole). The split round's trailing partial
trigger is held back, out of the thinking, and the next round continues after it; when that
round finishes, the held ids are joined to it and the trigger is looked for across the seam.
"""

from __future__ import annotations

from budget.early_exit import AnswerAgreement, EarlyExit, probe_answer
from budget.formats import ends_with_newline
from budget.rounds import Action, EndAttempt, FormatTokens, Probe, TextCodec, ThinkingReport
from budget.spec import BudgetSpec
from budget.splitter import partial_suffix


class EarlyExitProbes:
    """Probe schedule and decisions; off (every method a no-op) when `_early` is None."""

    spec: BudgetSpec
    profile: str
    tokens: FormatTokens
    codec: TextCodec
    report: ThinkingReport
    final_answer_text: str
    min_tokens: int
    completion_ids: list[int]
    thinking_ids: list[int]
    _context_left: int | None
    _pending: list[int]

    def _early_exit_init(self) -> None:
        self._early: EarlyExit | None = self.spec.probing if self.profile != "harness" else None
        if self._early is None:
            return
        self.report.early_exit = False
        self._agreement = AnswerAgreement(self._early.agree)
        self._probe_at = self._next_probe_point()
        tail = self.tokens.fmt.end + "\n" + self._early.text(self.final_answer_text)
        self._probe_tail = tuple(self.codec.encode(tail))

    @property
    def _thinking_seen(self) -> int:
        """Thinking tokens generated or inserted so far, a held trigger prefix included."""
        return self.report.thinking_tokens + len(self._pending)

    def finish_probe(self, text: str, tokens: int) -> Action:
        """Account for one answer probe (its output text and length) and decide what follows:
        the forced end once the last `agree` answers are the same, else more thinking."""
        self.report.probes += 1
        self.report.probe_tokens += tokens
        settled = self._agreement.add(probe_answer(text))
        self._probe_at = self._next_probe_point()
        if settled:
            self.report.early_exit = True
            return self._end_thinking(forced=True, message=False)  # type: ignore[attr-defined]
        return self._thinking_round()  # type: ignore[attr-defined]

    def _next_probe_point(self) -> int:
        """The thinking count of the next probe: a multiple of `every` past the current count
        and not below the min budget."""
        every = self._early.every  # type: ignore[union-attr]
        after = (self._thinking_seen // every + 1) * every
        return max(after, -(-self.min_tokens // every) * every)

    def _probe(self) -> Action | None:
        """The probe due now, if any. A point passed while end attempts are still to be
        ignored, or without room in the context for the probe, is skipped. The probe reads
        the settled thinking (`completion_ids`), not a held trigger prefix."""
        if self._early is None or self._thinking_seen < self._probe_at:
            return None
        lead = () if ends_with_newline(self.codec.decode, self.thinking_ids) else self.tokens.newline_ids
        ids = lead + self._probe_tail
        room = self._context_left is None or (
            len(self.completion_ids) + len(ids) + self._early.probe_tokens <= self._context_left
        )
        if self.report.ends_ignored < self.spec.num_ignore or not room:
            self._probe_at = self._next_probe_point()
            return None
        return Action(probe=Probe(ids=ids, max_tokens=self._early.probe_tokens))

    def _hold_partial_trigger(self, kept: list[int]) -> list[int]:
        """At a probe split, hold back the ids of a trailing partial text trigger, when a round
        can still follow to complete it (room in the cap and the total)."""
        if self.tokens.single_token_trigger or not kept:
            return kept
        if self.report.thinking_tokens + len(kept) != self._probe_at:
            return kept  # not a probe split
        cap_left, total_left = self.cap_left, self.total_left  # type: ignore[attr-defined]
        if (cap_left is not None and cap_left - len(kept) <= 0) or total_left - len(kept) <= 0:
            return kept
        need = partial_suffix(self.codec.decode(kept), self.tokens.fmt.trigger)
        if not need:
            return kept
        k = next((k for k in range(1, len(kept) + 1) if len(self.codec.decode(kept[-k:])) >= need), len(kept))
        self._pending = kept[-k:]
        return kept[:-k]

    def _rejoin(self, ids: list[int], attempt: EndAttempt | None) -> tuple[list[int], EndAttempt | None]:
        """The held ids joined to the round that continued them, cut after a trigger completed
        across the seam (the engine could not see it and generated past it)."""
        joined, self._pending = self._pending + ids, []
        trigger = self.tokens.fmt.trigger
        for k in range(1, len(joined) + 1):
            if trigger in self.codec.decode(joined[:k]):
                return joined[:k], EndAttempt.TRIGGER
        return joined, attempt

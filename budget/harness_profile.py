"""The harness profile of the forcing policy: s1's evaluation harness, quirks included.

Every thinking round may generate the full cap, the joined ids are cut to the cap afterwards,
and the end form depends on how the last round finished (docs/fidelity.md). A mixin of
`ThinkingController`, which owns the state these methods read.
"""

from __future__ import annotations

from collections.abc import Mapping

from budget.formats import ends_with_newline
from budget.rounds import Action, EndAttempt, FormatTokens, Insertion, Round, TextCodec, ThinkingReport
from budget.spec import BudgetError, BudgetSpec


class HarnessProfile:
    """Rounds and decisions of the harness profile."""

    spec: BudgetSpec
    tokens: FormatTokens
    codec: TextCodec
    report: ThinkingReport
    cap: int | None
    min_tokens: int
    total_limit: int
    final_answer_text: str
    thinking_ids: list[int]
    _sampling: Mapping[str, float | int]
    _wait_ids: tuple[int, ...]
    _delim_ids: tuple[int, ...]
    _final_ids: tuple[int, ...]
    _pending: list[int]
    _wait_starts: list[int]
    _rounds_done: int

    def _harness_init(self) -> None:
        spec = self.spec
        # `num_ignore: 0` is the ignore path too (one round with min_tokens=1, the min budget dropped).
        self._path = "ignore" if spec.num_ignore_set else ("min" if self.min_tokens else "plain")
        if self._path != "plain" and not self.tokens.single_token_trigger:
            # The harness stops on token ids here and asserts one-token triggers.
            name = spec.param("until" if spec.until else "profile")
            raise BudgetError(
                name,
                f"{name}: profile 'harness' supports min_tokens and num_ignore only for one-token end triggers; "
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
                inserts.append(Insertion(self._final_ids, self.final_answer_text, "final_answer", "answer"))
            return self._close(inserts, True, self.total_limit)
        # Ended on a stop token: only the end delimiter, even when the cut shortened the thinking.
        return self._close([Insertion(self.tokens.end_ids, "", "delimiter", None)], was_cut, self.total_limit)

    def _harness_strip(self, ids: list[int], attempt: EndAttempt | None) -> list[int]:
        """The harness drops a trailing stop only when the ids end with its exact encoding.

        A round that stops on a stop id (the engine's thinking rounds have no stop strings when
        the trigger is one token) ends with that id, and it is dropped whichever it is: also an
        id the harness does not strip, such as a second EOS id from the model's generation
        config, which the engine streamed without (docs/fidelity.md)."""
        if attempt is EndAttempt.EOS or (attempt is not None and self.tokens.single_token_trigger):
            return list(ids[:-1])
        trig = list(self.tokens.trigger_ids)
        if attempt is EndAttempt.TRIGGER and ids[-len(trig) :] == trig:
            return list(ids[: -len(trig)])
        return list(ids)

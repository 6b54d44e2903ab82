"""Answer-convergence early exit: end the thinking once probes of the answer agree.

Every `every` thinking tokens (once the min budget and the ignores are spent) the engine loop
asks the model for its answer so far in a separate *probe*: the prompt, the thinking, the end
delimiter and a probe text that opens the answer (`Final Answer: \\boxed{`), decoded greedily
for a few tokens. When the last `agree` probes gave the same answer the thinking ends as a
forced end does. This is Dynasor-CoT's certainty rule (Fu et al., arXiv 2412.20993): an
answer counts only if the probe wrote a closed answer without hesitating.

Pure policy: nothing here talks to an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_EVERY = 256
MIN_EVERY = 16
DEFAULT_AGREE = 3
DEFAULT_PROBE_TOKENS = 32
MAX_PROBE_TOKENS = 1024
BOXED_OPENER = "\\boxed{"
# Dynasor's hesitation words; matched as whole words (Dynasor matches substrings, so its
# "no" also fires on "none" or "know").
HESITATION = re.compile(r"\b(wait|hold|but|okay|no|hmm)\b", re.IGNORECASE)


@dataclass(frozen=True)
class EarlyExit:
    """When to probe and when the probed answers have settled. `probe_text` None: the
    format's final-answer text followed by `\\boxed{`."""

    every: int = DEFAULT_EVERY
    agree: int = DEFAULT_AGREE
    probe_text: str | None = None
    probe_tokens: int = DEFAULT_PROBE_TOKENS

    def to_dict(self) -> dict[str, int | str | None]:
        return {"every": self.every, "agree": self.agree, "probe_text": self.probe_text,
                "probe_tokens": self.probe_tokens}  # fmt: skip

    def text(self, final_answer_text: str) -> str:
        """The probe text as sent after the end delimiter."""
        if self.probe_text is not None:
            return self.probe_text
        return f"{final_answer_text} {BOXED_OPENER}" if final_answer_text else BOXED_OPENER


def parse_flag(text: str) -> EarlyExit:
    """`--early-exit` (defaults), `--early-exit=EVERY` or `--early-exit=EVERY,AGREE`."""
    parts = [p.strip() for p in text.split(",")] if text else []
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"bad --early-exit value {text!r}: expected EVERY or EVERY,AGREE (integers)")
    every = int(parts[0]) if parts else DEFAULT_EVERY
    agree = int(parts[1]) if len(parts) > 1 else DEFAULT_AGREE
    if every < MIN_EVERY or agree < 1:
        raise ValueError(f"bad --early-exit value {text!r}: EVERY must be >= {MIN_EVERY} and AGREE >= 1")
    return EarlyExit(every=every, agree=agree)


def closed_answer(text: str) -> str | None:
    """The probe output up to the first closing brace without an opening one in the output
    (the brace that closes the probe text's `{`); None while no such brace was written."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return text[:i]
            depth -= 1
    return None


def probe_answer(text: str) -> str | None:
    """A probe's answer, normalised (whitespace collapsed, a trailing period dropped); None
    when the probe wrote no closed answer, an empty one, or hesitated."""
    answer = closed_answer(text)
    if answer is None or HESITATION.search(answer):
        return None
    answer = " ".join(answer.split()).rstrip(".").strip()
    return answer or None


class AnswerAgreement:
    """The last `agree` probe answers; settled once they are all the same answer."""

    def __init__(self, agree: int) -> None:
        self.agree = agree
        self.answers: list[str | None] = []

    def add(self, answer: str | None) -> bool:
        """Record one probe's answer (None: no answer); whether the answer has settled."""
        self.answers.append(answer)
        last = self.answers[-self.agree :]
        return len(last) == self.agree and last[0] is not None and all(a == last[0] for a in last)

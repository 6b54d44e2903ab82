"""The benchmark's workload: deterministic prompts and the request body of every scenario.

Every scenario asks for the same prompts with greedy sampling, so the token streams are
reproducible and the offline reference loop (scenario E) can replay scenario D exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SCENARIOS = ("A", "B", "C", "D", "E", "F")
SCENARIO_TITLES = {
    "A": "vLLM stock server",
    "B": "s1serve, no budget",
    "C": "s1serve, max cap binds",
    "D": "s1serve, min budget + waits",
    "E": "s1 reference loop (offline)",
    "BD": "s1serve, no budget, D's token counts",
    "F": "s1serve, C + probes that never agree",
}

_ASKS = (
    "What is {a} plus {b}? Reply in one short sentence.",
    "What is {a} times {b}? Reply in one short sentence.",
    "Is {a} larger than {b}? Reply in one short sentence.",
    "What is {a} minus {b}? Reply in one short sentence.",
)


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` short-answer user prompts (about 45 tokens with SmolLM2's chat template).

    Short answers make the model try to end its thinking early (EOS after ten-odd tokens),
    which is what scenario D's waits need; A-C ignore EOS, so there the content does not matter.
    """
    rng = random.Random(seed)
    return [rng.choice(_ASKS).format(a=rng.randint(2, 999), b=rng.randint(2, 999)) for _ in range(n)]


@dataclass(frozen=True)
class Workload:
    """Token counts shared by every scenario."""

    output_len: int = 64  # max_completion_tokens of every request
    cap: int = 32  # C: thinking cap (binds: thinking runs with ignore_eos until the cap)
    min_thinking: int = 24  # D: thinking floor
    num_ignore: int = 2  # D: end attempts overridden whatever the count
    d_cap: int = 48  # D: thinking cap, so D always leaves room for an answer
    wait_text: str = "Wait"
    final_answer_text: str = "Final Answer:"
    seed: int = 0
    early_exit_every: int = 16  # F: an answer probe every this many thinking tokens
    early_exit_agree: int = 1000  # F: more agreeing probes than a request can run, so none ends early
    output_lens: dict[int, int] = field(default_factory=dict)  # BD: per-prompt lengths (prompt index -> tokens)

    def d_budget(self) -> dict[str, Any]:
        return {
            "max_tokens": self.d_cap,
            "min_tokens": self.min_thinking,
            "num_ignore": self.num_ignore,
            "wait_text": self.wait_text,
        }

    def body(self, scenario: str, prompt_index: int) -> tuple[int, dict[str, Any]]:
        """(max_completion_tokens, extra body fields) for one request of a scenario.

        A, B, C and F run with ignore_eos so every request produces exactly `output_len` tokens.
        F is C with answer probes that never agree (`agree` above the probes a request can run):
        greedy, it streams C's tokens, so F against C is the probes' cost. D cannot: its end
        attempts are the model's EOS, so its lengths follow the model, and the BD run repeats B
        with D's per-prompt lengths for an equal-token comparison.
        """
        if scenario in ("A", "B"):
            return self.output_len, {"ignore_eos": True}
        if scenario == "C":
            budget = {"max_tokens": self.cap, "final_answer_text": self.final_answer_text}
            return self.output_len, {"ignore_eos": True, "thinking_budget": budget}
        if scenario == "F":
            budget = {
                "max_tokens": self.cap,
                "final_answer_text": self.final_answer_text,
                "early_exit": {"every": self.early_exit_every, "agree": self.early_exit_agree},
            }
            return self.output_len, {"ignore_eos": True, "thinking_budget": budget}
        if scenario == "D":
            return self.output_len, {"thinking_budget": self.d_budget()}
        if scenario == "BD":
            return max(1, self.output_lens.get(prompt_index, self.output_len)), {"ignore_eos": True}
        raise ValueError(f"scenario {scenario!r} is not served over HTTP")


# Workload presets. "long" puts each intervention against a real thinking length: D thinks
# exactly 1,024 tokens (floor = cap: every end attempt below it becomes a wait, at least 2,
# then the cap forces the end) and answers in up to 256 more. F probes C's thinking: once at
# 16 of 32 tokens on the short shape; at 256, 512 and 768 of 1,024 on the long one (at the
# cap the forced end comes first).
SHAPES: dict[str, Workload] = {
    "short": Workload(),
    "long": Workload(output_len=1280, cap=1024, min_thinking=1024, num_ignore=2, d_cap=1024, early_exit_every=256),
}

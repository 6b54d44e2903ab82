"""The benchmark's workload: deterministic prompts and the request body of every scenario.

Every scenario asks for the same prompts with greedy sampling, so the token streams are
reproducible and the offline reference loop (scenario E) can replay scenario D exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SCENARIOS = ("A", "B", "C", "D", "E")
SCENARIO_TITLES = {
    "A": "vLLM stock server",
    "B": "s1serve, no budget",
    "C": "s1serve, max cap binds",
    "D": "s1serve, min budget + waits",
    "E": "s1 reference loop (offline)",
    "BD": "s1serve, no budget, D's token counts",
}

_SUBJECTS = (
    "a train that leaves at noon",
    "the sum of the first twenty odd numbers",
    "a recipe that needs three eggs per cake",
    "the area of a circle of radius seven",
    "a farmer who has chickens and cows",
    "two clocks that run at different speeds",
    "a bank account that earns interest",
    "the number of handshakes among friends",
    "a ladder leaning against a wall",
    "a box of red and blue marbles",
)
_ASKS = (
    "Explain step by step how to solve a puzzle about {s}, using the numbers {a} and {b}.",
    "Write a short reasoning about {s}. Take {a} and {b} as the two quantities involved.",
    "A student asks about {s} with values {a} and {b}. Work out the answer carefully.",
    "Describe {s} and compute what happens when the inputs are {a} and {b}.",
)


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct user prompts of similar length (about 30-40 tokens with a chat template)."""
    rng = random.Random(seed)
    return [
        rng.choice(_ASKS).format(s=rng.choice(_SUBJECTS), a=rng.randint(2, 999), b=rng.randint(2, 999))
        for _ in range(n)
    ]


@dataclass(frozen=True)
class Workload:
    """Token counts shared by every scenario."""

    output_len: int = 128  # max_completion_tokens of every request
    cap: int = 64  # C: thinking cap (binds: thinking runs with ignore_eos until the cap)
    min_thinking: int = 48  # D: thinking floor
    num_ignore: int = 2  # D: end attempts overridden whatever the count
    d_cap: int = 96  # D: thinking cap, so D always leaves room for an answer
    wait_text: str = "Wait"
    final_answer_text: str = "Final Answer:"
    seed: int = 0
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

        A, B and C run with ignore_eos so every request produces exactly `output_len` tokens.
        D cannot: its end attempts are the model's EOS, so its lengths follow the model, and
        the BD run repeats B with D's per-prompt lengths for an equal-token comparison.
        """
        if scenario in ("A", "B"):
            return self.output_len, {"ignore_eos": True}
        if scenario == "C":
            budget = {"max_tokens": self.cap, "final_answer_text": self.final_answer_text}
            return self.output_len, {"ignore_eos": True, "thinking_budget": budget}
        if scenario == "D":
            return self.output_len, {"thinking_budget": self.d_budget()}
        if scenario == "BD":
            return max(1, self.output_lens.get(prompt_index, self.output_len)), {"ignore_eos": True}
        raise ValueError(f"scenario {scenario!r} is not served over HTTP")

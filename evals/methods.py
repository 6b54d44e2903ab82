"""The test-time scaling methods of the s1 paper, each expanded into the budgets (points) it sweeps.

A Point says everything a request needs beyond the question: a prompt suffix for prompt-only length
control, s1serve's `thinking_budget` for budget forcing, a thinking cap to resample against for
rejection sampling, or a number of parallel samples to vote over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASE_METHODS = ("budget", "token-conditional", "step-conditional", "class-conditional", "rejection", "majority")
FORCEABLE = ("token-conditional", "step-conditional")  # the paper's "+ budget forcing" rows
METHODS = (*BASE_METHODS, *(f"{m}+budget" for m in FORCEABLE))

# Generic length prompts for class-conditional control: one asks for little thinking, one for a lot.
SHORT_PROMPT = "Think briefly: reach the answer quickly and do not spend long checking it."
LONG_PROMPT = (
    "Think at length: work through the problem carefully, and if you seem done early, "
    "use the extra time to double-check every step until you are certain."
)


class PlanError(ValueError):
    """A method or sweep that cannot be run as asked; the message is one line."""


@dataclass(frozen=True)
class Sweep:
    """The budgets given on the command line."""

    max_thinking: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    min_thinking: tuple[int, ...] = ()
    num_ignore: tuple[int, ...] = ()
    wait_text: str = "Wait"
    steps: tuple[int, ...] = (16, 32, 64, 128)
    tokens_per_step: int = 100
    samples: tuple[int, ...] = (1, 2, 4, 8)
    majority_max_thinking: int | None = None
    max_tries: int = 8


@dataclass(frozen=True)
class Point:
    method: str
    kind: str  # max_thinking | min_thinking | num_ignore | tokens | steps | class | samples
    budget: int | str  # the swept value: a token cap, a step count, a sample count, "short"/"long"
    prompt_suffix: str = ""
    thinking_budget: dict[str, Any] | None = None  # s1serve's budget object; None sends no budget field
    bounds: tuple[int | None, int | None] = (None, None)  # requested (min, max) thinking, for Control
    samples: int = 1
    sampled: bool = False  # draws with the sampling temperature (majority, rejection)
    rejection_cap: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}={self.budget}"


def parse_methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise PlanError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if not names:
        raise PlanError("--methods: no method given")
    return list(dict.fromkeys(names))


def plan(methods: list[str], sweep: Sweep) -> list[Point]:
    """Every point of every method, in command-line order."""
    points: list[Point] = []
    for method in methods:
        made = _points(method, sweep)
        if not made:
            raise PlanError(f"method {method}: its budget list is empty")
        points.extend(made)
    return points


def _points(method: str, s: Sweep) -> list[Point]:
    base, forced = method.removesuffix("+budget"), method.endswith("+budget")
    if base == "budget":
        caps = [
            Point(method, "max_thinking", c, thinking_budget={"max_tokens": c}, bounds=(None, c))
            for c in s.max_thinking
        ]
        mins = [
            Point(
                method, "min_thinking", m, thinking_budget={"min_tokens": m, "wait_text": s.wait_text}, bounds=(m, None)
            )
            for m in s.min_thinking
        ]
        waits = [
            Point(method, "num_ignore", k, thinking_budget={"num_ignore": k, "wait_text": s.wait_text})
            for k in s.num_ignore
        ]
        return caps + mins + waits
    if base == "token-conditional":
        return [
            Point(
                method,
                "tokens",
                n,
                prompt_suffix=f"Think for up to {n} tokens.",
                thinking_budget={"max_tokens": n} if forced else None,
                bounds=(None, n),
            )
            for n in s.max_thinking
        ]
    if base == "step-conditional":
        # Control judges steps by tokens: a step is taken to be `tokens_per_step` thinking tokens.
        return [
            Point(
                method,
                "steps",
                n,
                prompt_suffix=f"Think for up to {n} steps.",
                thinking_budget={"max_tokens": n * s.tokens_per_step} if forced else None,
                bounds=(None, n * s.tokens_per_step),
            )
            for n in s.steps
        ]
    if base == "class-conditional":
        return [Point(method, "class", "short", SHORT_PROMPT), Point(method, "class", "long", LONG_PROMPT)]
    if base == "rejection":
        return [
            Point(method, "max_thinking", c, bounds=(None, c), sampled=True, rejection_cap=c) for c in s.max_thinking
        ]
    if base == "majority":
        cap = s.majority_max_thinking
        return [
            Point(
                method,
                "samples",
                n,
                thinking_budget={"max_tokens": cap} if cap is not None else None,
                bounds=(None, cap),
                samples=n,
                sampled=True,
            )
            for n in s.samples
        ]
    raise PlanError(f"unknown method {method}")

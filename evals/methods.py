"""The test-time scaling methods of the s1 paper, each expanded into the budgets (points) it sweeps.

A Point says everything a request needs beyond the question: a prompt suffix for prompt-only length
control, s1serve's `thinking_budget` for budget forcing, a thinking cap to resample against for
rejection sampling, or a number of parallel samples to vote over.

Methods live in one registry: a method is a name, what it needs from the endpoint, and a function
from its Sweep to its points. Adding one (say, budget forcing with a new `thinking_budget` option)
is one decorated function here and a row in docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The prompts of s1's own harness (simplescaling/s1, eval/lm-evaluation-harness/lm_eval/tasks/aime/utils.py,
# and the same words in openai_math and gpqa/openai), appended to the question after a blank line.
S1_LONG_PROMPT = (
    "Answer after a long amount of thinking. If you feel like you are finished early, spend the extra time "
    "trying to double-check your work until you are absolutely sure that you have the correct answer."
)
S1_SHORT_PROMPT = "Answer after a short amount of thinking. Do not spend excessive time double-checking your work."
# s1's step-conditional checkpoint counts its steps down, each step opening with `<|im_start|>` and the
# steps left; s1's "+ budget forcing" run stops the thinking where the countdown reaches 0
# (`until_thinking=<|im_start|>0`, thinking cap `auto`).
S1_STEP_MARKER = "<|im_start|>0"


def token_prompt(n: int) -> str:
    return f"Think for up to {n} tokens."


def step_prompt(n: int) -> str:
    return f"Think for up to {n} steps."


class PlanError(ValueError):
    """A method or sweep that cannot be run as asked; the message is one line."""


@dataclass(frozen=True)
class Sweep:
    """The budgets of one method: the command line's, or a plan file's table for the method."""

    max_thinking: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    min_thinking: tuple[int, ...] = ()
    num_ignore: tuple[int, ...] = ()
    wait_text: str = "Wait"
    steps: tuple[int, ...] = (16, 32, 64, 128)
    tokens_per_step: int = 100
    step_marker: str = S1_STEP_MARKER
    samples: tuple[int, ...] = (1, 2, 4, 8)
    majority_max_thinking: int | None = None
    max_tries: int = 64
    early_exit_every: int = 256
    early_exit_agree: int = 3


@dataclass(frozen=True)
class Point:
    method: str
    kind: str  # max_thinking | min_thinking | num_ignore | tokens | steps | class | samples
    budget: int | str  # the swept value: a token cap, a step count, a sample count, "short"/"long"
    prompt_suffix: str = ""
    thinking_budget: dict[str, Any] | None = None  # s1serve's budget object; None sends no budget field
    bounds: tuple[int | None, int | None] = (None, None)  # requested (min, max) thinking, for Control
    samples: int = 1
    sampled: bool = False  # draws with the sampling temperature (majority)
    rejection_cap: int | None = None  # rejection sampling: resample until the thinking is at most this
    max_tries: int | None = None  # rejection sampling: tries per question before it counts as a failure
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}={self.budget}"

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Point:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["bounds"] = tuple(known.get("bounds") or (None, None))
        return cls(**known)


@dataclass(frozen=True)
class Method:
    name: str
    needs: str  # what the endpoint must do: "any endpoint", "s1serve", "thinking token counts"
    points: Callable[[str, Sweep], list[Point]]


REGISTRY: dict[str, Method] = {}


def method(name: str, needs: str) -> Callable[[Callable[[str, Sweep], list[Point]]], Callable]:
    def register(build: Callable[[str, Sweep], list[Point]]) -> Callable[[str, Sweep], list[Point]]:
        REGISTRY[name] = Method(name, needs, build)
        return build

    return register


@method("budget", "s1serve")
def _budget(name: str, s: Sweep) -> list[Point]:
    caps = [Point(name, "max_thinking", c, thinking_budget={"max_tokens": c}, bounds=(None, c)) for c in s.max_thinking]
    floors = [
        Point(name, "min_thinking", m, thinking_budget={"min_tokens": m, "wait_text": s.wait_text}, bounds=(m, None))
        for m in s.min_thinking
    ]
    waits = [
        Point(name, "num_ignore", k, thinking_budget={"num_ignore": k, "wait_text": s.wait_text}) for k in s.num_ignore
    ]
    return caps + floors + waits


@method("early-exit", "s1serve with early exit")
def _early_exit(name: str, s: Sweep) -> list[Point]:
    """Budget forcing at the same caps, ending the thinking early once answer probes agree."""
    probe = {"every": s.early_exit_every, "agree": s.early_exit_agree}
    return [
        Point(name, "max_thinking", c, thinking_budget={"max_tokens": c, "early_exit": probe}, bounds=(None, c))
        for c in s.max_thinking
    ]


@method("token-conditional", "any endpoint")
def _token_conditional(name: str, s: Sweep) -> list[Point]:
    return [Point(name, "tokens", n, prompt_suffix=token_prompt(n), bounds=(None, n)) for n in s.max_thinking]


@method("token-conditional+budget", "s1serve")
def _token_conditional_forced(name: str, s: Sweep) -> list[Point]:
    # s1: PROMPTTOKEN=N with max_tokens_thinking=N.
    return [
        Point(name, "tokens", n, prompt_suffix=token_prompt(n), thinking_budget={"max_tokens": n}, bounds=(None, n))
        for n in s.max_thinking
    ]


@method("step-conditional", "any endpoint")
def _step_conditional(name: str, s: Sweep) -> list[Point]:
    # Control judges steps by tokens: a step is taken to be `tokens_per_step` thinking tokens.
    per = s.tokens_per_step
    return [Point(name, "steps", n, prompt_suffix=step_prompt(n), bounds=(None, n * per)) for n in s.steps]


@method("step-conditional+budget", "s1serve with a thinking stop text")
def _step_conditional_forced(name: str, s: Sweep) -> list[Point]:
    # s1: the thinking ends where the step countdown reaches 0, under the automatic cap; no N x 100 cap.
    budget, per = {"max_tokens": "auto", "until": s.step_marker}, s.tokens_per_step
    return [
        Point(name, "steps", n, prompt_suffix=step_prompt(n), thinking_budget=budget, bounds=(None, n * per))
        for n in s.steps
    ]


@method("class-conditional", "any endpoint")
def _class_conditional(name: str, s: Sweep) -> list[Point]:
    return [Point(name, "class", "short", S1_SHORT_PROMPT), Point(name, "class", "long", S1_LONG_PROMPT)]


@method("rejection", "thinking token counts")
def _rejection(name: str, s: Sweep) -> list[Point]:
    # s1: each try's thinking is stopped at cap + 1 tokens; a try is kept when its thinking fits the cap.
    return [
        Point(
            name,
            "max_thinking",
            c,
            thinking_budget={"max_tokens": c + 1},
            bounds=(None, c),
            rejection_cap=c,
            max_tries=s.max_tries,
        )
        for c in s.max_thinking
    ]


@method("majority", "any endpoint")
def _majority(name: str, s: Sweep) -> list[Point]:
    cap = s.majority_max_thinking
    return [
        Point(
            name,
            "samples",
            n,
            thinking_budget={"max_tokens": cap} if cap is not None else None,
            bounds=(None, cap),
            samples=n,
            sampled=True,
        )
        for n in s.samples
    ]


METHODS = tuple(REGISTRY)
# The paper's "+ budget forcing" rows; class-conditional has none (its prompts name no amount to cap at).
FORCEABLE = tuple(m.removesuffix("+budget") for m in METHODS if m.endswith("+budget"))


def parse_methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown:
        raise PlanError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if not names:
        raise PlanError("--methods: no method given")
    return list(dict.fromkeys(names))


def plan(methods: list[str] | list[tuple[str, Sweep]], sweep: Sweep | None = None) -> list[Point]:
    """Every point of every method, in the order given: names sharing `sweep`, or (name, sweep) pairs."""
    pairs = [(m, sweep or Sweep()) if isinstance(m, str) else m for m in methods]
    points: list[Point] = []
    for name, own in pairs:
        if name not in REGISTRY:
            raise PlanError(f"unknown method {name}")
        made = REGISTRY[name].points(name, own)
        if not made:
            raise PlanError(f"method {name}: its budget list is empty")
        points.extend(made)
    return points

"""Fakes for unit tests of the pure budget logic: a tiny vocabulary codec and a scripted engine.

The scripted engine plays a fixed list of tokens as "what the model would emit next" and
honours a Round the way vLLM does: stop at stop ids / stop strings / EOS, mask end attempts
for the first min_tokens tokens, stop at max_tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from budget.controller import Action, EndAttempt, FormatTokens, Probe, Round, ThinkingController
from budget.formats import ThinkingFormat
from budget.spec import BudgetSpec

# Pieces for the think format: `</think>` is three pieces, so a trigger can be cut anywhere.
THINK_VOCAB = [
    "a",
    "b",
    "c",
    "x",
    " ",
    "\n",
    "Wait",
    "Final",
    " Answer",
    ":",
    "</",
    "think",
    ">",
    "<",
    "x</",
    "<eos>",
    "ans",
]


class FakeCodec:
    """Greedy longest-match tokenizer over a fixed vocabulary (no merges, no specials)."""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = list(dict.fromkeys(vocab))
        self.ids = {piece: i for i, piece in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        out, at = [], 0
        while at < len(text):
            piece = max((p for p in self.vocab if p and text.startswith(p, at)), key=len, default=None)
            if piece is None:
                raise ValueError(f"cannot encode {text[at:]!r}")
            out.append(self.ids[piece])
            at += len(piece)
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def id(self, piece: str) -> int:
        return self.ids[piece]


@dataclass
class ScriptedEngine:
    codec: FakeCodec
    script: list[str]  # the tokens the model would emit, in order
    eos: str = "<eos>"
    rounds: list[Round] = field(default_factory=list)
    masked: int = 0
    probes: list[tuple[list[int], Probe]] = field(default_factory=list)  # (completion ids, probe) as asked

    def run(self, rnd: Round) -> tuple[list[int], EndAttempt | None, str]:
        self.rounds.append(rnd)
        out: list[int] = []
        while len(out) < rnd.max_tokens:
            if not self.script:
                raise AssertionError("script exhausted")
            piece = self.script.pop(0)
            token = self.codec.id(piece)
            is_end = piece == self.eos or token in rnd.stop_token_ids
            if is_end and len(out) < rnd.min_tokens:
                self.masked += 1  # the engine masks it; the model emits its next choice instead
                continue
            out.append(token)
            if rnd.segment == "thinking":
                if piece == self.eos:
                    return out, EndAttempt.EOS, "stop"
                if token in rnd.stop_token_ids:
                    return out, EndAttempt.TRIGGER, "stop"
                if any(s in self.codec.decode(out) for s in rnd.stop):
                    return out, EndAttempt.TRIGGER, "stop"
            elif piece == self.eos:
                return out, None, "stop"
        return out, None, "length"


def run_controller(
    spec: BudgetSpec,
    fmt: ThinkingFormat,
    codec: FakeCodec,
    script: list[str],
    total_limit: int = 1000,
    probe_outputs: list[str] | None = None,
    context_left: int | None = None,
) -> tuple[ThinkingController, ScriptedEngine, list[Action]]:
    """Drive a controller over a scripted engine; answer probes play `probe_outputs` in order
    (each output's length in tokens is its count of characters)."""
    engine = ScriptedEngine(codec, list(script))
    ctl = ThinkingController(spec, FormatTokens.build(fmt, codec.encode), codec, total_limit, context_left=context_left)
    outputs = list(probe_outputs or [])
    actions = [ctl.start()]
    while actions[-1].round is not None or actions[-1].probe is not None:
        if actions[-1].probe is not None:
            engine.probes.append((list(ctl.completion_ids), actions[-1].probe))
            out = outputs.pop(0)
            actions.append(ctl.finish_probe(out, len(out)))
            continue
        ids, attempt, reason = engine.run(actions[-1].round)
        actions.append(ctl.finish_round(ids, attempt, reason))
    return ctl, engine, actions

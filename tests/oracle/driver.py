"""s1serve's budget controller driven by plain `vllm.LLM.generate` rounds, one choice at a time.

A test-side round executor: it does what the server's engine client does with the controller's
Actions (continue `prompt + context_ids`, with each round's params from the server's own
`round_params`, report the end attempt), without HTTP, so the controller's token ids can be
compared with the harness port on the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from budget.controller import EndAttempt, FormatTokens, ThinkingController
from budget.spec import BudgetSpec
from server.engine.rounds import Codec, round_params


@dataclass
class DriveResult:
    completion: list[int]
    thinking: list[int]
    report: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    cap: int | None = None


def drive(
    llm: Any,
    tokens: FormatTokens,
    spec: BudgetSpec,
    prompt_ids: list[int],
    total_limit: int,
    base: dict[str, Any],
    profile: str,
    index: int = 0,
) -> DriveResult:
    """Run one forced choice, the `index`-th of its request (its round seeds follow the
    server's). `prompt_ids` is the chat prompt without the thinking opener."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    codec = Codec(llm.get_tokenizer())
    prompt = list(prompt_ids) + list(tokens.start_ids)
    ctl = ThinkingController(spec, tokens, codec, total_limit, prompt_tokens=len(prompt), default_profile=profile)
    action = ctl.start()
    rounds: list[dict[str, Any]] = []
    request = SamplingParams(skip_special_tokens=False, **base)
    while action.round is not None:
        rnd = action.round
        sp = round_params(request, rnd, index, len(rounds), output_kind=RequestOutputKind.FINAL_ONLY)
        out = llm.generate([TokensPrompt(prompt_token_ids=prompt + ctl.context_ids)], sp, use_tqdm=False)[0].outputs[0]
        attempt = None
        if rnd.segment == "thinking" and out.finish_reason == "stop":
            attempt = EndAttempt.EOS if out.stop_reason is None else EndAttempt.TRIGGER
        rounds.append(
            {
                "segment": rnd.segment,
                "max_tokens": rnd.max_tokens,
                "min_tokens": rnd.min_tokens,
                "provisional": rnd.provisional,
                "seed": sp.seed,
                "sampling": dict(rnd.sampling),
                "generated": len(out.token_ids),
                "finish_reason": out.finish_reason,
            }
        )
        action = ctl.finish_round(list(out.token_ids), attempt, out.finish_reason)
    r = ctl.report
    report = {**r.public(), "ends_ignored": r.ends_ignored, "cut_tokens": r.cut_tokens, "inserted": dict(r.inserted)}
    return DriveResult(list(ctl.completion_ids), list(ctl.thinking_ids), report, rounds, action.finish_reason, ctl.cap)

"""s1serve's budget controller driven by plain `vllm.LLM.generate` rounds, one choice at a time.

A test-side round executor: it does what the server's engine client does with the controller's
Actions (continue `prompt + context_ids`, apply each Round's limits, stops and sampling
overrides, report the end attempt), without HTTP, so the controller's token ids can be compared
with the harness port on the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from budget.controller import EndAttempt, FormatTokens, ThinkingController
from budget.spec import BudgetSpec
from server.forcing_client import Codec


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
) -> DriveResult:
    """Run one forced choice. `prompt_ids` is the chat prompt without the thinking opener."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    codec = Codec(llm.get_tokenizer())
    prompt = list(prompt_ids) + list(tokens.start_ids)
    ctl = ThinkingController(spec, tokens, codec, total_limit, prompt_tokens=len(prompt), default_profile=profile)
    action = ctl.start()
    rounds: list[dict[str, Any]] = []
    while action.round is not None:
        rnd = action.round
        params = {**base, **dict(rnd.sampling)}
        if rnd.segment == "thinking":
            sp = SamplingParams(
                max_tokens=rnd.max_tokens,
                min_tokens=rnd.min_tokens,
                stop_token_ids=list(rnd.stop_token_ids) or None,
                stop=list(rnd.stop) or None,
                bad_words=list(rnd.bad_words) or None,
                skip_special_tokens=False,
                **params,
            )
        else:
            sp = SamplingParams(max_tokens=rnd.max_tokens, skip_special_tokens=False, **params)
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
                "sampling": dict(rnd.sampling),
                "generated": len(out.token_ids),
                "finish_reason": out.finish_reason,
            }
        )
        action = ctl.finish_round(list(out.token_ids), attempt, out.finish_reason)
    r = ctl.report
    report = {**r.public(), "ends_ignored": r.ends_ignored, "cut_tokens": r.cut_tokens, "inserted": dict(r.inserted)}
    return DriveResult(list(ctl.completion_ids), list(ctl.thinking_ids), report, rounds, action.finish_reason, ctl.cap)

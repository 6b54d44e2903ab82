"""Run every oracle case on one model: the harness port, and s1serve's controller under both profiles.

Usage: python -m tests.oracle.run MODEL FORMAT OUT.json   (FORMAT: s1 | think)

One engine serves all cases. Case sizes come from a probe run of the port (where the greedy
model tries to end its thinking), so every case exercises the path it is named after. Besides
the raw results, it computes what the exact profile must return where it deliberately differs
from the harness (docs/fidelity.md), from the port's output and plain generate calls only.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from benchmarks.harness_port import HarnessPort

MESSAGES = [{"role": "user", "content": "What is the sum of two and three?"}]
ENGINE = {
    "max_model_len": 1024,
    "enforce_eager": True,
    "dtype": "float32",
    "seed": 0,
    "kv_cache_memory_bytes": 256 * 1024 * 1024,
    "block_size": 32,
    # Every request computes its whole prefix: no cached blocks from another round structure.
    "enable_prefix_caching": False,
}
FORMAT_KWARGS = {
    "s1": {},
    "think": {"thinking_start": "<think>", "thinking_end": "</think>", "until_thinking": "</think>"},
}
WAIT = "Wait"
CASE_NAMES = (
    "no-budget",
    "max-only",
    "min-only",
    "ignore-1",
    "ignore-3",
    "ignore-no-string",
    "min-ignore",
    "auto",
    "auto-ignore-2",
    "cap-after-wait",
    "exact-fill",
    "sampling",
    "min-equals-max",
    "long-wait",
    "tight-total",
    "num-ignore-0",
)
# Cases compared on the controller only (tests/integration/test_harness_parity.py): sampled
# thinking with a seed, two choices, a batch of two prompts, a stop text (whose rounds are
# not session chunks, as the HTTP and sessions tests expect of every case in CASE_NAMES), and
# an end attempt by EOS inside the thinking.
DRIVER_CASES = ("seeded-sampling", "n-2", "auto-batch", "until", "eos-in-thinking")
# Logit biases on EOS tried in turn, until the greedy model's first end attempt is an EOS (the
# random tiny models' logits are nearly flat: a bias of 1 makes EOS win almost everywhere).
EOS_BIASES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0)
LONG_MESSAGES = [{"role": "user", "content": "What is the sum of two and three, and of seven and eleven?"}]
LONG_WAIT = "Wait, let me check that again"
SEED = 1234
ANSWER_ROOM = 60
NEVER = "<|endoftext|>"  # a stop text the tiny models do not write


def build_cases(probe: Any, fixed: dict[str, Any], until: str) -> list[dict[str, Any]]:
    """(name, harness gen kwargs, thinking_budget, max_gen_toks, expected category) per case.

    `probe` ran with 3 ignores and a wide cap: probe.ignore_str_starts are where the model's
    first three end attempts fell (as thinking lengths).
    """
    a0, a1, a2 = probe.ignore_str_starts[:3]
    w, overhead = fixed["wait_len"], fixed["auto_overhead"]
    # Total tokens for the cases whose total is not the point: the probe's thinking (three
    # ignores) and ANSWER_ROOM tokens. A case that thinks a little longer (min-only and
    # ignore-no-string run on to the next end attempt) still ends its thinking inside the total.
    room = len(probe.thinking) + ANSWER_ROOM
    # A cap in the middle of the round after the first (second) wait: the harness cuts that round.
    after_1 = a0 + w + max(1, (a1 - a0 - w) // 2)
    after_2 = a1 + w + max(1, (a2 - a1 - w) // 2)
    ign = {"thinking_n_ignore_str": WAIT}
    cases = [
        ("no-budget", {}, None, room, "same"),
        ("max-only", {"max_tokens_thinking": max(3, a0 // 2)}, {"max_tokens": max(3, a0 // 2)}, room, "same"),
        ("min-only", {"min_tokens_thinking": a0 + 15}, {"min_tokens": a0 + 15, "wait_text": ""}, room, "same"),
        (
            "ignore-1",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 1, **ign},
            {"max_tokens": 200, "num_ignore": 1, "wait_text": WAIT},
            room,
            "same",
        ),
        (
            "ignore-3",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 3, **ign},
            {"max_tokens": 200, "num_ignore": 3, "wait_text": WAIT},
            room,
            "same",
        ),
        (
            "ignore-no-string",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 2},
            {"max_tokens": 200, "num_ignore": 2, "wait_text": ""},
            room,
            "same",
        ),
        (
            "min-ignore",
            {"max_tokens_thinking": 200, "min_tokens_thinking": a1 + 2, "thinking_n_ignore": 1, **ign},
            {"max_tokens": 200, "min_tokens": a1 + 2, "num_ignore": 1, "wait_text": WAIT},
            room,
            "min",
        ),
        ("auto", {"max_tokens_thinking": "auto"}, {"max_tokens": "auto"}, overhead + max(3, a0 // 2), "same"),
        (
            "auto-ignore-2",
            {"max_tokens_thinking": "auto", "thinking_n_ignore": 2, **ign},
            {"max_tokens": "auto", "num_ignore": 2, "wait_text": WAIT},
            overhead + after_2,
            "cut",
        ),
        (
            "cap-after-wait",
            {"max_tokens_thinking": after_1, "thinking_n_ignore": 1, **ign},
            {"max_tokens": after_1, "num_ignore": 1, "wait_text": WAIT},
            room,
            "cut",
        ),
        (
            "exact-fill",
            {"max_tokens_thinking": a0 + w, "thinking_n_ignore": 1, **ign},
            {"max_tokens": a0 + w, "num_ignore": 1, "wait_text": WAIT},
            room,
            "cut",
        ),
        (
            "sampling",
            {"max_tokens_thinking": a0 + 10, "repetition_penalty_thinking": 1.3},
            {"max_tokens": a0 + 10, "sampling": {"repetition_penalty": 1.3}},
            room,
            "same",
        ),
    ]
    a0_plus = a0 + 5
    cases += [
        (
            "min-equals-max",
            {"max_tokens_thinking": a0_plus, "min_tokens_thinking": a0_plus},
            {"max_tokens": a0_plus, "min_tokens": a0_plus, "wait_text": ""},
            room,
            "same",
        ),
        (  # one token of room after the first attempt: the wait text does not fit
            "long-wait",
            {"max_tokens_thinking": a0 + 1, "thinking_n_ignore": 1, "thinking_n_ignore_str": LONG_WAIT},
            {"max_tokens": a0 + 1, "num_ignore": 1, "wait_text": LONG_WAIT},
            room,
            "cut",
        ),
        (  # max_tokens ends the request inside the thinking's second round
            "tight-total",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 1, **ign},
            {"max_tokens": 200, "num_ignore": 1, "wait_text": WAIT},
            after_1,
            "same",
        ),
        (
            "num-ignore-0",
            {"max_tokens_thinking": 200, "min_tokens_thinking": a0 + 15, "thinking_n_ignore": 0},
            {"max_tokens": 200, "min_tokens": a0 + 15, "num_ignore": 0, "wait_text": ""},
            room,
            "ignore0",
        ),
    ]
    sampled = {"max_tokens_thinking": 60, "temperature_thinking": 1.0, "seed": SEED}
    sampled_budget = {"max_tokens": 60, "sampling": {"temperature": 1.0}}
    short = max(3, a0 // 2)
    cases += [
        ("seeded-sampling", sampled, sampled_budget, room, "same"),
        ("n-2", sampled, sampled_budget, room, "same"),
        # The harness resolves auto from the batch's longest prompt: here the cap is `short`.
        (
            "auto-batch",
            {"max_tokens_thinking": "auto"},
            {"max_tokens": short},
            fixed["auto_overhead_long"] + short,
            "same",
        ),  # fmt: skip
        (
            "until",
            {"max_tokens_thinking": 150, "until_thinking": until},
            {"max_tokens": 150, "until": until},
            room,
            "strip",
        ),  # fmt: skip
        (  # EOS is an end attempt too: ignored once (wait text appended), then accepted
            "eos-in-thinking",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 1, **ign, "logit_bias": fixed["eos_bias"]},
            {"max_tokens": 200, "num_ignore": 1, "wait_text": WAIT},
            room,
            "same",
        ),
    ]
    return [dict(zip(("name", "kwargs", "budget", "max_gen", "expect"), c, strict=True)) for c in cases]


class RecordingPort(HarnessPort):
    """The port, recording the sampling params it computed for each of its generate calls."""

    def __init__(self, llm: Any) -> None:
        super().__init__(llm)
        self.calls: list[dict[str, Any]] = []

    def _generate(self, requests: list[list[int]], sampling_params: Any) -> list[Any]:
        sp = sampling_params
        self.calls.append(
            {
                "prompts": len(requests),
                "max_tokens": sp.max_tokens,
                "min_tokens": sp.min_tokens,
                "seed": sp.seed,
                "temperature": sp.temperature,
                "stop_token_ids": list(sp.stop_token_ids or []),
                "stop": list(sp.stop or []),
            }
        )
        outs = super()._generate(requests, sampling_params)
        # None where EOS stopped the request; the stop token id or text otherwise.
        self.calls[-1]["stop_reasons"] = [o.outputs[0].stop_reason for o in outs]
        return outs


def main(model: str, fmt_name: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from budget.controller import FormatTokens
    from budget.formats import get_format
    from budget.spec import parse_thinking_budget
    from tests.oracle.driver import Codec, drive

    llm = LLM(model=model, **ENGINE)
    tok = llm.get_tokenizer()
    fmt = get_format(fmt_name)
    tokens = FormatTokens.build(fmt, Codec(tok).encode)
    fmt_kwargs = FORMAT_KWARGS[fmt_name]
    port = RecordingPort(llm)
    chat = lambda m: tok.encode(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False),  # noqa: E731
                                add_special_tokens=False)  # fmt: skip
    prompt, long_prompt = chat(MESSAGES), chat(LONG_MESSAGES)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731

    def run_port(kwargs: dict[str, Any], max_gen: int, batch: bool = False) -> Any:
        """The port's result for `prompt` (with `batch`, run in one batch with `long_prompt`)."""
        gen = {"max_gen_toks": max_gen, "temperature": 0.0}
        if any("thinking" in k for k in kwargs):
            gen.update(fmt_kwargs)
        gen.update(kwargs)
        port.calls = []
        return port.generate_until([prompt, long_prompt] if batch else [prompt], gen)[0]

    def port_entry(p: Any) -> dict[str, Any]:
        return {**asdict(p), "completion": p.completion}

    def greedy(ids: list[int], n: int) -> list[int]:
        if n <= 0:
            return []
        sp = SamplingParams(max_tokens=n, temperature=0.0, skip_special_tokens=False)
        return list(llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0].token_ids)

    # The thinking is what these runs measure: their answers are cut to a few tokens.
    probe = run_port({"max_tokens_thinking": 200, "thinking_n_ignore": 3, "thinking_n_ignore_str": WAIT}, 8)
    # The stop text of the "until" case: the trigger and the token the model writes after it,
    # where the trigger first appears once it no longer ends the thinking.
    free = run_port({"max_tokens_thinking": 150, "until_thinking": NEVER}, 8).thinking
    at = free.index(tokens.trigger_ids[0]) if tokens.trigger_ids[0] in free[:-1] else None
    until = tok.decode(free[at : at + 2], skip_special_tokens=False) if at is not None else NEVER
    eos_bias = None
    for bias in EOS_BIASES:
        tried = {tok.eos_token_id: bias}
        first = run_port({"max_tokens_thinking": 200, "thinking_n_ignore": 0, "logit_bias": tried}, 8)
        if first.final_finish == "stop" and port.calls[0]["stop_reasons"] == [None] and len(first.thinking) >= 3:
            eos_bias = tried
            break
    assert eos_bias is not None, "no bias in EOS_BIASES makes the model end its thinking with EOS"
    forced_end = enc(fmt.end + "\nFinal Answer:")
    overhead = len(tokens.start_ids) + len(forced_end) + 100
    fixed = {
        "wait_len": len(enc(WAIT)),
        "auto_overhead": len(prompt) + overhead,
        "auto_overhead_long": len(long_prompt) + overhead,
        "until_at": at,
        "eos_bias": eos_bias,
    }
    results: dict[str, Any] = {"prompt": prompt, "probe": asdict(probe), "fixed": fixed, "cases": {}}
    for case in build_cases(probe, fixed, until):
        name = case["name"]
        p = run_port(case["kwargs"], case["max_gen"], batch=name == "auto-batch")
        entry: dict[str, Any] = {**case, "port": port_entry(p), "port_calls": port.calls}
        total = case["max_gen"]
        if case["budget"] is None:
            entry["plain"] = greedy(prompt, total)
            results["cases"][name] = entry
            continue
        spec = parse_thinking_budget(case["budget"])
        base = {"temperature": 0.0, **({"seed": SEED} if "seed" in case["kwargs"] else {})}
        if "logit_bias" in case["kwargs"]:
            base["logit_bias"] = case["kwargs"]["logit_bias"]
        for profile in ("exact", "harness"):
            entry[profile] = asdict(drive(llm, tokens, spec, prompt, total, base, profile))
        wait_ids = enc(case["kwargs"].get("thinking_n_ignore_str", ""))
        entry["wait_ids"] = wait_ids
        # What the exact profile must return (docs/fidelity.md, "the exact profile").
        if p.cut:
            kept = list(p.thinking)
            for start in p.ignore_str_starts:  # a wait text the cap cut in two is not inserted at all
                if start < len(kept) < start + len(wait_ids):
                    kept = kept[:start]
            bare = kept and not tok.decode(kept[-4:], skip_special_tokens=False).endswith("\n")
            end = (enc("\n") if bare else []) + forced_end
            opened = prompt + list(tokens.start_ids)
            expected = kept + end + greedy(opened + kept + end, total - len(kept) - len(end))
            entry["category"] = "cut"
        elif case["expect"] == "min":
            # The harness drops min_tokens when num_ignore is set; the exact profile keeps
            # overriding below the floor, which the harness does only with more ignores.
            waits = entry["exact"]["report"]["waits_inserted"]
            more = run_port({**case["kwargs"], "thinking_n_ignore": waits}, total)
            entry["harness_with_exact_waits"] = port_entry(more)
            expected = more.completion[:total]
            entry["category"] = "min"
        elif name == "until":
            # The exact profile strips the stop text from where it begins; the harness only where the
            # ids end with its encoding (difference 5): the ids that wrote it may encode otherwise.
            kept, end = list(p.thinking[: fixed["until_at"] or 0]), list(tokens.end_ids)
            opened = prompt + list(tokens.start_ids)
            expected = kept + end + greedy(opened + kept + end, total - len(kept) - len(end))
            entry["category"] = "strip"
        elif case["expect"] == "ignore0":
            # thinking_n_ignore=0 drops the min budget in the harness; the exact profile keeps it.
            kwargs = {k: v for k, v in case["kwargs"].items() if k != "thinking_n_ignore"}
            entry["harness_without_ignore"] = port_entry(run_port(kwargs, total))
            expected = entry["harness_without_ignore"]["completion"][:total]
            entry["category"] = "ignore0"
        else:
            expected = p.completion[:total]
            entry["category"] = "same"
        entry["expected_exact"] = expected
        if name in ("sampling", "seeded-sampling"):
            without = {k: v for k, v in case["kwargs"].items() if k in ("max_tokens_thinking",)}
            entry["without_sampling"] = asdict(run_port(without, total))
        if name == "n-2":  # choice i's rounds are seeded seed + i (+ 7919 per round): the port run with seed + i
            entry["choices"] = {
                profile: [asdict(drive(llm, tokens, spec, prompt, total, base, profile, index=i)) for i in (0, 1)]
                for profile in ("exact", "harness")
            }
            entry["port_by_seed"] = [port_entry(run_port({**case["kwargs"], "seed": SEED + i}, total)) for i in (0, 1)]
        if name == "auto-batch":  # the same request alone: s1serve resolves auto from its own prompt
            alone = parse_thinking_budget({"max_tokens": "auto"})
            entry["auto_alone"] = asdict(drive(llm, tokens, alone, prompt, total, base, "exact"))
        results["cases"][name] = entry
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])

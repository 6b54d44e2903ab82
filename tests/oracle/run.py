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
)


def build_cases(probe: Any, fixed: dict[str, int]) -> list[dict[str, Any]]:
    """(name, harness gen kwargs, thinking_budget, max_gen_toks, expected category) per case.

    `probe` ran with 3 ignores and a wide cap: probe.ignore_str_starts are where the model's
    first three end attempts fell (as thinking lengths).
    """
    a0, a1, a2 = probe.ignore_str_starts[:3]
    w, overhead = fixed["wait_len"], fixed["auto_overhead"]
    # A cap in the middle of the round after the first (second) wait: the harness cuts that round.
    after_1 = a0 + w + max(1, (a1 - a0 - w) // 2)
    after_2 = a1 + w + max(1, (a2 - a1 - w) // 2)
    ign = {"thinking_n_ignore_str": WAIT}
    cases = [
        ("no-budget", {}, None, 300, "same"),
        ("max-only", {"max_tokens_thinking": max(3, a0 // 2)}, {"max_tokens": max(3, a0 // 2)}, 300, "same"),
        ("min-only", {"min_tokens_thinking": a0 + 15}, {"min_tokens": a0 + 15, "wait_text": ""}, 300, "same"),
        (
            "ignore-1",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 1, **ign},
            {"max_tokens": 200, "num_ignore": 1, "wait_text": WAIT},
            400,
            "same",
        ),
        (
            "ignore-3",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 3, **ign},
            {"max_tokens": 200, "num_ignore": 3, "wait_text": WAIT},
            400,
            "same",
        ),
        (
            "ignore-no-string",
            {"max_tokens_thinking": 200, "thinking_n_ignore": 2},
            {"max_tokens": 200, "num_ignore": 2, "wait_text": ""},
            400,
            "same",
        ),
        (
            "min-ignore",
            {"max_tokens_thinking": 200, "min_tokens_thinking": a1 + 2, "thinking_n_ignore": 1, **ign},
            {"max_tokens": 200, "min_tokens": a1 + 2, "num_ignore": 1, "wait_text": WAIT},
            400,
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
            300,
            "cut",
        ),
        (
            "exact-fill",
            {"max_tokens_thinking": a0 + w, "thinking_n_ignore": 1, **ign},
            {"max_tokens": a0 + w, "num_ignore": 1, "wait_text": WAIT},
            300,
            "cut",
        ),
        (
            "sampling",
            {"max_tokens_thinking": a0 + 10, "repetition_penalty_thinking": 1.3},
            {"max_tokens": a0 + 10, "sampling": {"repetition_penalty": 1.3}},
            300,
            "same",
        ),
    ]
    return [dict(zip(("name", "kwargs", "budget", "max_gen", "expect"), c, strict=True)) for c in cases]


def main(model: str, fmt_name: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from benchmarks.harness_port import HarnessPort
    from budget.controller import FormatTokens
    from budget.formats import get_format
    from budget.spec import parse_thinking_budget
    from tests.oracle.driver import Codec, drive

    llm = LLM(model=model, **ENGINE)
    tok = llm.get_tokenizer()
    fmt = get_format(fmt_name)
    tokens = FormatTokens.build(fmt, Codec(tok).encode)
    fmt_kwargs = FORMAT_KWARGS[fmt_name]
    port = HarnessPort(llm)
    prompt = tok.encode(tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False),
                        add_special_tokens=False)  # fmt: skip
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731

    def run_port(kwargs: dict[str, Any], max_gen: int) -> Any:
        gen = {"max_gen_toks": max_gen, "temperature": 0.0, **kwargs}
        if any("thinking" in k for k in kwargs):
            gen.update(fmt_kwargs)
        return port.generate_until([prompt], gen)[0]

    def greedy(ids: list[int], n: int) -> list[int]:
        if n <= 0:
            return []
        sp = SamplingParams(max_tokens=n, temperature=0.0, skip_special_tokens=False)
        return list(llm.generate([TokensPrompt(prompt_token_ids=ids)], sp, use_tqdm=False)[0].outputs[0].token_ids)

    probe = run_port({"max_tokens_thinking": 200, "thinking_n_ignore": 3, "thinking_n_ignore_str": WAIT}, 400)
    forced_end = enc(fmt.end + "\nFinal Answer:")
    fixed = {"wait_len": len(enc(WAIT)), "auto_overhead": len(prompt) + len(tokens.start_ids) + len(forced_end) + 100}
    results: dict[str, Any] = {"prompt": prompt, "probe": asdict(probe), "fixed": fixed, "cases": {}}
    for case in build_cases(probe, fixed):
        p = run_port(case["kwargs"], case["max_gen"])
        entry: dict[str, Any] = {**case, "port": {**asdict(p), "completion": p.completion}}
        total = case["max_gen"]
        if case["budget"] is None:
            entry["plain"] = greedy(prompt, total)
            results["cases"][case["name"]] = entry
            continue
        spec = parse_thinking_budget(case["budget"])
        for profile in ("exact", "harness"):
            entry[profile] = asdict(drive(llm, tokens, spec, prompt, total, {"temperature": 0.0}, profile))
        # What the exact profile must return (docs/fidelity.md, "the exact profile").
        if p.cut:
            kept = list(p.thinking)
            for start in p.ignore_str_starts:  # a wait text the cap cut in two is not inserted at all
                if start < len(kept) < start + fixed["wait_len"]:
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
            entry["harness_with_exact_waits"] = {**asdict(more), "completion": more.completion}
            expected = more.completion[:total]
            entry["category"] = "min"
        else:
            expected = p.completion[:total]
            entry["category"] = "same"
        entry["expected_exact"] = expected
        if case["name"] == "sampling":
            entry["without_sampling"] = run_port({"max_tokens_thinking": case["kwargs"]["max_tokens_thinking"]}, total)
            entry["without_sampling"] = asdict(entry["without_sampling"])
        results["cases"][case["name"]] = entry
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""The s1 reference algorithm, replayed with plain `vllm.LLM.generate` calls, one request at a time.

Written procedurally from the description of s1's evaluation loop, independent of s1serve's
controller, so the server's token ids can be checked against it.

Usage: python -m tests.integration.s1_reference MODEL CASES.json OUT.json
Each case: {"prompt_ids": [...], "max_total": int, "budget": null | {max_tokens, min_tokens,
num_ignore, wait_text, final_answer_text}}. Output: the completion token ids per case.
"""

from __future__ import annotations

import json
import sys


def replay(llm, tok, case: dict) -> list[int]:  # noqa: ANN001 - vllm objects
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    def enc(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    def gen(ids: list[int], **kw):  # noqa: ANN202
        out = llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(temperature=0, **kw), use_tqdm=False)
        return out[0].outputs[0]

    prompt, total, budget = case["prompt_ids"], case["max_total"], case["budget"]
    if budget is None:
        return list(gen(prompt, max_tokens=total).token_ids)

    trigger = tok.convert_tokens_to_ids("<|im_start|>")
    cap, floor = budget.get("max_tokens"), budget.get("min_tokens", 0)
    n_ignore = budget.get("num_ignore", 0)
    wait = enc(budget.get("wait_text", "Wait"))
    final = enc(budget.get("final_answer_text", "Final Answer:"))
    end = enc("<|im_start|>answer")
    seq = list(prompt) + enc("<|im_start|>think\n")
    out: list[int] = []
    thinking, ignored = 0, 0
    forced = cap == 0
    while not forced:
        room = total - len(out) if cap is None else min(cap - thinking, total - len(out))
        # Without wait text, s1's min_tokens_thinking: the trigger (and EOS) is masked until the floor.
        mask = min(max(floor - thinking, 0), room) if not wait else 0
        o = gen(seq + out, max_tokens=room, min_tokens=mask, stop_token_ids=[trigger])
        ids = list(o.token_ids)
        if o.finish_reason == "length":
            out += ids
            thinking += len(ids)
            if cap is not None and thinking >= cap:
                forced = True
                break
            return out  # the request's own limit ran out inside the thinking
        ids = ids[:-1]  # strip the trigger (or EOS)
        out += ids
        thinking += len(ids)
        if ignored < n_ignore or (thinking < floor and wait):
            if cap is not None and thinking + len(wait) > cap:
                forced = True
                break
            out += wait
            thinking += len(wait)
            ignored += 1
            continue
        out += end
        break
    if forced:
        tail = tok.decode(out[-4:]) if thinking else "\n"
        out += (enc("\n") if not tail.endswith("\n") else []) + end + enc("\n") + final
    left = total - len(out)
    if left > 0:
        out += list(gen(seq + out, max_tokens=left).token_ids)
    return out


def main(model: str, cases_path: str, out_path: str) -> None:
    from vllm import LLM

    # The same engine arguments as the test server (tests/integration/conftest.py).
    llm = LLM(
        model=model,
        max_model_len=1024,
        enforce_eager=True,
        dtype="float32",
        seed=0,
        kv_cache_memory_bytes=256 * 1024 * 1024,
    )
    tok = llm.get_tokenizer()
    cases = json.loads(open(cases_path).read())
    with open(out_path, "w") as f:
        json.dump([replay(llm, tok, case) for case in cases], f)


if __name__ == "__main__":
    main(*sys.argv[1:4])

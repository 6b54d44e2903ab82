"""Scenario E: s1's own evaluation loop on an offline `vllm.LLM`, batch-synchronous as s1 runs it.

This runs the port of s1's evaluation harness (benchmarks/harness_port.py, the one reference
the test suite checks s1serve against) on the benchmark's prompts, in batches: every round is
one `generate` call for all prompts of a batch that are still thinking, and one answer call
ends the batch. D's budget maps to the harness's generation kwargs: max_tokens ->
max_tokens_thinking, min_tokens -> min_tokens_thinking, num_ignore/wait_text ->
thinking_n_ignore/thinking_n_ignore_str. Like s1serve (and unlike vLLM 0.6.4, which s1 used),
the model's generation_config sampling defaults are applied, so D and E sample alike. Where the
end trigger is several tokens (SmolLM2's `</think>`), the rounds stop on text, where the harness
itself would refuse min/num_ignore. As in the harness, the thinking is bounded by the cap and
the answer round by output_len, so a completion can be longer than output_len.

Run in its own process: python -m benchmarks.reference JOB.json RESULT.json
JOB: {"model", "engine_args": [...], "prompts": [...], "batch_size", "output_len",
      "budget": {"max_tokens", "min_tokens", "num_ignore", "wait_text"}}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_KEYS = ("top_p", "top_k", "min_p", "repetition_penalty")


def harness_kwargs(budget: dict[str, Any], fmt: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The harness's --gen_kwargs for a thinking budget, in a thinking format."""
    kwargs: dict[str, Any] = {
        "temperature": 0.0,
        **defaults,
        "thinking_start": fmt.start,
        "thinking_end": fmt.end,
        "until_thinking": fmt.trigger,
    }
    if budget.get("max_tokens") is not None:
        kwargs["max_tokens_thinking"] = budget["max_tokens"]
    if budget.get("min_tokens"):
        kwargs["min_tokens_thinking"] = budget["min_tokens"]
    if budget.get("num_ignore"):
        kwargs["thinking_n_ignore"] = budget["num_ignore"]
        if budget.get("wait_text", "Wait"):
            kwargs["thinking_n_ignore_str"] = budget.get("wait_text", "Wait")
    return kwargs


def model_format(model: str, chat_template: str | None) -> Any:
    from budget.formats import detect_format

    recorded = None
    marker = Path(model) / "s1serve.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text()).get("thinking_format")
    return detect_format(model_name=model, chat_template=chat_template, recorded=recorded)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from benchmarks.harness_port import HarnessPort

    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    args = parser.parse_args(["--model", job["model"], *job["engine_args"]])
    llm = LLM.from_engine_args(EngineArgs.from_cli_args(args))
    tok = llm.get_tokenizer()
    fmt = model_format(job["model"], getattr(tok, "chat_template", None))
    port = HarnessPort(llm, multi_token_stops="text")
    start_ids = tok.encode(fmt.start, add_special_tokens=False)

    def context(user: str) -> list[int]:
        text = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
        ids = tok.encode(text, add_special_tokens=False)
        # The harness appends the opener itself; a template that already opened it loses its copy.
        return ids[: -len(start_ids)] if ids[-len(start_ids) :] == start_ids else ids

    defaults = {k: v for k, v in vars(llm.get_default_sampling_params()).items() if k in DEFAULT_KEYS}
    kwargs = {"max_gen_toks": job["output_len"], **harness_kwargs(job["budget"], fmt, defaults)}
    contexts = [context(p) for p in job["prompts"]]
    port.generate_until(contexts[:1], {"max_gen_toks": 4, "temperature": 0.0})  # warm-up, as the servers get
    size = job["batch_size"]
    results = []
    started = time.perf_counter()
    for i in range(0, len(contexts), size):
        results += port.generate_until(contexts[i : i + size], kwargs)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "batch_size": size,
        "requests": [
            {
                "prompt_index": i,
                "completion_tokens": len(r.completion),
                "thinking_tokens": len(r.thinking),
                "waits_inserted": sum(1 for s in r.ignore_str_starts if s < len(r.thinking)),
                "forced_end": r.cut or r.final_finish == "length",
                "rounds": len(r.rounds) + 1,
            }
            for i, r in enumerate(results)
        ],
    }


def main(argv: list[str]) -> int:
    job = json.loads(open(argv[0]).read())
    result = run_job(job)
    with open(argv[1], "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Scenario E: s1's budget-forcing loop on an offline `vllm.LLM`, batch-synchronous as s1's code runs it.

A batch of prompts thinks in lock-step rounds: every prompt that is still thinking generates
until it stops (end attempt, cap or length); the round ends when the slowest one does. Those
whose attempt is overridden get the wait text and go into the next round; the others wait.
When no prompt is thinking any more, one answer round generates every answer. The policy
(when to insert the wait text, when the cap forces the end and what is appended) is s1's,
with the token counts s1serve reports: inserted text counts as completion tokens. It shares
no forcing code with `budget/` on purpose: that D and E produce the same token counts
(`P3_same_token_counts`) then cross-checks two independent implementations.

Run in its own process: python -m benchmarks.reference JOB.json RESULT.json
JOB: {"model", "engine_args": [...], "prompts": [...], "batch_size", "output_len",
      "budget": {"max_tokens", "min_tokens", "num_ignore", "wait_text", "final_answer_text"}}
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Choice:
    prompt: list[int]
    total: int  # completion token limit (max_completion_tokens)
    out: list[int] = field(default_factory=list)
    thinking: int = 0
    waits: int = 0
    forced: bool = False
    phase: str = "thinking"  # thinking -> answer -> done
    rounds: int = 0


class ReferenceLoop:
    def __init__(self, llm: Any, fmt: Any, budget: dict[str, Any]) -> None:
        self.llm = llm
        self.tok = llm.get_tokenizer()
        self.fmt = fmt
        self.cap = budget.get("max_tokens")
        self.floor = budget.get("min_tokens", 0)
        self.n_ignore = budget.get("num_ignore", 0)
        self.wait = self.enc(budget.get("wait_text", "Wait"))
        self.final = self.enc(budget.get("final_answer_text", "Final Answer:"))
        self.start_ids = self.enc(fmt.start + fmt.start_sep)
        self.end_ids = self.enc(fmt.end)
        self.sep_ids = self.enc(fmt.end_sep)
        self.trigger_ids = self.enc(fmt.trigger)
        self.defaults = llm.get_default_sampling_params()

    def enc(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def prompt_ids(self, user: str) -> list[int]:
        text = self.tok.apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
        )
        ids = self.enc(text)
        if not text.rstrip().endswith(self.fmt.start):
            ids += self.start_ids
        return ids

    def _params(self, **kw: Any) -> Any:
        from vllm import SamplingParams

        base = {k: v for k, v in vars(self.defaults).items() if k in ("top_p", "top_k", "min_p", "repetition_penalty")}
        base.update(temperature=0.0, **kw)
        return SamplingParams(**base)

    def _generate(self, choices: list[Choice], params: list[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=c.prompt + c.out) for c in choices]
        return [o.outputs[0] for o in self.llm.generate(prompts, params, use_tqdm=False)]

    def _strip_trigger(self, ids: list[int], stop_reason: Any) -> list[int]:
        """Drop the end attempt: EOS or a stop token is the last id; a text trigger may span several."""
        if not isinstance(stop_reason, str):
            return ids[:-1]
        for k in range(len(ids) - 1, -1, -1):
            tail = self.tok.decode(ids[k:], skip_special_tokens=False)
            at = tail.rfind(stop_reason)
            if at >= 0:
                return ids[:k] + (self.enc(tail[:at]) if at else [])
        return ids

    def _force_end(self, c: Choice) -> None:
        tail = self.tok.decode(c.out[-4:], skip_special_tokens=False) if c.thinking else "\n"
        lead = [] if tail.endswith("\n") else self.enc("\n")
        ids = lead + self.end_ids + self.sep_ids + self.final
        c.phase = "answer"
        c.forced = True
        if len(ids) > c.total - len(c.out):
            c.phase = "done"
            return
        c.out += ids

    def thinking_round(self, active: list[Choice]) -> None:
        params = []
        single = len(self.trigger_ids) == 1
        for c in active:
            room = c.total - len(c.out) if self.cap is None else min(self.cap - c.thinking, c.total - len(c.out))
            stop = {"stop_token_ids": self.trigger_ids} if single else {"stop": [self.fmt.trigger]}
            params.append(self._params(max_tokens=room, **stop))
        for c, o in zip(active, self._generate(active, params), strict=True):
            c.rounds += 1
            ids = list(o.token_ids)
            if o.finish_reason != "stop":  # ran out of room: the cap forces the end, or the request is over
                c.out += ids
                c.thinking += len(ids)
                if self.cap is not None and c.thinking >= self.cap:
                    self._force_end(c)
                else:
                    c.phase = "done"
                continue
            ids = self._strip_trigger(ids, o.stop_reason)
            c.out += ids
            c.thinking += len(ids)
            if c.waits < self.n_ignore or c.thinking < self.floor:
                too_long = len(self.wait) > c.total - len(c.out)
                if (self.cap is not None and c.thinking + len(self.wait) > self.cap) or too_long:
                    self._force_end(c)
                    continue
                c.out += self.wait
                c.thinking += len(self.wait)
                c.waits += 1
                continue
            if len(self.end_ids) > c.total - len(c.out):
                c.phase = "done"
                continue
            c.out += self.end_ids
            c.phase = "answer"

    def answer_round(self, active: list[Choice]) -> None:
        params = [self._params(max_tokens=c.total - len(c.out)) for c in active]
        for c, o in zip(active, self._generate(active, params), strict=True):
            c.rounds += 1
            c.out += list(o.token_ids)
            c.phase = "done"

    def run_batch(self, choices: list[Choice]) -> None:
        for c in choices:
            if self.cap == 0:
                self._force_end(c)
        while True:
            thinking = [c for c in choices if c.phase == "thinking"]
            if thinking:
                self.thinking_round(thinking)
                continue
            answering = [c for c in choices if c.phase == "answer" and len(c.out) < c.total]
            for c in choices:
                if c.phase == "answer" and c not in answering:
                    c.phase = "done"
            if not answering:
                return
            self.answer_round(answering)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from server.app import resolve_format

    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    args = parser.parse_args(["--model", job["model"], *job["engine_args"]])
    llm = LLM.from_engine_args(EngineArgs.from_cli_args(args))
    fmt = resolve_format(None, job["model"], llm.get_tokenizer())
    loop = ReferenceLoop(llm, fmt, job["budget"])
    prompts = [loop.prompt_ids(p) for p in job["prompts"]]
    # Warm up the engine the way the servers are warmed up: one short request.
    loop.answer_round([Choice(prompt=prompts[0], total=4)])
    size = job["batch_size"]
    choices = [Choice(prompt=p, total=job["output_len"]) for p in prompts]
    started = time.perf_counter()
    for i in range(0, len(choices), size):
        loop.run_batch(choices[i : i + size])
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "batch_size": size,
        "requests": [
            {
                "prompt_index": i,
                "completion_tokens": len(c.out),
                "thinking_tokens": c.thinking,
                "waits_inserted": c.waits,
                "forced_end": c.forced,
                "rounds": c.rounds,
            }
            for i, c in enumerate(choices)
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

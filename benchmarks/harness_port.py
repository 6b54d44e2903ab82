"""A port of s1's evaluation harness, the thinking branch of its vLLM generation.

s1's paper numbers come from its lm-evaluation-harness fork (simplescaling/s1,
`eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py`: `generate_until` and the
`*_thinking` branch of `_model_generate`). This module re-implements that branch from reading it,
on plain `vllm.LLM.generate`, keeping its structure: the same generation kwargs, the same
request-level rounds (one full-cap generate call per round, all requests of a batch together),
the same stop handling and strip loop, the same cut to the cap after the rounds, the same
end-of-thinking text and the same `auto` arithmetic. It shares nothing with `budget/`, so s1serve's
controller can be checked against it.

Differences from the harness, none of which changes token ids at batch size 1:
- prompts are token ids already (the harness tokenizes the chat-templated context itself);
- the task's `until` is empty, as in s1's AIME/MATH/GPQA tasks, so the stops are EOS only;
- rejection sampling and data parallelism are not ported;
- `multi_token_stops="text"` lets a multi-token `until_thinking` run the min/ignore path on stop
  strings, where the harness asserts one-token stops (the benchmark needs this on SmolLM2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PortResult:
    """One request's continuation after the prompt, in pieces."""

    opener: list[int]  # thinking_start_tok (empty without the thinking branch)
    thinking: list[int]  # the thinking ids kept: stripped and cut as the harness does
    end: list[int]  # what the harness appended after them (end delimiter, maybe "\nFinal Answer:")
    answer: list[int]  # the answer round's ids
    cut: bool = False  # the joined rounds were longer than the cap and were cut
    final_finish: str | None = None  # finish reason of the last thinking round
    rounds: list[dict[str, Any]] = field(default_factory=list)  # per thinking round: sizes and finish
    thinking_cap: int | None = None  # max_tokens of the thinking rounds ("auto" resolved)
    ignore_str_count: int = 0  # ignore strings appended (before any cut)
    ignore_str_starts: list[int] = field(default_factory=list)  # where each starts in the joined thinking

    @property
    def completion(self) -> list[int]:
        """Everything after the prompt and the opener, as s1serve's completion ids count it."""
        return self.thinking + self.end + self.answer


class HarnessPort:
    """The harness's `VLLM` model class, reduced to generation on token-id prompts."""

    def __init__(self, llm: Any, *, multi_token_stops: str = "assert") -> None:
        self.model = llm
        self.tokenizer = llm.get_tokenizer()
        self.multi_token_stops = multi_token_stops

    # -- the harness's helpers ---------------------------------------------------------------
    def tok_encode(self, string: str | list[str]) -> list[int] | list[list[int]]:
        # add_bos_token defaults to False, so no special tokens are added.
        return self.tokenizer(string, add_special_tokens=False).input_ids

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @staticmethod
    def modify_gen_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
        do_sample = kwargs.pop("do_sample", None)
        if do_sample is False and "temperature" not in kwargs:
            kwargs["temperature"] = 0.0
        kwargs["skip_special_tokens"] = kwargs.get("skip_special_tokens", False)
        kwargs["spaces_between_special_tokens"] = kwargs.get("spaces_between_special_tokens", False)
        return kwargs

    def _generate(self, requests: list[list[int]], sampling_params: Any) -> list[Any]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r)) for r in requests]
        return self.model.generate(prompts, sampling_params, use_tqdm=False)

    # -- generate_until -------------------------------------------------------------------------
    def generate_until(self, contexts: list[list[int]], gen_kwargs: dict[str, Any]) -> list[PortResult]:
        """All requests share the kwargs, as a harness batch does; `until` is the EOS text."""
        kwargs = copy.deepcopy(gen_kwargs)
        until = kwargs.pop("until", None) or []
        eos = self.tokenizer.decode(self.eot_token_id)
        if not until:
            until = [eos]
        else:
            until.append(eos)
        max_gen_toks = kwargs.pop("max_gen_toks")
        return self._model_generate([list(c) for c in contexts], max_gen_toks, until, **kwargs)

    # -- _model_generate, generate=True ------------------------------------------------------------
    def _model_generate(self, requests: list[list[int]], max_tokens: int, stop: list[str], **kwargs: Any):  # noqa: ANN202, C901
        from vllm import SamplingParams

        kwargs = self.modify_gen_kwargs(kwargs)
        n = len(requests)
        results = [PortResult(opener=[], thinking=[], end=[], answer=[]) for _ in range(n)]
        if any("thinking" in k for k in kwargs):
            thinking_start = kwargs.pop("thinking_start", "<|im_start|>think")
            thinking_end = kwargs.pop("thinking_end", "<|im_start|>answer")
            thinking_n_ignore = kwargs.pop("thinking_n_ignore", None)
            thinking_n_ignore_str = kwargs.pop("thinking_n_ignore_str", None)
            if thinking_n_ignore_str is not None:
                thinking_n_ignore_str_tok = self.tok_encode(thinking_n_ignore_str)
            until_thinking = [kwargs.pop("until_thinking", "<|im_start|>")]
            if "until_thinking_2" in kwargs:
                until_thinking.append(kwargs.pop("until_thinking_2"))
            if stop is not None:
                until_thinking.extend(stop)
            thinking_start_tok = self.tok_encode(thinking_start)
            thinking_end_tok = self.tok_encode(thinking_end)
            thinking_end_max = thinking_end + "\nFinal Answer:"
            thinking_end_max_tok = self.tok_encode(thinking_end_max)
            newline_tok = self.tok_encode("\n")
            # `<key>_thinking` overrides `<key>` for the thinking rounds only.
            thinking_params = {k.replace("_thinking", ""): kwargs.pop(k) for k in list(kwargs) if "thinking" in k}
            thinking_params = {**kwargs, **thinking_params}
            if "max_tokens" in thinking_params:
                if thinking_params["max_tokens"] == "auto":
                    # 100 tokens are left for the answer.
                    thinking_params["max_tokens"] = (
                        max_tokens
                        - max(len(r) for r in requests)
                        - len(thinking_start_tok)
                        - len(thinking_end_max_tok)
                        - 100
                    )
                else:
                    thinking_params["max_tokens"] = int(thinking_params["max_tokens"])
            else:
                thinking_params["max_tokens"] = max_tokens
            until_thinking_tok = self.tok_encode(until_thinking)
            if "min_tokens" in thinking_params or thinking_n_ignore is not None:
                if thinking_n_ignore is not None:
                    thinking_params["min_tokens"] = 1
                else:
                    thinking_params["min_tokens"] = int(thinking_params["min_tokens"])
                if all(len(t) == 1 for t in until_thinking_tok):
                    # min_tokens masks stop token ids, not stop strings.
                    thinking_params["stop_token_ids"] = [t[0] for t in until_thinking_tok]
                elif self.multi_token_stops == "text":
                    thinking_params["stop"] = until_thinking
                else:
                    raise AssertionError(
                        "min_tokens_thinking only supports until_thinking tokens that are 1 token long"
                    )
            else:
                thinking_params["stop"] = until_thinking
            requests = [r + thinking_start_tok for r in requests]
            sampling_params = SamplingParams(**thinking_params)
            cap = thinking_params["max_tokens"]
            for res in results:
                res.opener = list(thinking_start_tok)
                res.thinking_cap = cap

            # Per request: (token ids, text, finish reason) of the joined thinking rounds.
            outputs: list[list[Any] | None] = [None] * n
            if thinking_n_ignore is not None:
                rounds = int(thinking_n_ignore) + 1  # the first generation is not an ignore
                requests_tmp = copy.deepcopy(requests)
                indices = list(range(n))
                for i in range(rounds):
                    outs = self._generate(requests_tmp, sampling_params)
                    indices_new, requests_new = [], []
                    for j, o in enumerate(outs):
                        idx = indices[j]
                        out = o.outputs[0]
                        cont = list(out.token_ids)
                        text = out.text
                        results[idx].rounds.append(
                            {"generated": len(cont), "finish_reason": out.finish_reason, "min_tokens": 1}
                        )
                        if out.finish_reason == "length" or i == rounds - 1:
                            if outputs[idx] is None:
                                outputs[idx] = [cont, text, out.finish_reason]
                            else:
                                outputs[idx][0] = outputs[idx][0] + cont
                                outputs[idx][1] += text
                                outputs[idx][2] = out.finish_reason
                        else:
                            # The stop token is in the ids though not in the text: remove it.
                            for toks in until_thinking_tok:
                                if cont[-len(toks) :] == toks:
                                    cont = cont[: -len(toks)]
                            if thinking_n_ignore_str is not None:
                                joined = len(outputs[idx][0]) if outputs[idx] is not None else 0
                                results[idx].ignore_str_starts.append(joined + len(cont))
                                cont += thinking_n_ignore_str_tok
                                text += thinking_n_ignore_str
                                results[idx].ignore_str_count += 1
                            if outputs[idx] is None:
                                outputs[idx] = [cont, text, out.finish_reason]
                            else:
                                outputs[idx][0] = outputs[idx][0] + cont
                                outputs[idx][1] += text
                            requests_new.append(requests_tmp[j] + cont)
                            indices_new.append(idx)
                    requests_tmp, indices = requests_new, indices_new
                for idx in range(n):
                    if len(outputs[idx][0]) > cap:
                        outputs[idx][0] = outputs[idx][0][:cap]
                        results[idx].cut = True
            else:
                outs = self._generate(requests, sampling_params)
                for idx, o in enumerate(outs):
                    out = o.outputs[0]
                    outputs[idx] = [list(out.token_ids), out.text, out.finish_reason]
                    results[idx].rounds.append(
                        {
                            "generated": len(out.token_ids),
                            "finish_reason": out.finish_reason,
                            "min_tokens": thinking_params.get("min_tokens", 0),
                        }
                    )

            for i in range(n):
                cont, text, finish = outputs[i]
                for toks in until_thinking_tok:
                    if cont[-len(toks) :] == toks:
                        cont = cont[: -len(toks)]
                results[i].thinking = cont
                results[i].final_finish = finish
                if finish == "length":
                    # A newline is common enough that it may already be the last token.
                    if text[-1] == "\n" or thinking_start[0] == "\n":
                        results[i].end = list(thinking_end_max_tok)
                    else:
                        results[i].end = list(newline_tok) + list(thinking_end_max_tok)
                else:
                    results[i].end = list(thinking_end_tok)
                requests[i] = requests[i] + cont + results[i].end

        sampling_params = SamplingParams(max_tokens=max_tokens, stop=stop, **kwargs)
        for i, o in enumerate(self._generate(requests, sampling_params)):
            results[i].answer = list(o.outputs[0].token_ids)
        return results

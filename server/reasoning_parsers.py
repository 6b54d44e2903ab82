"""vLLM reasoning parsers for s1serve's thinking formats, registered as a reasoning-parser plugin.

vLLM's serving layer splits thinking from the answer with a reasoning parser; its built-in
ones expect one-token `<think>`/`</think>` delimiters. These parsers work on text, so they
also serve the s1 format (`<|im_start|>think` ... `<|im_start|>answer`, two tokens each) and
models whose delimiters are ordinary text. vLLM imports this file by path (the
`--reasoning-parser-plugin` s1serve sets), in the API server and in the engine process,
where structured outputs ask `is_reasoning_end` when the grammar may start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from budget.formats import S1, THINK, ThinkingFormat
from budget.splitter import partial_suffix
from server.engine.xargs import BUDGET_KEY, FORCED_KEY
from server.vllm_compat import DeltaMessage, ReasoningParser, ReasoningParserManager


def _rfind(ids: Sequence[int], sub: Sequence[int]) -> int:
    """Start of the last occurrence of `sub` in `ids`, or -1."""
    n = len(sub)
    if n == 0:
        return -1
    first = sub[0]
    for k in range(len(ids) - n, -1, -1):
        if ids[k] == first and tuple(ids[k : k + n]) == tuple(sub):
            return k
    return -1


class FormatReasoningParser(ReasoningParser):
    """Thinking is the text before the format's end delimiter.

    The output is thinking when it starts with the start delimiter, when the prompt already
    opened the thinking segment, when the request carries an s1serve budget (the forcing
    engine client opened it), or when the end delimiter appears; otherwise it is all answer.
    Whitespace between the end delimiter and the answer is dropped, streamed or not.
    """

    fmt: ThinkingFormat = THINK

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        encode = getattr(tokenizer, "encode", None)
        self._start_ids: tuple[int, ...] = ()
        self._end_ids: tuple[int, ...] = ()
        if encode is not None:
            self._start_ids = tuple(encode(self.fmt.start, add_special_tokens=False))
            self._end_ids = tuple(encode(self.fmt.end, add_special_tokens=False))
        self._opened = False  # the prompt ends inside a thinking segment
        self._phase: str | None = None  # streaming: None (undecided), reasoning, after_end, done
        self._pos = 0  # streaming: characters of the output consumed

    @property
    def reasoning_start_str(self) -> str:
        return self.fmt.start

    @property
    def reasoning_end_str(self) -> str:
        return self.fmt.end

    # -- token ids (structured outputs, prompt checks) ----------------------------------------------
    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        end = _rfind(input_ids, self._end_ids)
        return end >= 0 and end > _rfind(input_ids, self._start_ids)

    def is_reasoning_end_streaming(self, input_ids: Sequence[int], delta_ids: Iterable[int]) -> bool:
        if self._phase is not None:  # the API server's text-based streaming decided
            return self._phase == "done"
        tail = list(input_ids[-(len(self._end_ids) + 64) :])
        return _rfind(tail, self._end_ids) >= 0

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        end = _rfind(input_ids, self._end_ids)
        return [] if end < 0 else list(input_ids[end + len(self._end_ids) :])

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        end = _rfind(token_ids, self._end_ids)
        return end if end >= 0 else 0

    def adjust_initial_state_from_prompt(self, prompt_token_ids: Sequence[int]) -> None:
        start = _rfind(prompt_token_ids, self._start_ids)
        self._opened = start >= 0 and start + len(self._start_ids) >= len(prompt_token_ids) - 2

    # -- text --------------------------------------------------------------------------------------
    def _starts_thinking(self, request: Any) -> bool:
        xargs = getattr(request, "vllm_xargs", None) or {}
        return self._opened or BUDGET_KEY in xargs or FORCED_KEY in xargs

    def extract_reasoning(self, model_output: str, request: Any) -> tuple[str | None, str | None]:
        fmt = self.fmt
        text = model_output
        lead = text.lstrip()
        if lead.startswith(fmt.start):
            text = lead[len(fmt.start) :].removeprefix(fmt.start_sep)
        elif not (self._starts_thinking(request) or fmt.end in text):
            return None, model_output
        at = text.find(fmt.end)
        if at < 0:
            return text, None
        return text[:at], text[at + len(fmt.end) :].lstrip() or None

    def extract_reasoning_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
    ) -> DeltaMessage | None:
        fmt = self.fmt
        if self._phase is None:
            lead = current_text.lstrip()
            if lead.startswith(fmt.start):
                self._phase = "reasoning"
                self._pos = len(current_text) - len(lead) + len(fmt.start)
            elif self._opened or fmt.end in current_text:
                self._phase = "reasoning"
            elif lead and fmt.start.startswith(lead):
                return None  # may still become the start delimiter
            else:
                self._phase = "done"  # an answer without thinking
                return DeltaMessage(content=current_text) if current_text else None
        if self._phase == "reasoning":
            text = current_text[self._pos :]
            if self._pos and text.startswith(fmt.start_sep) and current_text[: self._pos].endswith(fmt.start):
                self._pos += len(fmt.start_sep)
                text = text[len(fmt.start_sep) :]
            at = text.find(fmt.end)
            if at < 0:
                keep = partial_suffix(text, fmt.end)
                emit = text[: len(text) - keep]
                self._pos += len(emit)
                return DeltaMessage(reasoning=emit) if emit else None
            reasoning = text[:at]
            self._pos += at + len(fmt.end)
            self._phase = "after_end"
            content = self._answer_start(current_text)
            if reasoning or content:
                return DeltaMessage(reasoning=reasoning or None, content=content or None)
            return None
        if self._phase == "after_end":
            content = self._answer_start(current_text)
            return DeltaMessage(content=content) if content else None
        return DeltaMessage(content=delta_text) if delta_text else None

    def _answer_start(self, current_text: str) -> str:
        """Answer text after the delimiter, once past the whitespace that separates them."""
        text = current_text[self._pos :]
        stripped = text.lstrip()
        self._pos = len(current_text)
        if stripped:
            self._phase = "done"
        return stripped


class S1ReasoningParser(FormatReasoningParser):
    fmt = S1


class ThinkReasoningParser(FormatReasoningParser):
    fmt = THINK


PARSER_NAMES = {S1.name: "s1serve-s1", THINK.name: "s1serve-think"}

ReasoningParserManager.register_module(PARSER_NAMES[S1.name], module=S1ReasoningParser)
ReasoningParserManager.register_module(PARSER_NAMES[THINK.name], module=ThinkReasoningParser)

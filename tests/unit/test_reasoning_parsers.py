"""s1serve's reasoning parsers split thinking from the answer on text, streamed or not (no engine).

The tokenizer is a fake (one id per character), enough for the id-based checks.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from server.reasoning_parsers import S1ReasoningParser, ThinkReasoningParser


class CharTokenizer:
    """Fake tokenizer: one id per character."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def get_vocab(self) -> dict[str, int]:
        return {}


FORCED = SimpleNamespace(vllm_xargs={"s1serve_budget": "{}"})
PLAIN = SimpleNamespace(vllm_xargs=None)


def stream(parser, text: str, pieces: list[int]) -> tuple[str, str]:  # noqa: ANN001
    """Feed `text` cut at `pieces` offsets; return the concatenated reasoning and content."""
    reasoning = content = ""
    previous = ""
    cuts = [*pieces, len(text)]
    start = 0
    for end in cuts:
        delta = text[start:end]
        current = previous + delta
        message = parser.extract_reasoning_streaming(previous, current, delta, [], [], [])
        if message is not None:
            reasoning += message.reasoning or ""
            content += message.content or ""
        if parser.is_reasoning_end_streaming([], []):
            # vLLM's parser hands the rest straight to content once reasoning ended.
            rest = text[end:]
            return reasoning, content + rest
        previous, start = current, end
    return reasoning, content


@pytest.mark.parametrize("cuts", [[], [3, 9, 14], list(range(1, 60))])
def test_s1_forced_output_splits_the_same_streamed_or_not(cuts: list[int]) -> None:
    text = "\nlet me think\n<|im_start|>answer\nFinal Answer: 5"
    whole = S1ReasoningParser(CharTokenizer()).extract_reasoning(text, FORCED)
    assert whole == ("\nlet me think\n", "Final Answer: 5")
    parser = S1ReasoningParser(CharTokenizer())
    parser.adjust_initial_state_from_prompt(CharTokenizer().encode("user\n<|im_start|>think"))
    assert stream(parser, text, cuts) == whole


def test_output_that_opens_its_own_thinking_and_one_that_never_thinks() -> None:
    parser = ThinkReasoningParser(CharTokenizer())
    assert parser.extract_reasoning("<think>\nhmm</think>\n\nyes", PLAIN) == ("hmm", "yes")
    assert parser.extract_reasoning("just an answer <b>", PLAIN) == (None, "just an answer <b>")
    assert stream(ThinkReasoningParser(CharTokenizer()), "just an answer", [4]) == ("", "just an answer")


def test_a_partial_delimiter_is_held_back_until_it_resolves() -> None:
    parser = ThinkReasoningParser(CharTokenizer())
    parser.adjust_initial_state_from_prompt(CharTokenizer().encode("q<think>"))
    first = parser.extract_reasoning_streaming("", "abc</th", "abc</th", [], [], [])
    assert first is not None and first.reasoning == "abc"  # "</th" may begin the delimiter
    second = parser.extract_reasoning_streaming("abc</th", "abc</thx", "x", [], [], [])
    assert second is not None and second.reasoning == "</thx"  # it did not


def test_reasoning_end_on_ids_looks_after_the_last_opener() -> None:
    tok = CharTokenizer()
    parser = ThinkReasoningParser(tok)
    assert parser.is_reasoning_end(tok.encode("<think>a</think>b"))
    assert not parser.is_reasoning_end(tok.encode("<think>a</think>b<think>c"))  # a new turn opened it again
    assert parser.extract_content_ids(tok.encode("<think>a</think>bc")) == tok.encode("bc")
    assert parser.count_reasoning_tokens(tok.encode("abc</think>d")) == 3

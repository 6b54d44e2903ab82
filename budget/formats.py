"""Thinking formats: the delimiters that open and close a model's thinking segment.

One definition serves the server (prompting and forcing) and the trainer (rendering
training targets), so a model is always served in the format it was trained in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThinkingFormat:
    """Delimiters of one thinking format.

    `trigger` is what the model emits when it tries to end thinking. For s1 models this is
    the bare `<|im_start|>` token that begins `<|im_start|>answer`; for `<think>` models it is
    the end delimiter itself.
    """

    name: str
    start: str
    end: str
    trigger: str
    start_sep: str
    end_sep: str

    @property
    def prompt_suffix(self) -> str:
        """Text appended to a prompt to open the thinking segment."""
        return self.start + self.start_sep

    def render_assistant(self, thinking: str, answer: str) -> str:
        """The assistant turn a model of this format is trained to write."""
        return f"{self.prompt_suffix}{thinking.strip()}\n{self.end}{self.end_sep}{answer.strip()}"


S1 = ThinkingFormat(
    name="s1",
    start="<|im_start|>think",
    end="<|im_start|>answer",
    trigger="<|im_start|>",
    start_sep="\n",
    end_sep="\n",
)

THINK = ThinkingFormat(
    name="think",
    start="<think>",
    end="</think>",
    trigger="</think>",
    start_sep="\n",
    end_sep="\n\n",
)

FORMATS: dict[str, ThinkingFormat] = {f.name: f for f in (S1, THINK)}

# Model ids of the s1 family: Qwen2.5 vocabularies whose thinking uses `<|im_start|>think`.
_S1_MODEL_NAME = re.compile(r"(^|/)s1(\.\d+)?-", re.IGNORECASE)


def get_format(name: str) -> ThinkingFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown thinking format {name!r}; choose one of {sorted(FORMATS)}") from None


def detect_format(
    *,
    model_name: str,
    chat_template: str | None,
    recorded: str | None = None,
) -> ThinkingFormat:
    """Pick the thinking format of a model.

    Order: a format recorded in the model folder (written by the trainer's export), the s1
    model names, an s1 thinking tag in the chat template, and otherwise `think`: the native
    format of `<think>` models and the choice for chat models with no native thinking.
    """
    if recorded:
        return get_format(recorded)
    if _S1_MODEL_NAME.search(model_name):
        return S1
    template = chat_template or ""
    if "<|im_start|>think" in template:
        return S1
    return THINK


def ends_with_newline(decode: Callable[[list[int]], str], ids: list[int]) -> bool:
    """Whether the decoded tail of `ids` ends in a newline (looks at a few tokens only)."""
    return decode(ids[-4:]).endswith("\n") if ids else False

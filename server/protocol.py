"""OpenAI request models, extended with the thinking-budget fields.

Requests are strict: a field the server does not know or does not support is rejected with
a 400 naming it, rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

NonNegInt = Annotated[StrictInt, Field(ge=0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThinkingBudget(StrictModel):
    """The `thinking_budget` object; every key optional."""

    max_tokens: NonNegInt | None = None
    min_tokens: NonNegInt | None = None
    num_ignore: NonNegInt | None = None
    wait_text: StrictStr | None = None
    final_answer_text: StrictStr | None = None


class AnthropicThinking(StrictModel):
    """Anthropic's `thinking` field: enabled with a token budget, or disabled."""

    type: Literal["enabled", "disabled"]
    budget_tokens: NonNegInt | None = None

    @model_validator(mode="after")
    def _budget_when_enabled(self) -> AnthropicThinking:
        if self.type == "enabled" and self.budget_tokens is None:
            raise ValueError("thinking.budget_tokens is required when thinking.type is 'enabled'")
        return self


class StreamOptions(StrictModel):
    include_usage: StrictBool = False
    continuous_usage_stats: StrictBool = False


class BudgetFields(StrictModel):
    """Thinking-budget fields shared by chat and completions; all optional."""

    thinking_budget: NonNegInt | ThinkingBudget | None = None
    max_thinking_tokens: NonNegInt | None = None
    min_thinking_tokens: NonNegInt | None = None
    thinking_token_budget: NonNegInt | None = None
    thinking: AnthropicThinking | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None


class SamplingFields(BudgetFields):
    """Sampling fields shared by chat and completions."""

    model: StrictStr | None = None
    max_tokens: NonNegInt | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: StrictInt | None = None
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    seed: StrictInt | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] = 1
    stop: StrictStr | list[StrictStr] | None = None
    stop_token_ids: list[StrictInt] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0)] | None = None
    ignore_eos: StrictBool = False
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    return_token_ids: StrictBool = False  # vLLM's extension: token ids of prompt and choices

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class TextPart(StrictModel):
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    # Messages carry extra keys in the wild (name, tool_call_id, ...); they pass to the template.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None

    def template_dict(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=True)
        if isinstance(self.content, list):
            data["content"] = "".join(part.text for part in self.content)
        if data.get("role") == "developer":
            data["role"] = "system"
        return data


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: NonNegInt | None = None
    logprobs: StrictBool = False
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            if self.max_tokens != self.max_completion_tokens:
                raise ValueError("max_tokens and max_completion_tokens disagree; send one of them")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(SamplingFields):
    prompt: StrictStr | Annotated[list[StrictInt], Field(min_length=1)]
    max_tokens: NonNegInt | None = 16  # OpenAI's and vLLM's default for completions
    logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    echo: Literal[False] = False
    suffix: None = None

    @property
    def output_limit(self) -> int | None:
        return self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        return self.logprobs

"""From a validated request to a generation plan, and the request's accounting.

Data flows one way: protocol model -> budget policy -> plan -> engine loop -> response and
metrics. Chat and completions differ only in how they build the prompt and shape output.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from budget.spec import BudgetSpec
from server.engine_loop import SAMPLING_KEYS, GenerationPlan
from server.errors import APIError
from server.metrics import log_request
from server.protocol import SamplingFields
from server.state import ServerState


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def check_model(state: ServerState, model: str | None) -> None:
    if model is not None and model != state.config.served_model_name:
        raise APIError(
            f"model '{model}' does not exist; this server serves '{state.config.served_model_name}'",
            status=404,
            param="model",
            code="model_not_found",
        )


def build_plan(
    state: ServerState,
    request: SamplingFields,
    *,
    request_id: str,
    prompt_ids: list[int],
    opened: bool,
    spec: BudgetSpec | None,
    output_limit: int | None,
    prompt_field: str,
    limit_field: str,
    num_logprobs: int | None,
    split_reasoning: bool,
) -> GenerationPlan:
    """Validate lengths against the context and fix the sampling parameters."""
    if spec is not None and not opened:
        prompt_ids = prompt_ids + list(state.loop.tokens.start_ids)
    context_left = state.max_model_len - len(prompt_ids)
    if context_left <= 0:
        raise APIError(
            f"{prompt_field}: the prompt is {len(prompt_ids)} tokens, the model's context is {state.max_model_len}",
            param=prompt_field,
        )
    if output_limit is not None and output_limit > context_left:
        raise APIError(
            f"{limit_field} ({output_limit}) is larger than the {context_left} tokens left in the "
            f"model's context ({state.max_model_len}) after the {len(prompt_ids)}-token prompt",
            param=limit_field,
        )
    if spec is not None:
        if request.reasoning_effort is not None and spec.max_tokens is not None:
            # The user picked a level, not a number: fit the server's cap into the context.
            spec = dataclasses.replace(spec, max_tokens=min(spec.max_tokens, context_left))
        spec.check_context(context_left)
    params: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        value = getattr(request, key)
        if value is None:
            value = state.default_sampling.get(key)
        if value is not None:
            params[key] = value
    params["seed"] = request.seed
    params["ignore_eos"] = request.ignore_eos
    return GenerationPlan(
        request_id=request_id,
        prompt_ids=prompt_ids,
        base_params=params,
        output_limit=context_left if output_limit is None else output_limit,
        n=request.n,
        spec=spec,
        opened=opened,
        user_stop=request.stop_list,
        user_stop_token_ids=list(request.stop_token_ids or []),
        num_logprobs=num_logprobs,
        split_reasoning=split_reasoning,
    )


def usage_block(plan: GenerationPlan) -> dict[str, Any]:
    completion = sum(r.completion_tokens for r in plan.results)
    return {
        "prompt_tokens": len(plan.prompt_ids),
        "completion_tokens": completion,
        "total_tokens": len(plan.prompt_ids) + completion,
        "completion_tokens_details": {"reasoning_tokens": sum(r.report.thinking_tokens for r in plan.results)},
    }


class RequestTracker:
    """Gauges, metrics and the one log line of a request, from accept to finish."""

    def __init__(self, state: ServerState, key: str, endpoint: str, plan: GenerationPlan) -> None:
        self.state, self.key, self.endpoint, self.plan = state, key, endpoint, plan
        self.start = time.monotonic()
        self._waiting = True
        self._done = False
        state.metrics.tracker_started()

    def generating(self) -> None:
        if self._waiting:
            self._waiting = False
            self.state.metrics.waiting.labels(self.state.metrics.model).dec()

    def finish(self, status: int, error: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        self.generating()
        m = self.state.metrics
        m.running.labels(m.model).dec()
        end = time.monotonic()
        plan = self.plan
        finish_reason = "error" if status >= 400 else "none"
        if plan.results:
            if status == 200:
                m.prompt_tokens.labels(m.model, self.key).inc(len(plan.prompt_ids))
            for r in plan.results:
                first_answer = r.first_answer_at if r.report.answer_tokens else None
                m.observe_choice(
                    r.report,
                    self.key,
                    start=self.start,
                    first_token=r.first_token_at,
                    first_answer=first_answer,
                    end=end,
                    output_tokens=r.completion_tokens,
                )
            reasons = {r.finish_reason or "abort" for r in plan.results}
            finish_reason = "length" if "length" in reasons else sorted(reasons)[0]
        m.observe_request(self.key, self.endpoint, status, finish_reason, end - self.start)
        if self.state.config.log_requests:
            self._log(status, finish_reason, end - self.start, error)

    def _log(self, status: int, finish_reason: str, latency: float, error: str | None) -> None:
        plan = self.plan
        log_request(
            self.state.config.log_json,
            request_id=plan.request_id,
            endpoint=self.endpoint,
            model=self.state.config.served_model_name,
            key=self.key,
            status=status,
            finish_reason=finish_reason,
            latency=latency,
            reports=[r.report for r in plan.results],
            prompt_tokens=len(plan.prompt_ids),
            error=error,
        )

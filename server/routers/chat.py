"""POST /v1/chat/completions."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.budget_policy import resolve_budget
from server.dependencies import accepting, api_key_name, get_state
from server.engine_loop import Delta, TokenLogprob
from server.errors import APIError
from server.protocol import ChatCompletionRequest
from server.routers.streaming import AnswerTrim, ChunkWriter, collect, sse_response, with_token_ids
from server.serving import RequestTracker, build_plan, check_model, new_request_id, usage_block
from server.state import ServerState

router = APIRouter()


def render_prompt(state: ServerState, request: ChatCompletionRequest) -> tuple[list[int], bool]:
    """Apply the model's own chat template; say whether it already opened thinking."""
    messages = [m.template_dict() for m in request.messages]
    try:
        text = state.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **(request.chat_template_kwargs or {})
        )
    except Exception as e:  # template errors are the request's fault (roles, ordering, kwargs)
        raise APIError(f"messages: the chat template rejected the conversation: {e}", param="messages") from e
    opened = text.rstrip().endswith(state.config.thinking_format.start)
    return state.tokenizer.encode(text, add_special_tokens=False), opened


def chat_logprobs(entries: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if entries is None:
        return None
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": list(e.token.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in e.top],
            }
            for e in entries
        ]
    }


@router.post("/v1/chat/completions", dependencies=[Depends(accepting)])
async def create_chat_completion(
    request: ChatCompletionRequest,
    raw_request: Request,
    state: ServerState = Depends(get_state),
    key: str = Depends(api_key_name),
) -> Any:
    check_model(state, request.model)
    spec = resolve_budget(request, state.config.efforts)
    prompt_ids, opened = render_prompt(state, request)
    request_id = new_request_id("chatcmpl")
    plan = build_plan(
        state,
        request,
        request_id=request_id,
        prompt_ids=prompt_ids,
        opened=opened,
        spec=spec,
        output_limit=request.output_limit,
        prompt_field="messages",
        limit_field="max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens",
        num_logprobs=request.num_logprobs,
        split_reasoning=True,
    )
    tracker = RequestTracker(state, key, "chat", plan)
    trim = AnswerTrim(plan.n, active=spec is not None)
    created = int(time.time())
    model = state.config.served_model_name
    deltas = state.loop.stream(plan)

    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        writer = ChunkWriter(request_id, "chat.completion.chunk", created, model)
        started = [False] * plan.n

        def render(d: Delta) -> list[str]:
            events = []
            if not started[d.index]:
                started[d.index] = True
                events.append(
                    writer.choice(
                        {
                            "index": d.index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    )
                )
            if d.final:
                r = plan.results[d.index]
                events.append(
                    writer.choice(
                        {
                            "index": d.index,
                            "delta": {},
                            "logprobs": None,
                            "finish_reason": r.finish_reason,
                            "thinking": r.report.public(),
                        }
                    )
                )
            elif d.segment == "thinking" and d.text:
                events.append(
                    writer.choice(
                        {
                            "index": d.index,
                            "delta": {"reasoning_content": d.text, "reasoning": d.text},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    )
                )
            elif d.segment == "answer":
                text = trim(d.index, d.text)
                if text or d.logprobs:
                    events.append(
                        writer.choice(
                            {
                                "index": d.index,
                                "delta": {"content": text},
                                "logprobs": chat_logprobs(d.logprobs),
                                "finish_reason": None,
                            }
                        )
                    )
            return events

        return sse_response(deltas, tracker, writer, render, include_usage)

    reasoning = [""] * plan.n
    content = [""] * plan.n
    logprobs: list[list[TokenLogprob] | None] = [[] if request.logprobs else None for _ in range(plan.n)]

    def on_delta(d: Delta) -> None:
        if d.segment == "thinking":
            reasoning[d.index] += d.text
        elif d.segment == "answer":
            content[d.index] += trim(d.index, d.text)
            if d.logprobs and logprobs[d.index] is not None:
                logprobs[d.index].extend(d.logprobs)

    if not await collect(deltas, tracker, raw_request, on_delta):
        return Response(status_code=499)
    choices = []
    for r in plan.results:
        message: dict[str, Any] = {"role": "assistant", "content": content[r.index]}
        if reasoning[r.index] or r.report.thinking_tokens or spec is not None:
            message["reasoning_content"] = reasoning[r.index]
            message["reasoning"] = reasoning[r.index]
        choices.append(
            {
                "index": r.index,
                "message": message,
                "logprobs": chat_logprobs(logprobs[r.index]),
                "finish_reason": r.finish_reason,
                "thinking": r.report.public(),
            }
        )
    body = {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_block(plan),
    }
    return JSONResponse(with_token_ids(body, plan, request.return_token_ids))

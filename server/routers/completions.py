"""POST /v1/completions: raw text in, raw text out.

With a budget, `text` is the whole continuation as the model saw it: thinking, delimiters,
inserted text and answer. The `thinking` report per choice says how the budget applied.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.budget_policy import resolve_budget
from server.dependencies import accepting, api_key_name, get_state
from server.engine_loop import Delta, TokenLogprob
from server.protocol import CompletionRequest
from server.routers.streaming import ChunkWriter, collect, sse_response, with_token_ids
from server.serving import RequestTracker, build_plan, check_model, new_request_id, usage_block
from server.state import ServerState

router = APIRouter()


def completion_logprobs(entries: list[TokenLogprob] | None, offset: int) -> dict[str, Any] | None:
    if entries is None:
        return None
    offsets, at = [], offset
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [dict(e.top) for e in entries],
        "text_offset": offsets,
    }


@router.post("/v1/completions", dependencies=[Depends(accepting)])
async def create_completion(
    request: CompletionRequest,
    raw_request: Request,
    state: ServerState = Depends(get_state),
    key: str = Depends(api_key_name),
) -> Any:
    check_model(state, request.model)
    spec = resolve_budget(request, state.config.efforts)
    if isinstance(request.prompt, str):
        prompt_ids = state.tokenizer.encode(request.prompt)
        opened = request.prompt.rstrip().endswith(state.config.thinking_format.start)
    else:
        prompt_ids = list(request.prompt)
        opened = False
    request_id = new_request_id("cmpl")
    plan = build_plan(
        state,
        request,
        request_id=request_id,
        prompt_ids=prompt_ids,
        opened=opened,
        spec=spec,
        output_limit=request.output_limit,
        prompt_field="prompt",
        limit_field="max_tokens",
        num_logprobs=request.num_logprobs,
        split_reasoning=False,
    )
    tracker = RequestTracker(state, key, "completions", plan)
    created = int(time.time())
    model = state.config.served_model_name
    deltas = state.loop.stream(plan)
    offsets = [0] * plan.n

    def shaped(d: Delta) -> tuple[str, dict[str, Any] | None]:
        lp = completion_logprobs(d.logprobs, offsets[d.index])
        offsets[d.index] += len(d.text)
        return d.text, lp

    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        writer = ChunkWriter(request_id, "text_completion", created, model)

        def render(d: Delta) -> list[str]:
            if d.final:
                r = plan.results[d.index]
                return [
                    writer.choice(
                        {
                            "index": d.index,
                            "text": "",
                            "logprobs": None,
                            "finish_reason": r.finish_reason,
                            "thinking": r.report.public(),
                        }
                    )
                ]
            text, lp = shaped(d)
            if not text and lp is None:
                return []
            return [writer.choice({"index": d.index, "text": text, "logprobs": lp, "finish_reason": None})]

        return sse_response(deltas, tracker, writer, render, include_usage)

    texts = [""] * plan.n
    merged: list[dict[str, Any] | None] = [None] * plan.n

    def on_delta(d: Delta) -> None:
        text, lp = shaped(d)
        texts[d.index] += text
        if lp is not None:
            if merged[d.index] is None:
                merged[d.index] = lp
            else:
                for k in lp:
                    merged[d.index][k].extend(lp[k])

    if not await collect(deltas, tracker, raw_request, on_delta):
        return Response(status_code=499)
    if request.num_logprobs is not None:
        merged = [m or {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []} for m in merged]
    choices = [
        {
            "index": r.index,
            "text": texts[r.index],
            "logprobs": merged[r.index],
            "finish_reason": r.finish_reason,
            "thinking": r.report.public(),
        }
        for r in plan.results
    ]
    body = {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_block(plan),
    }
    return JSONResponse(with_token_ids(body, plan, request.return_token_ids))

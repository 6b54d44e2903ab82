"""Models, health, readiness, version and metrics endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from server import __version__
from server.dependencies import api_key_name, get_state
from server.state import ServerState

router = APIRouter()


@router.get("/v1/models", dependencies=[Depends(api_key_name)])
async def list_models(state: ServerState = Depends(get_state)) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": state.config.served_model_name,
                "object": "model",
                "created": state.created,
                "owned_by": "s1serve",
                "root": state.config.model_path,
                "max_model_len": state.max_model_len,
                "thinking_format": state.config.thinking_format.name,
            }
        ],
    }


@router.get("/health")
async def health(state: ServerState = Depends(get_state)) -> Response:
    """Liveness: 503 once the engine has died, so an orchestrator restarts the process."""
    if state.engine.errored:
        return JSONResponse({"status": "engine_dead"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(state: ServerState = Depends(get_state)) -> Response:
    """Readiness: 503 while draining or once the engine died, so load balancers stop sending work.

    Before the engine is up uvicorn does not accept connections at all (the lifespan starts it).
    """
    if state.draining or state.engine.errored:
        return JSONResponse({"status": "draining" if state.draining else "not_ready"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/version")
async def version() -> dict[str, str]:
    import vllm

    return {"version": __version__, "vllm": vllm.__version__}


@router.get("/metrics")
async def metrics(request: Request, state: ServerState = Depends(get_state)) -> Response:
    """s1serve's series plus vLLM's own (its collectors live in the default registry)."""
    accept = request.headers.get("accept", "")
    registries = (state.metrics.registry, REGISTRY)
    if "application/openmetrics-text" in accept:
        # vLLM's names hold a colon, valid in OpenMetrics; the default escaping would rename their samples only.
        body = b"".join(generate_openmetrics(r, escaping=ALLOWUTF8).removesuffix(b"# EOF\n") for r in registries)
        body += b"# EOF\n"
        return Response(body, media_type=OPENMETRICS_TYPE)
    return Response(b"".join(generate_latest(r) for r in registries), media_type=CONTENT_TYPE_LATEST)

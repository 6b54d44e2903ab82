"""The app factory: a FastAPI app around one in-process vLLM AsyncLLM engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from budget.controller import FormatTokens
from budget.formats import ThinkingFormat, detect_format, get_format
from server import __version__, errors
from server.engine_loop import Codec, EngineLoop
from server.metrics import Metrics, RequestCounter
from server.routers import chat, completions, system
from server.state import ServerConfig, ServerState

logger = logging.getLogger("s1serve")


def recorded_format(model_path: str) -> str | None:
    """The thinking format written into a model folder by s1serve's trainer export."""
    marker = Path(model_path) / "s1serve.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("thinking_format")
    return None


def resolve_format(flag: str | None, model_path: str, tokenizer: Any) -> ThinkingFormat:
    if flag:
        return get_format(flag)
    return detect_format(
        model_name=model_path,
        chat_template=getattr(tokenizer, "chat_template", None),
        recorded=recorded_format(model_path),
    )


def build_state(engine: Any, config: ServerConfig) -> ServerState:
    tokenizer = engine.get_tokenizer()
    tokens = FormatTokens.build(config.thinking_format, Codec(tokenizer).encode)
    model_config = engine.model_config
    return ServerState(
        config=config,
        engine=engine,
        tokenizer=tokenizer,
        loop=EngineLoop(engine, tokenizer, tokens),
        metrics=Metrics(config.served_model_name),
        max_model_len=model_config.max_model_len,
        default_sampling=model_config.get_diff_sampling_param(),
    )


def create_app(engine_args: Any, config_overrides: dict[str, Any], thinking_format: str | None) -> FastAPI:
    """Build the app; the engine starts in the lifespan, inside uvicorn's event loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from vllm.v1.engine.async_llm import AsyncLLM

        engine = AsyncLLM.from_engine_args(engine_args)
        try:
            model_path = engine.model_config.model
            fmt = resolve_format(thinking_format, model_path, engine.get_tokenizer())
            served = engine.model_config.served_model_name or model_path
            config = ServerConfig(
                served_model_name=served, model_path=model_path, thinking_format=fmt, **config_overrides
            )
            app.state.s1 = build_state(engine, config)
            logger.info("serving %s (thinking format %s, context %d)", served, fmt.name, app.state.s1.max_model_len)
            stats = asyncio.create_task(_log_stats(engine))
            yield
            stats.cancel()
        finally:
            engine.shutdown()

    app = FastAPI(title="s1serve", version=__version__, lifespan=lifespan)
    errors.install(app)
    app.add_middleware(RequestCounter)  # counts and logs requests refused before generation
    app.include_router(chat.router)
    app.include_router(completions.router)
    app.include_router(system.router)
    return app


async def _log_stats(engine: Any, every: float = 10.0) -> None:
    """vLLM's periodic engine log lines (throughput, KV usage), as its own server prints them."""
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            await engine.do_log_stats()

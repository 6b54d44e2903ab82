"""The server: vLLM's own API app around an engine client that forces thinking budgets.

The start-up order follows vLLM's API server: the listening port is bound first (a busy port
fails in seconds, before any weights load), then the engine starts, then vLLM's app is built
on the forcing engine client, with s1serve's HTTP layer (keys, drain gate, request
translation, reports, metrics) in front and its /ready and /version routes added.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from budget.controller import FormatTokens
from budget.formats import ThinkingFormat, detect_format, get_format
from server import __version__
from server.budget_fields import EffortBudgets
from server.budget_middleware import HttpConfig, HttpLayer
from server.forcing_client import Codec, ForcingEngineClient
from server.limits import LimitSettings

logger = logging.getLogger("s1serve")

REASONING_PLUGIN = str(Path(__file__).with_name("reasoning_parsers.py"))
MIDDLEWARE = "server.budget_middleware.BudgetMiddleware"  # vLLM adds --middleware entries last, outermost last
LIMITS_MIDDLEWARE = "server.limits.LimitsMiddleware"  # outside BudgetMiddleware: limits apply before it reads a body


@dataclass
class S1Options:
    """s1serve's own settings, next to vLLM's parsed flags."""

    thinking_format: str | None = None
    efforts: EffortBudgets = field(default_factory=EffortBudgets)
    api_keys: dict[str, str] = field(default_factory=dict)  # secret -> name
    drain_timeout: float = 30.0
    log_json: bool = False
    log_requests: bool = True
    protect_metrics: bool = False
    budget_profile: str = "exact"
    forcing_path: str = "auto"
    limits: LimitSettings = field(default_factory=LimitSettings)


def enable_logs() -> None:
    """s1serve's loggers write to stderr whatever vLLM's logging set-up did.

    vLLM configures logging with `dictConfig`, which disables loggers that already exist (ours
    are created at import): without this the request log lines would be dropped silently.
    """
    root = logging.getLogger("s1serve")
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(child, logging.Logger) and (name == "s1serve" or name.startswith("s1serve.")):
            child.disabled = False
    root.disabled = False
    root.setLevel(logging.INFO)
    if not any(getattr(h, "_s1serve", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._s1serve = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False


def recorded_format(model_path: str) -> str | None:
    """The thinking format written into a model folder by s1serve's trainer export."""
    marker = Path(model_path) / "s1serve.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("thinking_format")
    return None


def resolve_format(flag: str | None, model_path: str, chat_template: str | None) -> ThinkingFormat:
    if flag:
        return get_format(flag)
    return detect_format(model_name=model_path, chat_template=chat_template, recorded=recorded_format(model_path))


def _chat_template(args: argparse.Namespace) -> str | None:
    """The model's chat template, read before the engine starts (format detection needs it)."""
    folder = Path(args.tokenizer or args.model)
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    jinja = folder / "chat_template.jinja"
    return jinja.read_text() if jinja.is_file() else None


def choose_reasoning_parser(args: argparse.Namespace, fmt: ThinkingFormat) -> None:
    """s1serve's text-based parser for the format, unless the user named one."""
    from server.reasoning_parsers import PARSER_NAMES

    if not args.reasoning_parser:
        args.reasoning_parser = PARSER_NAMES[fmt.name]
        args.structured_outputs_config.reasoning_parser = args.reasoning_parser
    if not args.reasoning_parser_plugin:
        args.reasoning_parser_plugin = REASONING_PLUGIN
        args.structured_outputs_config.reasoning_parser_plugin = REASONING_PLUGIN


def _special_delimiters(client: ForcingEngineClient) -> bool:
    """Whether the format's delimiters hold tokens a default detokenizer would drop."""
    special = set(getattr(client.codec.tokenizer, "all_special_ids", []))
    return any(i in special for i in (*client.tokens.start_ids, *client.tokens.end_ids))


def _template_opens_thinking(client: ForcingEngineClient) -> bool:
    """Whether the chat template's generation prompt already ends with the thinking opener."""
    try:
        text = client.codec.tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # noqa: BLE001 - no usable template: the server appends the opener
        return False
    return str(text).rstrip().endswith(client.tokens.fmt.start)


def install(app: FastAPI, client: ForcingEngineClient, options: S1Options, served: str) -> None:
    """s1serve's routes and HTTP layer on vLLM's app."""
    from prometheus_client import REGISTRY

    from server.metrics import Metrics

    metrics = Metrics(served, registry=REGISTRY)
    config = HttpConfig(
        served_model_name=served,
        efforts=options.efforts,
        api_keys=options.api_keys,
        protect_metrics=options.protect_metrics,
        log_requests=options.log_requests,
        log_json=options.log_json,
        opener_tokens=0 if _template_opens_thinking(client) else len(client.tokens.start_ids),
    )
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in ("/version", "/metrics")]

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Response:
        """s1serve's and vLLM's series; OpenMetrics when the scraper asks for it (Prometheus does)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.openmetrics.exposition import ALLOWUTF8
        from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
        from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
        from vllm.v1.metrics.prometheus import get_prometheus_registry

        registry = get_prometheus_registry()
        if "application/openmetrics-text" in request.headers.get("accept", ""):
            # vLLM's names hold a colon, valid in OpenMetrics; the default escaping would rename them.
            return Response(generate_openmetrics(registry, escaping=ALLOWUTF8), media_type=OPENMETRICS_TYPE)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: 503 while draining or once the engine died, so load balancers stop sending work."""
        if client.draining or client.errored:
            return JSONResponse({"status": "draining" if client.draining else "not_ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/version")
    async def version(request: Request) -> dict[str, Any]:
        import vllm

        return {
            "version": __version__,
            "vllm": vllm.__version__,
            "thinking_format": client.tokens.fmt.name,
            "forcing": client.forcing_path,
        }

    app.state.s1_http = HttpLayer(config=config, metrics=metrics, gate=client)


def install_limits(app: FastAPI, client: ForcingEngineClient, options: S1Options) -> Any:
    """The limits layer on the app's state, its watcher (engine death, drain deadline), OpenAPI notes."""
    import dataclasses

    from server.limits import LimitsLayer, document_openapi, watch

    settings = dataclasses.replace(
        options.limits,
        max_model_len=client.max_model_len,
        vocab_size=client.model_config.get_vocab_size(),
        max_chars_per_token=int(getattr(client.codec.tokenizer, "max_chars_per_token", 0) or 0),
        drain_timeout=options.drain_timeout,
    )
    layer = LimitsLayer(settings=settings, engine=client)
    scheduler = client.vllm_config.scheduler_config
    if scheduler.max_num_queued_reqs is not None or scheduler.max_num_queued_tokens is not None:
        # vLLM's queue limits (--max-num-queued-reqs/-tokens) count engine requests, and each
        # forced round is one: AsyncLLM checks them again for every request it adds. A forced
        # request is admitted by the serving layer's check, made before its response starts;
        # its rounds skip the per-request one, so it is never refused between rounds.
        check = client._engine.check_admission

        def check_unless_round(n: int = 1, request_id: str | None = None) -> None:
            if request_id is not None and client.owns(request_id):
                return
            check(n, request_id)

        client._engine.check_admission = check_unless_round
    app.state.s1_limits = layer
    app.state.s1_limits_watch = asyncio.get_running_loop().create_task(watch(layer, app.state))
    document_openapi(app, bool(options.api_keys), settings)
    return layer


async def run_server(args: argparse.Namespace, options: S1Options) -> None:
    """vLLM's single-process API server, with the forcing engine client in the engine's place."""
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.api_server.entry import build_async_engine_client
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.launcher import serve_http, setup_server
    from vllm.entrypoints.launchers.utils.server_utils import get_uvicorn_log_config

    fmt = resolve_format(options.thinking_format, args.model, _chat_template(args))
    choose_reasoning_parser(args, fmt)
    args.middleware = [*args.middleware, MIDDLEWARE, LIMITS_MIDDLEWARE]
    try:
        listen_address, sock = setup_server(args, reuse_port=False)
    except OSError as e:
        why = f"port {args.port} is in use" if e.errno == errno.EADDRINUSE else e.strerror
        raise SystemExit(f"s1serve: cannot listen on {args.host or '*'}:{args.port}: {why}") from None
    async with build_async_engine_client(args) as engine:
        tokenizer = engine.renderer.tokenizer
        codec = Codec(tokenizer)
        client = ForcingEngineClient(
            engine,
            FormatTokens.build(fmt, codec.encode),
            codec,
            drain_timeout=options.drain_timeout,
            default_profile=options.budget_profile,
        )
        client.keep_special_tokens = _special_delimiters(client)
        try:
            why = await client.choose_forcing_path(options.forcing_path)
        except ValueError as e:
            raise SystemExit(f"s1serve: {e}") from None
        supported_tasks = await engine.get_supported_tasks()
        app = build_app(args, supported_tasks, engine.model_config)
        served = (args.served_model_name or [args.model])[0]
        install(app, client, options, served)
        await init_app_state(client, app.state, args, supported_tasks)
        enable_logs()
        limits = install_limits(app, client, options)
        logger.info(
            "serving %s: thinking format %s, reasoning parser %s, forcing by %s (%s), context %d",
            served,
            fmt.name,
            args.reasoning_parser,
            client.forcing_path,
            why,
            client.max_model_len,
        )
        kwargs: dict[str, Any] = {}
        log_config = get_uvicorn_log_config(args)
        if log_config is not None:
            kwargs["log_config"] = log_config
        shutdown_task = await serve_http(
            app,
            sock=sock,
            enable_ssl_refresh=args.enable_ssl_refresh,
            host=args.host,
            port=args.port,
            log_level=args.uvicorn_log_level,
            access_log=not args.disable_uvicorn_access_log,
            timeout_keep_alive=5,
            ssl_keyfile=args.ssl_keyfile,
            ssl_certfile=args.ssl_certfile,
            ssl_ca_certs=args.ssl_ca_certs,
            ssl_cert_reqs=args.ssl_cert_reqs,
            ssl_ciphers=args.ssl_ciphers,
            h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
            h11_max_header_count=args.h11_max_header_count,
            **kwargs,
        )
        limits.died()  # read while the engine client is still open
    try:
        await shutdown_task
    finally:
        sock.close()
        await asyncio.sleep(0)
    if limits.died():
        raise SystemExit("s1serve: the engine stopped unexpectedly")  # exit status 1 for the supervisor

"""The server: vLLM's own API app around an engine client that forces thinking budgets.

The start-up order follows vLLM's API server: the listening port is bound first (a busy port
fails in seconds, before any weights load), then the engine starts, then vLLM's app is built
on the forcing engine client, with s1serve's gateway (limits, keys, drain gate, budget
translation, admission, reports, metrics) in front and its /ready and /version routes added.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from budget.early_exit import EarlyExit
from budget.formats import ThinkingFormat, detect_format, get_format
from budget.rounds import FormatTokens
from server import __version__
from server.engine.client import ForcingEngineClient
from server.engine.rounds import Codec
from server.http.admission import LimitSettings
from server.http.budget_fields import EffortBudgets
from server.http.gateway import GatewayState, HttpConfig
from server.http.lifecycle import Lifecycle, watch
from server.http.metrics import Metrics
from server.http.openapi import document_openapi
from server.http.routes import unserved_routes

logger = logging.getLogger("s1serve")

REASONING_PLUGIN = str(Path(__file__).with_name("reasoning_parsers.py"))
GATEWAY = "server.http.gateway.Gateway"  # vLLM adds --middleware entries last: outermost


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
    early_exit: EarlyExit | None = None  # --early-exit: the default for budgets naming none
    forcing_path: str = "auto"
    limits: LimitSettings = field(default_factory=LimitSettings)
    admin_routes: bool = False  # serve vLLM's administrative routes (behind a key when keys are set)
    uncovered_routes: tuple[str, ...] = ()  # generating vLLM routes to serve outside the gateway anyway


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


def install(app: FastAPI, client: ForcingEngineClient, options: S1Options, served: str) -> GatewayState:
    """s1serve's routes on vLLM's app, and the gateway's state (its watcher started)."""
    from prometheus_client import REGISTRY

    from server import vllm_compat

    vllm_compat.remove_routes(app, {"/version", "/metrics"})
    left_out = unserved_routes(
        ((getattr(r, "path", ""), set(getattr(r, "methods", None) or ())) for r in app.router.routes),
        admin=options.admin_routes,
        uncovered=options.uncovered_routes,
    )
    vllm_compat.remove_routes(app, set(left_out))
    for path, why in sorted(left_out.items()):
        logger.info("not serving %s: %s", path, why)

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Response:
        """s1serve's and vLLM's series; OpenMetrics when the scraper asks for it (Prometheus does)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.openmetrics.exposition import ALLOWUTF8
        from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
        from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

        registry = vllm_compat.get_prometheus_registry()
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
        return {
            "version": __version__,
            "vllm": vllm_compat.VLLM_VERSION,
            "thinking_format": client.tokens.fmt.name,
            "forcing": client.forcing_path,
            "forcing_reason": client.forcing_reason,
        }

    config = HttpConfig(
        served_model_name=served,
        efforts=options.efforts,
        api_keys=options.api_keys,
        protect_metrics=options.protect_metrics,
        log_requests=options.log_requests,
        log_json=options.log_json,
        opener_tokens=0 if _template_opens_thinking(client) else len(client.tokens.start_ids),
        budget_profile=options.budget_profile,
        early_exit=options.early_exit,
    )
    limits = dataclasses.replace(
        options.limits,
        max_model_len=client.max_model_len,
        vocab_size=client.model_config.get_vocab_size(),
        max_chars_per_token=int(getattr(client.codec.tokenizer, "max_chars_per_token", 0) or 0),
        drain_timeout=options.drain_timeout,
    )
    lifecycle = Lifecycle(engine=client, drain_timeout=options.drain_timeout)
    state = GatewayState(config=config, limits=limits, metrics=Metrics(served, registry=REGISTRY), lifecycle=lifecycle)
    if vllm_compat.queue_limits_set(client):
        client.exempt_rounds_from_queue_check()
    app.state.s1_gateway = state
    app.state.s1_watch = asyncio.get_running_loop().create_task(watch(lifecycle, app.state))
    return state


async def run_server(args: argparse.Namespace, options: S1Options) -> None:
    """vLLM's single-process API server, with the forcing engine client in the engine's place."""
    from server.vllm_compat import (
        build_app,
        build_async_engine_client,
        get_uvicorn_log_config,
        init_app_state,
        serve_http,
        setup_server,
    )

    fmt = resolve_format(options.thinking_format, args.model, _chat_template(args))
    choose_reasoning_parser(args, fmt)
    args.middleware = [*args.middleware, GATEWAY]
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
        state = install(app, client, options, served)
        await init_app_state(client, app.state, args, supported_tasks)
        enable_logs()
        document_openapi(app, bool(options.api_keys), state.limits, options.protect_metrics)
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
        state.lifecycle.died()  # read while the engine client is still open
    try:
        await shutdown_task
    finally:
        sock.close()
        await asyncio.sleep(0)
    if state.lifecycle.died():
        raise SystemExit("s1serve: the engine stopped unexpectedly")  # exit status 1 for the supervisor

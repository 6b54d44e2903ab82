"""The `s1serve` command: `serve` runs the API server, `train` launches fine-tuning."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from server.budget_policy import EffortBudgets

CPU_MEMORY_UTILIZATION = 0.3  # the CPU backend reserves this share of a NUMA node for KV cache
CPU_BLOCK_SIZE = 32


def parse_api_keys(values: list[str]) -> dict[str, str]:
    """`--api-key NAME=SECRET` (or a bare SECRET, named 'default') -> {secret: name}."""
    keys: dict[str, str] = {}
    for value in values:
        name, sep, secret = value.partition("=")
        if not sep:
            name, secret = "default", value
        if not secret or not name:
            raise SystemExit(f"--api-key: empty name or secret in {value!r}")
        keys[secret] = name
    return keys


def serve_parser() -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="s1serve serve", description="Serve a reasoning model with budget forcing.")
    group = parser.add_argument_group("s1serve")
    group.add_argument("--host", default="0.0.0.0")
    group.add_argument("--port", type=int, default=8000)
    group.add_argument(
        "--thinking-format",
        choices=["s1", "think"],
        default=None,
        help="override the thinking format detected from the model",
    )
    group.add_argument(
        "--reasoning-effort-budgets",
        default="",
        help="thinking caps for reasoning_effort, e.g. low=1024,medium=4096,high=16384",
    )
    group.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="NAME=SECRET or SECRET; repeatable; also read from S1SERVE_API_KEY",
    )
    group.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to finish in-flight requests after SIGTERM"
    )
    group.add_argument("--log-json", action="store_true", help="request log lines as JSON")
    group.add_argument("--disable-request-log", action="store_true")
    AsyncEngineArgs.add_cli_args(parser)
    return parser


def engine_args_from(args: argparse.Namespace, explicit: set[str]) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.platforms import current_platform

    from server.default_model import SERVED_NAME, ensure_default_model

    if "model" not in explicit:
        args.model = str(ensure_default_model())
        if not args.served_model_name:
            args.served_model_name = [SERVED_NAME]
    if current_platform.is_cpu():
        if "gpu_memory_utilization" not in explicit:
            args.gpu_memory_utilization = CPU_MEMORY_UTILIZATION
        if "enforce_eager" not in explicit:
            # Inductor compilation of the CPU backend takes many minutes at start-up.
            args.enforce_eager = True
        if "dtype" not in explicit and not _cpu_has_bf16():
            # Without AVX-512 BF16 / AMX, bf16 matmuls are emulated and about 3x slower than fp32.
            args.dtype = "float32"
        if "block_size" not in explicit:
            # The CPU backend's default 128-token blocks leave most of a resubmitted thinking
            # round outside the prefix cache; 32-token blocks let forcing reuse it.
            args.block_size = CPU_BLOCK_SIZE
    return AsyncEngineArgs.from_cli_args(args)


def _cpu_has_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The option dests the user actually passed (defaults we may change are the others).

    Parses `argv` a second time with every default suppressed, so the parser itself decides
    what was given: `--block_size=16`, `--config FILE` and `--flag value` all count.
    """
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default


def serve(argv: list[str]) -> int:
    import uvicorn

    from server.app import create_app
    from server.drain import DrainingServer

    parser = serve_parser()
    args = parser.parse_args(argv)
    log_level = str(getattr(args, "log_level", "info")).lower()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    keys = list(args.api_key)
    if not keys and os.environ.get("S1SERVE_API_KEY"):
        keys = [os.environ["S1SERVE_API_KEY"]]
    try:
        efforts = EffortBudgets.parse(args.reasoning_effort_budgets)
    except ValueError as e:
        parser.error(str(e))
    engine_args = engine_args_from(args, explicit_dests(parser, argv))
    overrides = {
        "efforts": efforts,
        "api_keys": parse_api_keys(keys),
        "drain_timeout": args.drain_timeout,
        "log_json": args.log_json,
        "log_requests": not args.disable_request_log,
    }
    app = create_app(engine_args, overrides, args.thinking_format)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(args.drain_timeout),
        access_log=False,
    )
    DrainingServer(config).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: s1serve {serve,train,bench} [options]\n  serve  run the OpenAI-compatible server\n"
            "  train  fine-tune with FSDP2 (torchrun)\n  bench  compare with vLLM's server and the s1 reference loop"
        )
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return serve(rest)
    if command == "train":
        from training.launch import main as train_main

        return train_main(rest)
    if command == "bench":
        from benchmarks.run import main as bench_main

        return bench_main(rest)
    print(f"s1serve: unknown command {command!r}; use serve, train or bench", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

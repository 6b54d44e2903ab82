"""`s1serve serve`: the API server's flags, their help, and the start-up.

The `s1serve` command itself (serve, train, bench, eval) is `s1serve/cli.py`; this module is
its `serve`, and `python -m server.cli serve ...` runs the same.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Iterable
from typing import Any

CPU_MEMORY_UTILIZATION = 0.3  # the CPU backend reserves this share of a NUMA node for KV cache
CPU_BLOCK_SIZE = 32
S1SERVE_GROUP = "s1serve"
LIMITS_GROUP = "s1serve limits"


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


def read_api_key_file(path: str) -> list[str]:
    """`--api-key-file`: one NAME=SECRET or SECRET a line; blank lines and # comments skipped.

    Keeps secrets off the command line, where `ps` and shell history would show them.
    """
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115, PTH123 - read once, at start
    except OSError as e:
        raise SystemExit(f"--api-key-file: cannot read {path}: {e.strerror}") from None
    keys = [line.strip() for line in text.splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise SystemExit(f"--api-key-file: no keys in {path}")
    return keys


SERVE_DESCRIPTION = "Serve a reasoning model with budget forcing, on vLLM's OpenAI, Responses and Anthropic APIs."


def add_s1serve_flags(parser: argparse.ArgumentParser) -> None:
    """s1serve's own flag groups, on any argparse parser. Imports nothing heavy (no vLLM, no torch)."""
    group = parser.add_argument_group(S1SERVE_GROUP, "Budget forcing, drain and request logging.")
    group.add_argument(
        "--thinking-format",
        choices=["s1", "think"],
        default=None,
        help="thinking delimiters of the model (default: detected from the model folder, name and chat template)",
    )
    group.add_argument(
        "--reasoning-effort-budgets",
        default="",
        help="thinking caps for reasoning_effort levels, e.g. low=1024,medium=4096,high=16384,max=none "
        "(defaults: minimal=256 low=1024 medium=4096 high=16384 xhigh=32768 max=none; none disables thinking)",
    )
    group.add_argument(
        "--enable-admin-routes",
        action="store_true",
        help="serve vLLM's administrative routes (/scale_elastic_ep, /pause, /sleep, ...; behind a key when keys "
        "are set); off by default",
    )
    group.add_argument(
        "--serve-uncovered-route",
        action="append",
        default=[],
        metavar="PATH",
        help="serve a vLLM route that generates outside s1serve's admission, drain gate, budgets and metrics "
        "(/v1/chat/completions/batch, /generative_scoring, /inference/v1/generate, /v1/systemone, /v1/decisions); "
        "repeatable; off by default",
    )
    group.add_argument(
        "--allow-untested-vllm",
        action="store_true",
        help="start on a vLLM release s1serve was not checked against (also S1SERVE_ALLOW_UNTESTED_VLLM=1)",
    )
    group.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to finish in-flight requests after SIGTERM (new requests get 503 meanwhile)",
    )
    group.add_argument(
        "--budget-profile",
        choices=["exact", "harness"],
        default="exact",
        help="forcing semantics when a request names none: exact caps, or token-for-token s1 harness parity "
        "(see docs/fidelity.md)",
    )
    group.add_argument(
        "--early-exit",
        nargs="?",
        const="",
        default=None,
        metavar="EVERY[,AGREE]",
        help="end the thinking once AGREE answer probes in a row (default 3), one every EVERY thinking tokens "
        "(default 256), give the same answer; applies to requests whose budget names no early_exit (off unless "
        "given; see docs/api.md)",
    )
    group.add_argument(
        "--forcing-path",
        choices=["auto", "sessions", "resubmission"],
        default="auto",
        help="how a forced choice runs in the engine: one streaming-input session (needs a one-token end "
        "trigger), or one engine request per round; auto picks sessions when possible (see docs/design.md)",
    )
    group.add_argument("--log-json", action="store_true", help="write the per-request log line as JSON")
    group.add_argument("--disable-request-log", action="store_true", help="no per-request log line")
    group.add_argument(
        "--protect-metrics", action="store_true", help="/metrics needs an API key too (when keys are configured)"
    )
    limits = parser.add_argument_group(LIMITS_GROUP, "Request limits and admission (see docs/limits.md).")
    limits.add_argument(
        "--api-key-file",
        default=None,
        help="read API keys from this file, one NAME=SECRET or SECRET a line (keeps them off the command line)",
    )
    limits.add_argument(
        "--max-request-body-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="larger request bodies get 413 before they are parsed (default 16 MiB; 0: no limit)",
    )
    limits.add_argument(
        "--max-request-header-bytes",
        type=int,
        default=64 * 1024,
        help="requests with more header bytes get 431 (default 64 KiB; 0: no limit)",
    )
    limits.add_argument(
        "--max-queued-requests",
        type=int,
        default=0,
        help="generation requests in flight before new ones get 429 with Retry-After "
        "(default 0: vLLM's --max-num-queued-reqs when given, else no limit)",
    )
    limits.add_argument(
        "--max-queued-tokens",
        type=int,
        default=0,
        help="prompt + output tokens (estimated) in flight before new requests get 429 (default 0: no limit)",
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Formats as vLLM's `SortedHelpFormatter` does (flags sorted, defaults shown), without importing vLLM."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        lines = re.sub(r"(?<!\n)\n(?!\n)(?!\s*(-|\*|\+|\d+\.))\s*", " ", text).splitlines()
        return [wrapped for line in lines for wrapped in textwrap.wrap(line, width)]

    def add_arguments(self, actions: Iterable[argparse.Action]) -> None:
        super().add_arguments(sorted(actions, key=lambda action: action.option_strings))


def help_parser() -> argparse.ArgumentParser:
    """A plain parser with only s1serve's groups: what `serve --help` prints, without importing vLLM."""
    parser = argparse.ArgumentParser(prog="s1serve serve", description=SERVE_DESCRIPTION, formatter_class=HelpFormatter)
    add_s1serve_flags(parser)
    return parser


def serve_parser() -> Any:
    """vLLM's own `serve` flags (frontend and engine), with s1serve's group first."""
    from server.vllm_compat import FlexibleArgumentParser, make_arg_parser

    parser = FlexibleArgumentParser(prog="s1serve serve", description=SERVE_DESCRIPTION)
    add_s1serve_flags(parser)
    make_arg_parser(parser)
    for action in parser._actions:
        if action.dest == "api_key":
            # Repeatable as well as space-separated: `--api-key a=1 --api-key b=2` keeps both.
            action.__class__ = argparse._ExtendAction
            action.help = (
                "API keys, each NAME=SECRET or SECRET (named 'default'); also S1SERVE_API_KEY. "
                "The name labels the request's metrics."
            )
    return parser


def print_serve_help(parser: Any = None) -> None:
    """s1serve's flags with their help, then where vLLM's flags are listed (default: from `help_parser()`)."""
    if parser is None:
        parser = help_parser()
    formatter = parser._get_formatter()
    formatter.add_usage("s1serve serve [--model MODEL] [s1serve flags] [vLLM flags]", [], [])
    formatter.add_text(parser.description)
    for group in parser._action_groups:
        if group.title in (S1SERVE_GROUP, LIMITS_GROUP):
            formatter.start_section(f"{group.title} flags")
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
    formatter.add_text(
        "Every vLLM serve flag passes through (--model, --host, --port, --api-key, --tensor-parallel-size, "
        "--max-model-len, --reasoning-parser, --tool-call-parser, ...). List them with --help=all, "
        "one group with --help=<group> (e.g. --help=ModelConfig), or search with --help=<word>."
    )
    print(formatter.format_help())


def apply_cpu_defaults(args: argparse.Namespace, explicit: set[str]) -> None:
    """The default model and the CPU backend's defaults, for flags the user did not give."""
    from server.default_model import SERVED_NAME, ensure_default_model
    from server.vllm_compat import current_platform

    if getattr(args, "model_tag", None):
        args.model = args.model_tag
    elif "model" not in explicit:
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


def limit_settings(args: argparse.Namespace) -> Any:
    """The limits from the flags; vLLM's --max-num-queued-reqs also sets the admission limit.

    vLLM checks its own queue again after a stream's 200 has gone out, so overflow could
    arrive as an error event inside a 200. Admitting against the same number, counted as vLLM
    counts it, makes overflow a 429 before any response starts. An explicit
    --max-queued-requests wins.
    """
    from server.http.admission import LimitSettings

    engine_queue = getattr(args, "max_num_queued_reqs", None) or 0
    derived = not args.max_queued_requests and engine_queue > 0
    return LimitSettings(
        max_body_bytes=args.max_request_body_bytes,
        max_header_bytes=args.max_request_header_bytes,
        max_queued_requests=engine_queue if derived else args.max_queued_requests,
        max_queued_tokens=args.max_queued_tokens,
        count_sequences=derived,
    )


def serve(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print_serve_help()  # s1serve's groups only: vLLM is not imported (--help=all etc. go to vLLM's parser)
        return 0
    from server.vllm_touch_points import installed_version, untested_vllm

    refusal = untested_vllm(installed_version(), allow="--allow-untested-vllm" in argv)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    parser = serve_parser()
    args = parser.parse_args(argv)
    from budget.early_exit import parse_flag
    from server.http.budget_fields import EffortBudgets
    from server.vllm_compat import configure_logging_from_args, validate_parsed_serve_args

    configure_logging_from_args(args)
    keys = list(args.api_key or [])
    if args.api_key_file:
        keys += read_api_key_file(args.api_key_file)
    if not keys and os.environ.get("S1SERVE_API_KEY"):
        keys = [os.environ["S1SERVE_API_KEY"]]
    try:
        efforts = EffortBudgets.parse(args.reasoning_effort_budgets)
        early_exit = None if args.early_exit is None else parse_flag(args.early_exit)
    except ValueError as e:
        parser.error(str(e))
    if early_exit is not None and args.budget_profile == "harness":
        parser.error("--early-exit is not part of s1's harness: it cannot be the default with --budget-profile harness")
    apply_cpu_defaults(args, explicit_dests(parser, argv))
    args.api_key = None  # s1serve checks keys itself, with names for the metrics
    validate_parsed_serve_args(args)

    import uvloop

    from server.app import S1Options, run_server

    for flag in ("max_request_body_bytes", "max_request_header_bytes", "max_queued_requests", "max_queued_tokens"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must be 0 (no limit) or more")

    options = S1Options(
        thinking_format=args.thinking_format,
        efforts=efforts,
        api_keys=parse_api_keys(keys),
        drain_timeout=args.drain_timeout,
        log_json=args.log_json,
        log_requests=not args.disable_request_log,
        protect_metrics=args.protect_metrics,
        budget_profile=args.budget_profile,
        early_exit=early_exit,
        forcing_path=args.forcing_path,
        limits=limit_settings(args),
        admin_routes=args.enable_admin_routes,
        uncovered_routes=tuple(args.serve_uncovered_route),
    )
    uvloop.run(run_server(args, options))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m server.cli [serve] ARGS`: runs `serve` (the other commands are `s1serve`'s, see s1serve/cli.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        argv = argv[1:]
    elif argv and argv[0] in ("train", "bench", "eval"):
        print(f"server.cli runs only serve; use `s1serve {argv[0]}` or `python -m s1serve {argv[0]}`", file=sys.stderr)
        return 2
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())

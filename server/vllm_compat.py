"""Every vLLM name s1serve uses, in one place, with the versions each was read against.

s1serve runs vLLM's own API server on an engine client of its own, so it reaches below vLLM's
public API: the launcher's functions, the engine client interface, streaming-input sessions, a
private admission check and two stats methods it corrects. Each such touch point is named in
`TOUCH_POINTS`; `missing_touch_points()` checks them against the installed vLLM (names and
the parameters s1serve passes), and a unit test runs it, so a vLLM upgrade that breaks one
says which.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import vllm

from server.vllm_touch_points import TOUCH_POINTS, TouchPoint

VLLM_VERSION: str = vllm.__version__


def _resolve(target: str) -> Any:
    module, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def load(name: str) -> Any:
    """A touch point, from where the installed vLLM keeps it."""
    return _resolve(TOUCH_POINTS[name].target_for(VLLM_VERSION))


# The launcher.
make_arg_parser = load("make_arg_parser")
validate_parsed_serve_args = load("validate_parsed_serve_args")
setup_server = load("setup_server")
serve_http = load("serve_http")
build_async_engine_client = load("build_async_engine_client")
build_app = load("build_app")
init_app_state = load("init_app_state")
get_uvicorn_log_config = load("get_uvicorn_log_config")
configure_logging_from_args = load("configure_logging_from_args")
FlexibleArgumentParser = load("FlexibleArgumentParser")
current_platform = load("current_platform")
# The engine client interface and the engine's types.
EngineClient = load("EngineClient")
StreamingInput = load("StreamingInput")
SamplingParams = load("SamplingParams")
RequestOutputKind = load("RequestOutputKind")
tokens_input = load("tokens_input")
RequestOutput = load("RequestOutput")
CompletionOutput = load("CompletionOutput")
Logprob = load("Logprob")
VLLMValidationError = load("VLLMValidationError")
get_prometheus_registry = load("get_prometheus_registry")
# The reasoning-parser plugin.
ReasoningParser = load("ReasoningParser")
ReasoningParserManager = load("ReasoningParserManager")
DeltaMessage = load("DeltaMessage")


def missing_touch_points(points: dict[str, TouchPoint] | None = None, version: str = VLLM_VERSION) -> list[str]:
    """Each touch point the installed vLLM lacks, or whose signature lacks a parameter s1serve passes."""
    missing: list[str] = []
    for point in (TOUCH_POINTS if points is None else points).values():
        target = point.target_for(version)
        try:
            obj = _resolve(target)
        except (ImportError, AttributeError) as e:
            missing.append(f"{target}: {type(e).__name__}: {e}")
            continue
        if not point.params:
            continue
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError) as e:
            missing.append(f"{target}: no signature ({e})")
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            continue  # takes any keyword
        names = {p.name for p in parameters}
        absent = [p for p in point.params if p not in names]
        if absent:
            missing.append(f"{target}: no parameter {', '.join(absent)}")
    return missing


# -- private attributes and patches ----------------------------------------------------------------
def skip_admission_for(engine: Any, owned: Callable[[str], bool]) -> None:
    """vLLM's per-request queue check (`AsyncLLM.check_admission`), skipped for engine requests
    `owned` by an admitted forced request, so a forced request is never refused between rounds.

    vLLM's queue limits count engine requests, and each forced round is one: AsyncLLM checks
    them again for every request it adds. A forced request is admitted by the serving layer's
    check, made before its response starts.
    """
    check = engine.check_admission

    def check_unless_owned(n: int = 1, request_id: str | None = None) -> None:
        if request_id is not None and owned(request_id):
            return
        check(n, request_id)

    engine.check_admission = check_unless_owned


def queue_limits_set(engine: Any) -> bool:
    """Whether vLLM's own queue limits (--max-num-queued-reqs/-tokens) are on."""
    scheduler = engine.vllm_config.scheduler_config
    return scheduler.max_num_queued_reqs is not None or scheduler.max_num_queued_tokens is not None


def remove_routes(app: Any, paths: set[str]) -> None:
    """Drop vLLM's own routes at `paths` (s1serve serves them itself)."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in paths]


_MARK = "_s1serve_first_timestamps"


def keep_first_timestamps() -> None:
    """Request timings of streaming-input sessions, kept as vLLM's metrics define them.

    vLLM's frontend overwrites two timestamps of a request on every chunk of a session: the
    queued time (each chunk is queued again after the request was first scheduled, so
    `vllm:request_queue_time_seconds` goes negative, which also makes its OpenMetrics exposition
    invalid) and the arrival time (so `vllm:e2e_request_latency_seconds` would count from the
    last chunk). Its own comments define both from the first event; this keeps the first ones.
    Patched once per process.
    """
    IterationStats, RequestState = load("IterationStats"), load("RequestState")  # noqa: N806
    events = IterationStats.update_from_events
    if getattr(events, _MARK, False):
        return

    def update_from_events(self: Any, req_id: str, events_: list[Any], is_prefilling: bool, req_stats: Any,
                           *args: Any, **kwargs: Any) -> None:  # fmt: skip
        queued = req_stats.queued_ts
        events(self, req_id, events_, is_prefilling, req_stats, *args, **kwargs)
        if queued:
            req_stats.queued_ts = queued

    streaming = RequestState.apply_streaming_update

    def apply_streaming_update(self: Any, update: Any) -> None:
        arrival = self.stats.arrival_time if self.stats is not None else None
        streaming(self, update)
        if arrival:
            self.stats.arrival_time = arrival

    setattr(update_from_events, _MARK, True)
    IterationStats.update_from_events = update_from_events  # type: ignore[method-assign]
    RequestState.apply_streaming_update = apply_streaming_update  # type: ignore[method-assign]

"""Request timings of vLLM 0.32 for streaming-input sessions, kept as its metrics define them.

vLLM's frontend overwrites two timestamps of a request on every chunk of a session: the queued
time (each chunk is queued again after the request was first scheduled, so
`vllm:request_queue_time_seconds` goes negative, which also makes its OpenMetrics exposition
invalid) and the arrival time (so `vllm:e2e_request_latency_seconds` would count from the last
chunk). Its own comments define both from the first event; this keeps the first ones.
"""

from __future__ import annotations

from typing import Any

_MARK = "_s1serve_first_timestamps"


def keep_first_timestamps() -> None:
    """Patch, once per process, the two places that overwrite the first timestamps."""
    from vllm.v1.engine.output_processor import RequestState
    from vllm.v1.metrics.stats import IterationStats

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
    IterationStats.update_from_events = update_from_events
    RequestState.apply_streaming_update = apply_streaming_update

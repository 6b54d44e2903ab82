"""vLLM's per-request timings for a session's later chunks (server/session_stats.py), on vLLM's
own stats class; a stub (no engine) stands in for the LoRA bookkeeping it also updates."""

from __future__ import annotations

from vllm.v1.engine import EngineCoreEvent, EngineCoreEventType
from vllm.v1.metrics.stats import IterationStats, RequestStateStats

from server.vllm_compat import keep_first_timestamps


class _NoLoRA:
    def request_waiting(self, *args: object) -> None:
        pass

    def request_running(self, *args: object) -> None:
        pass


def test_a_later_chunk_does_not_move_the_queued_time_past_the_scheduled_time() -> None:
    keep_first_timestamps()
    keep_first_timestamps()  # idempotent: patched once
    stats, req = IterationStats(), RequestStateStats()
    chunk1 = [EngineCoreEvent(EngineCoreEventType.QUEUED, 10.0), EngineCoreEvent(EngineCoreEventType.SCHEDULED, 10.5)]
    chunk2 = [EngineCoreEvent(EngineCoreEventType.QUEUED, 14.0), EngineCoreEvent(EngineCoreEventType.SCHEDULED, 14.1)]
    for events in (chunk1, chunk2):
        stats.update_from_events("r", events, False, req, _NoLoRA(), None)
    assert (req.queued_ts, req.scheduled_ts) == (10.0, 10.5)  # queue time 0.5 s, not -3.5 s

"""Keep the test process off the CPU a vLLM engine computes on.

On a CPU host vLLM binds its engine to all cores but one and leaves the last one to the API
server. A test that polls or times a server from a process the OS left on the engine's core
waits behind a core at 100 % for seconds: timing-sensitive tests (drain, engine death) then see
a server that seems stalled. While such a test runs, this process is pinned to the last CPU;
servers it starts get every CPU back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

ALL_CPUS = frozenset(os.sched_getaffinity(0))
FRONTEND_CPU = max(ALL_CPUS)


@contextmanager
def off_the_engine_cpu() -> Iterator[None]:
    if len(ALL_CPUS) < 2:
        yield
        return
    os.sched_setaffinity(0, {FRONTEND_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, ALL_CPUS)

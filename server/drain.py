"""Graceful drain on SIGTERM.

uvicorn already stops listening and waits for open requests (up to its graceful-shutdown
timeout) when told to exit; this marks the server as draining first, so /ready fails and
requests on kept-alive connections get a 503 instead of starting new work, and the process
exits 0 once the drain is over.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

logger = logging.getLogger("s1serve")


class DrainingServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self.config.app.state, "s1", None) if hasattr(self.config.app, "state") else None
        if state is not None and not state.draining:
            state.draining = True
            logger.info(
                "signal %d: draining, finishing in-flight requests (up to %ss)",
                sig,
                self.config.timeout_graceful_shutdown,
            )
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after its shutdown, which would end the process
        # with -SIGTERM; a completed drain is a clean exit.
        if sig == signal.SIGTERM and hasattr(self, "_captured_signals"):
            self._captured_signals.clear()

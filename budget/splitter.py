"""Stream a thinking round's text while it may still end on a multi-token text trigger."""

from __future__ import annotations


def partial_suffix(text: str, delimiter: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `delimiter`."""
    for n in range(min(len(text), len(delimiter) - 1), 0, -1):
        if delimiter.startswith(text[-n:]):
            return n
    return 0


class TriggerHoldback:
    """Streams a thinking round's text while it may end on a text trigger.

    The engine is asked to keep the trigger in its text (so it holds nothing back); this
    releases everything but a trailing partial match of the trigger, and drops the trigger
    itself when it completes.
    """

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger
        self._buffer = ""

    def feed(self, text: str) -> str:
        self._buffer += text
        at = self._buffer.find(self.trigger)
        if at >= 0:
            out, self._buffer = self._buffer[:at], ""
            return out
        keep = partial_suffix(self._buffer, self.trigger)
        out = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(out) :]
        return out

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return out

"""Split streamed text into thinking and answer, for generations the server did not force.

With no budget the server passes generation straight through, but a reasoning model still
writes a thinking segment; this finds the delimiters in the text stream, holding back only
the few characters that might begin a delimiter.
"""

from __future__ import annotations

from budget.formats import ThinkingFormat


class ThinkingSplitter:
    def __init__(self, fmt: ThinkingFormat, *, opened: bool) -> None:
        self.fmt = fmt
        self.state = "thinking" if opened else "before"
        self._buffer = ""
        self._skip_sep = fmt.start_sep if opened else ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        """Return (segment, text) pieces that are certain; segment is 'thinking' or 'answer'."""
        self._buffer += text
        out: list[tuple[str, str]] = []
        while True:
            if self._skip_sep:
                if len(self._buffer) < len(self._skip_sep) and self._skip_sep.startswith(self._buffer):
                    return out
                if self._buffer.startswith(self._skip_sep):
                    self._buffer = self._buffer[len(self._skip_sep) :]
                self._skip_sep = ""
            if self.state == "answer":
                if self._buffer:
                    out.append(("answer", self._buffer))
                self._buffer = ""
                return out
            delimiter = self.fmt.start if self.state == "before" else self.fmt.end
            segment = "answer" if self.state == "before" else "thinking"
            at = self._buffer.find(delimiter)
            if at < 0:
                keep = _partial_suffix(self._buffer, delimiter)
                emit = self._buffer[: len(self._buffer) - keep]
                if emit:
                    out.append((segment, emit))
                self._buffer = self._buffer[len(emit) :]
                return out
            if at:
                out.append((segment, self._buffer[:at]))
            self._buffer = self._buffer[at + len(delimiter) :]
            if self.state == "before":
                self.state, self._skip_sep = "thinking", self.fmt.start_sep
            else:
                self.state, self._skip_sep = "answer", self.fmt.end_sep

    def flush(self) -> list[tuple[str, str]]:
        segment = "thinking" if self.state == "thinking" else "answer"
        out = [(segment, self._buffer)] if self._buffer else []
        self._buffer = ""
        return out


def _partial_suffix(text: str, delimiter: str) -> int:
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
        keep = _partial_suffix(self._buffer, self.trigger)
        out = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(out) :]
        return out

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return out

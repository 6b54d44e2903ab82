"""Text around a thinking round's end: streaming before a multi-token trigger, cutting at one,
and where a grace continuation finishes its sentence."""

from __future__ import annotations

from collections.abc import Callable

# Where a grace continuation may stop: a newline, or a sentence end followed by whitespace.
SENTENCE_ENDS = ".!?"


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


def sentence_end(before: str, ids: list[int], decode: Callable[[list[int]], str]) -> int:
    """How many of `ids` finish the current line or sentence.

    The end is the first newline, or the first `.`, `!` or `?` followed by whitespace (the
    punctuation may be `before`, the last character already written); the token holding it is
    kept, the whitespace after it only when it is in that same token. No end: all ids.
    """
    text = before + decode(ids)
    end = -1
    for p, ch in enumerate(text):
        if ch == "\n" and p >= len(before):
            end = p
            break
        if ch in SENTENCE_ENDS and p + 1 < len(text) and text[p + 1].isspace():
            end = p
            break
    if end < 0:
        return len(ids)
    need = end + 1 - len(before)  # characters of the grace text that must be kept
    if need <= 0:
        return 0
    for k in range(1, len(ids) + 1):
        if len(decode(ids[:k])) >= need:
            return k
    return len(ids)


def strip_text_delimiter(ids: list[int], decode: Callable[[list[int]], str], delimiter: str) -> tuple[list[int], str]:
    """Remove the last occurrence of a multi-token `delimiter` and anything after it.

    Returns the ids before the first token that overlaps the delimiter, and the text that
    token carried before the delimiter started (usually empty). When the delimiter is not
    found the ids come back unchanged.
    """
    for k in range(len(ids) - 1, -1, -1):
        tail = decode(ids[k:])
        at = tail.rfind(delimiter)
        if at >= 0:
            # ids[k] is the first token of the shortest tail holding the delimiter.
            return list(ids[:k]), tail[:at]
    return list(ids), ""

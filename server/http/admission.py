"""The gateway's limits and its bounded queue of generation requests.

Overload is a 429 with Retry-After before any 200 is sent: generation requests are admitted
against a number of HTTP requests (or engine sequences, as vLLM's --max-num-queued-reqs
counts them) and of estimated prompt + output tokens in flight. A budget-forced request
counts once, as the HTTP request it is: its engine rounds run beneath the serving layer.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# httptools (uvicorn's parser when installed) does not apply h11's header limit: checked here.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


@dataclass
class LimitSettings:
    """The limits; 0 or None switches one off."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_queued_requests: int = 0
    max_queued_tokens: int = 0
    # Count a request as the engine sequences it starts (n x prompts), as vLLM's
    # --max-num-queued-reqs does: set when that flag gave the request limit.
    count_sequences: bool = False
    max_model_len: int = 0  # output allowance of a request that names no max_tokens
    vocab_size: int = 0  # token ids at or above this are refused (0: unknown, not checked)
    max_chars_per_token: int = 0  # the tokenizer's longest token: prompts over context x this cannot fit
    drain_timeout: float = 30.0


@dataclass
class Admission:
    """The bounded queue: HTTP generation requests (or their slots) and token estimates, in flight."""

    max_requests: int = 0
    max_tokens: int = 0
    requests: int = 0  # slots taken: one per request, or one per engine sequence when counted so
    tokens: int = 0

    def try_admit(self, tokens: int, slots: int = 1) -> str | None:
        """Take `slots`, or say which limit is full. A lone request is always admitted."""
        if self.max_requests and self.requests and self.requests + slots > self.max_requests:
            return f"the server is at its limit of {self.max_requests} requests in flight"
        if self.max_tokens and self.requests and self.tokens + tokens > self.max_tokens:
            return f"the server is at its limit of {self.max_tokens} queued tokens"
        self.requests += slots
        self.tokens += tokens
        return None

    def release(self, tokens: int, slots: int = 1) -> None:
        self.requests -= slots
        self.tokens -= tokens

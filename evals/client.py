"""An OpenAI-compatible chat endpoint seen from the client: bounded concurrency, retries, one-line errors.

Plain httpx rather than the openai SDK, so that every server's JSON (s1serve's `thinking` report,
vLLM's `reasoning_content`, a hosted API's fields) is read as sent, and so that retries follow one
rule: 408, 429, 5xx and dropped connections are retried with exponential backoff (honouring
Retry-After); any other error is the endpoint's answer and is reported at once.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class EndpointError(RuntimeError):
    """The endpoint failed or refused; the message is one line."""


class RequestRejected(EndpointError):
    """The endpoint answered 4xx: the request itself is the problem, retrying will not help."""

    def __init__(self, status: int, message: str, param: str | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.param = param


class Endpoint:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        concurrency: int = 8,
        retries: int = 5,
        timeout_s: float = 3600.0,
        backoff_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.requests_sent = 0
        self._gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"},
            limits=limits,
            timeout=httpx.Timeout(timeout_s, connect=30.0),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def listed_models(self) -> list[dict[str, Any]] | None:
        """The entries of GET /models (vLLM's carry `max_model_len`), or None without such a listing."""
        try:
            response = await self._http.get(f"{self.base_url}/models", timeout=30.0)
        except httpx.TransportError as e:
            raise EndpointError(f"cannot reach {self.base_url}: {_reason(e)}") from None
        if response.status_code in (401, 403):
            raise EndpointError(f"{self.base_url} refused the API key (HTTP {response.status_code}); pass --api-key")
        if response.status_code != 200:
            return None
        try:
            data = response.json().get("data", [])
            return [m for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, AttributeError):
            return None

    async def served_models(self) -> list[str] | None:
        """Model ids from GET /models, or None when the endpoint has no such listing; fails if unreachable."""
        listed = await self.listed_models()
        return None if listed is None else [m["id"] for m in listed]

    async def prompt_tokens(self, model: str, content: str) -> int | None:
        """Tokens of a one-message chat prompt with the generation prompt, from vLLM's POST /tokenize (beside
        /v1); None where the endpoint has no such route."""
        root = self.base_url.removesuffix("/v1")
        body = {"model": model, "messages": [{"role": "user", "content": content}], "add_generation_prompt": True}
        try:
            async with self._gate:
                response = await self._http.post(f"{root}/tokenize", json=body, timeout=60.0)
            count = response.json().get("count") if response.status_code == 200 else None
        except (httpx.TransportError, ValueError, AttributeError):
            return None
        return count if isinstance(count, int) else None

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions, retried on overload and dropped connections."""
        async with self._gate:
            attempt = 0
            while True:
                self.requests_sent += 1
                retry_after: float | None = None
                try:
                    response = await self._http.post(f"{self.base_url}/chat/completions", json=body)
                except httpx.TransportError as e:
                    failure: str = f"cannot reach {self.base_url}: {_reason(e)}"
                else:
                    if response.status_code == 200:
                        try:
                            return response.json()
                        except ValueError:
                            raise EndpointError(f"{self.base_url} answered 200 with a body that is not JSON") from None
                    message, param = _error_of(response)
                    if response.status_code not in RETRY_STATUSES:
                        raise RequestRejected(response.status_code, message, param)
                    failure = f"HTTP {response.status_code}: {message}"
                    retry_after = _retry_after(response)
                if attempt >= self.retries:
                    raise EndpointError(f"{failure} (after {attempt + 1} attempts)")
                delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                await asyncio.sleep(min(MAX_BACKOFF_S, delay) * random.uniform(0.8, 1.2))
                attempt += 1


def _reason(error: httpx.TransportError) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _error_of(response: httpx.Response) -> tuple[str, str | None]:
    """The error message and offending parameter of an OpenAI-shaped (or any) error body, on one line."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip().splitlines() or [response.reason_phrase])[0][:300], None
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or str(error)
        param = error.get("param")
    else:
        message, param = str(error), None
    return " ".join(str(message).split())[:300], param if isinstance(param, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None

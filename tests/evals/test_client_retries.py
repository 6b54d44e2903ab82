"""Retry rules of the endpoint client, on a scripted fake transport (no server): what is retried, what is not."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from evals.client import Endpoint, EndpointError, RequestRejected

OK = {"choices": [{"index": 0, "message": {"content": "5"}}]}


def scripted(*steps: object) -> tuple[httpx.MockTransport, list[int]]:
    """A fake transport answering each POST with the next step: a status code, or an exception to raise."""
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        step = steps[len(calls)]
        calls.append(1)
        if isinstance(step, Exception):
            raise step
        status = int(step)  # type: ignore[call-overload]
        if status == 200:
            return httpx.Response(200, json=OK)
        return httpx.Response(status, json={"error": {"message": f"status {status}", "param": "n"}})

    return httpx.MockTransport(handle), calls


def endpoint(transport: httpx.MockTransport, retries: int = 3) -> Endpoint:
    return Endpoint("http://fake/v1", "k", retries=retries, backoff_s=0.001, transport=transport)


def test_overload_and_dropped_connections_are_retried() -> None:
    transport, calls = scripted(429, 503, httpx.ConnectError("refused"), 200)
    assert asyncio.run(endpoint(transport).chat({})) == OK
    assert len(calls) == 4


def test_a_bad_request_is_not_retried() -> None:
    transport, calls = scripted(400, 200)
    with pytest.raises(RequestRejected) as caught:
        asyncio.run(endpoint(transport).chat({}))
    assert len(calls) == 1 and caught.value.param == "n" and "status 400" in str(caught.value)


def test_retries_run_out_with_one_line() -> None:
    transport, calls = scripted(500, 500, 500)
    with pytest.raises(EndpointError) as caught:
        asyncio.run(endpoint(transport, retries=2).chat({}))
    assert len(calls) == 3
    assert str(caught.value) == "HTTP 500: status 500 (after 3 attempts)"

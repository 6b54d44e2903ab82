"""FastAPI dependencies: the shared state and API-key checking."""

from __future__ import annotations

from fastapi import Request

from server.api_keys import NO_KEY, key_name
from server.errors import APIError
from server.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.s1


def api_key_name(request: Request) -> str:
    """The configured name of the caller's key ('none' when the server has no keys)."""
    state: ServerState = request.app.state.s1
    keys = state.config.api_keys
    if not keys:
        return NO_KEY
    name = key_name(keys, request.headers.get("authorization", ""))
    if name is None:
        raise APIError("invalid or missing API key", status=401, type="authentication_error", code="invalid_api_key")
    return name


def accepting(request: Request) -> None:
    state: ServerState = request.app.state.s1
    if state.draining:
        raise APIError("server is shutting down", status=503, type="server_error", code="draining")

"""OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from budget.spec import BudgetError


class APIError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        type: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.type, self.code = message, status, param, type, code


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _loc_to_param(loc: tuple[Any, ...]) -> str:
    # Drop the "body" prefix and pydantic's union-member tags ("int", "ThinkingBudget", ...).
    parts = [str(p) for p in loc[1:] if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p in _TYPE_TAGS))]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


_TYPE_TAGS = {"int", "str", "float", "bool", "list", "dict", "constrained-int", "function-after", "literal"}


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, type=exc.type, param=exc.param, code=exc.code), exc.status)

    @app.exception_handler(BudgetError)
    async def _budget_error(_: Request, exc: BudgetError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, type="invalid_request_error", param=exc.param), 400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # In a union (`thinking_budget`: int or object) the deepest error is the one about what was sent.
        first = max(errors, key=lambda e: len(e.get("loc", ()))) if errors else {"loc": ("body",), "msg": "invalid"}
        param = _loc_to_param(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "invalid value"))
        if first.get("type") == "extra_forbidden":
            msg = "unknown or unsupported field"
        elif first.get("type") == "json_invalid":
            msg = "request body is not valid JSON"
        message = f"{param}: {msg}" if param else msg
        return JSONResponse(error_body(message, type="invalid_request_error", param=param or None), 400)

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(exc, EngineDeadError):
            return JSONResponse(
                error_body("the engine has stopped; retry on another replica", type="server_error", code="engine_dead"),
                503,
            )
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", type="server_error"), 500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error_body(str(exc.detail), type=kind), exc.status_code, headers=exc.headers)

"""Errors as JSON with one stable shape: ``{"error": {"code", "message", "details"}}``.

Clients branch on ``code`` (stable) and show ``message`` (for people); ``details``
carries structured extras such as the located issues of a bad plan.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from autopack.plan import PlanError
from autopack.store import RunNotFound


class ErrorDetail(BaseModel):
    """What went wrong, for programs and for people."""

    code: str = Field(description="Stable machine-readable name, e.g. not_found.")
    message: str = Field(description="One line for a person.")
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised by routes; rendered as :class:`ErrorBody` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details or []))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses a route may return."""
    return {
        status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses
    }


DESCRIPTIONS: dict[int, str] = {
    400: "The body or a header is malformed (e.g. not JSON, a bad Last-Event-ID).",
    401: "No valid API key.",
    403: "The key's scope does not allow this.",
    404: "No such run, phase or entry.",
    409: "The run or phase is not in a state that allows this.",
    413: "The body is larger than the route accepts.",
    422: "The request or the plan is invalid; details locate each problem.",
    429: "Too many requests for this key; retry after the given seconds.",
    503: "A part this route needs is not available in this process.",
}

_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app can produce leaves as an :class:`ErrorBody`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(PlanError)
    async def plan_error(_: Request, exc: PlanError) -> JSONResponse:
        issues = [issue.model_dump() for issue in exc.issues]
        message = f"invalid plan ({len(issues)} problem(s))"
        return error_response(422, "invalid_plan", message, issues)

    @app.exception_handler(RunNotFound)
    async def run_not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return error_response(404, "not_found", f"no run {exc.args[0]!r}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        return error_response(422, "invalid", "the request is invalid", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

"""Every error the API returns is JSON ``{"error": {"code", "message"}}``, and bad input is a 4xx.

Handlers map FastAPI's validation errors (400, not 422), Starlette's HTTP errors (404, 405),
mdw's own error tree, and anything unexpected (500, logged, with no internals in the body).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from mdw.errors import (
    IncompleteError,
    MdwError,
    NotStoredError,
    StoreError,
    UsageError,
    ValidationError,
    VendorError,
)
from mdw.logs import get_logger, redact

log = get_logger(__name__)
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          422: "unprocessable", 429: "too_many_requests", 500: "internal", 501: "not_implemented",
          502: "bad_gateway", 503: "unavailable"}


class ApiError(MdwError):
    """An error with its HTTP status, a stable machine code and a human message.

    Routes raise it for what only HTTP knows (a bad cursor, a missing run, 501 for an unconfigured
    feature); the handler answers it as it says, and other :class:`MdwError`s are mapped by class.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = msgspec.json.encode({"error": {"code": code, "message": redact(message)}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _describe(errors: Sequence[Mapping[str, object]]) -> str:
    """pydantic's error list as one line: ``start: Input should be a valid date; ...`` (first five)."""
    parts = []
    for err in errors[:5]:
        where = err.get("loc", ())
        names = where if isinstance(where, tuple | list) else ()
        loc = ".".join(str(p) for p in names if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, "bad_request", _describe(list(exc.errors())))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def mdw_error(_: Request, exc: Exception) -> Response:
        if isinstance(exc, NotStoredError):
            return error_response(404, "not_found", str(exc))
        if isinstance(exc, IncompleteError):
            return error_response(409, "incomplete", str(exc))
        if isinstance(exc, UsageError | ValidationError):
            return error_response(400, "bad_request", str(exc))
        if isinstance(exc, VendorError):
            return error_response(502, "vendor_error", str(exc))
        if isinstance(exc, StoreError):
            log.error("store error", action="api.store_error", error=str(exc))
            return error_response(503, "store_unavailable", "the database failed; see the server log")
        return error_response(500, "internal", "internal error; see the server log")

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error in a request", action="api.unhandled")
        return error_response(500, "internal", "internal error; see the server log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(MdwError, mdw_error)
    app.add_exception_handler(Exception, unexpected)

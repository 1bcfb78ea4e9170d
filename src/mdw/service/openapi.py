"""The OpenAPI document as the API really behaves: its error statuses and its security per auth mode.

FastAPI documents a 422 for every operation with parameters and puts the key schemes on every
route that reads a key, but mdw answers bad input with 400 (see :mod:`mdw.service.errors`),
unknown things with 404, and lets anonymous callers read unless ``auth = "all"``. This rewrites
the generated document once so clients and fuzzers (schemathesis) see the same contract the
handlers enforce.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypedDict

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from mdw.service.auth import require_admin, require_read

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA: dict[str, object] = {
    "type": "object", "title": "Error", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable machine code, e.g. bad_ticker"},
        "message": {"type": "string", "description": "what was wrong and what is accepted"}}}},
}
_DESCRIPTIONS = {"400": "Bad input: the message says what is accepted",
                 "401": "No API key, or an unknown or revoked one",
                 "403": "The key is read-only; this route needs an admin key",
                 "404": "No such item",
                 "502": "The vendor failed or could not be reached; the message says how",
                 "503": "No vendor API key is configured on this server"}
_SCHEMES: list[dict[str, list[str]]] = [{"APIKeyHeader": []}, {"HTTPBearer": []}]


class _Operation(TypedDict, total=False):
    """The keys of one generated OpenAPI operation that :func:`_fix_operation` reads or rewrites."""

    operationId: str
    parameters: list[dict[str, object]]
    requestBody: object
    responses: dict[str, object]
    security: list[dict[str, list[str]]]


def _guards(dep: Dependant) -> set[object]:
    found: set[object] = set()
    for sub in dep.dependencies:
        if sub.call in (require_admin, require_read):
            found.add(sub.call)
        found |= _guards(sub)
    return found


def _error(code: str) -> dict[str, object]:
    return {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": _ERROR_REF}}}


def vendor_errors() -> dict[int | str, dict[str, object]]:
    """``responses=`` for a route that asks the vendor while it answers (502 and 503)."""
    return {502: _error("502"), 503: _error("503")}


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also those of included routers (FastAPI >= 0.165 nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def _fix_operation(op: _Operation, guards: set[object], auth: str) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    if op.get("parameters") or op.get("requestBody"):
        responses["400"] = _error("400")
    if any(p.get("in") == "path" for p in op.get("parameters", [])):
        responses["404"] = _error("404")
    if require_admin in guards:
        op["security"] = list(_SCHEMES)
        responses["401"], responses["403"] = _error("401"), _error("403")
    elif require_read in guards:
        # Anonymous reads are allowed unless every route needs a key: ``{}`` says so.
        op["security"] = list(_SCHEMES) if auth == "all" else [{}, *_SCHEMES]
        responses["401"] = _error("401")
    else:
        op.pop("security", None)


def api_document(app: FastAPI, *, auth: str) -> dict[str, object]:
    """The generated document with mdw's statuses (400/401/403/404, never 422) and security."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    for schema in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(schema, None)
    guards = {route.unique_id: _guards(route.dependant) for route in _api_routes(app.routes)}
    for ops in doc["paths"].values():
        for op in ops.values():
            _fix_operation(op, guards.get(op.get("operationId", ""), set()), auth)
    return doc


def install_openapi(app: FastAPI, *, auth: str) -> None:
    """Serve :func:`api_document` (built once, on first request) as ``/openapi.json``."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = api_document(app, auth=auth)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

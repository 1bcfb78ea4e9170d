"""The web dashboard served by ``mdw serve`` at ``/``.

It is a client of the public HTTP API and nothing more: the server-rendered overview asks the
API in process (:mod:`mdw.dashboard.inprocess`), the other pages' scripts call it from the
browser. The only routes added here are the pages themselves and their static assets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from mdw.calendar import nyse_sessions
from mdw.dashboard import shells
from mdw.dashboard.overview import render_overview

STATIC_DIR = Path(__file__).parent / "static"

_HTML_HEADERS = {
    # Pages hold no secrets, but the admin page handles a key: keep other origins from framing it.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def mount_dashboard(app: FastAPI) -> None:
    """Add the dashboard pages (``/``, ``/coverage``, ``/universes``, ``/runs``, ``/chart``, ``/admin``)
    and ``/static``."""

    async def overview(request: Request) -> HTMLResponse:
        html = await render_overview(request.app, dict(request.headers))
        return HTMLResponse(html, headers=_HTML_HEADERS)

    app.add_api_route("/", overview, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)

    for path, render in _SHELLS.items():
        app.add_api_route(path, _shell_route(render), methods=["GET"], include_in_schema=False,
                          response_class=HTMLResponse)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    _html_not_found(app)
    _warm_calendar_on_startup(app)


def _html_not_found(app: FastAPI) -> None:
    """Answer a browser's request for an unknown page with an HTML 404 page, not the API's JSON.

    Only a 404 outside ``/v1`` asked for as HTML (a browser's ``Accept``) gets the page; API
    clients and every other error keep the JSON error body the API promises.
    """
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 404 and wants_html and not request.url.path.startswith("/v1/"):
            html = shells.not_found_page(request.url.path)
            return HTMLResponse(html, status_code=404, headers=_HTML_HEADERS)
        response = json_handler(request, exc)
        return await response if isinstance(response, Awaitable) else response

    app.add_exception_handler(StarletteHTTPException, handler)


_SHELLS: dict[str, Callable[[], str]] = {
    "/coverage": shells.coverage_page,
    "/universes": shells.universes_page,
    "/runs": shells.runs_page,
    "/chart": shells.chart_page,
    "/admin": shells.admin_page,
}


def _shell_route(render: Callable[[], str]) -> Callable[[], Awaitable[HTMLResponse]]:
    async def handler() -> HTMLResponse:
        return HTMLResponse(render(), headers=_HTML_HEADERS)

    return handler


def _warm_calendar_on_startup(app: FastAPI) -> None:
    """Build the exchange calendar while the server starts, not during the first page view.

    The first calendar lookup of a process costs about two seconds (exchange_calendars builds its
    session table); without this the first overview after ``mdw serve`` would take that long.
    The app's own lifespan runs unchanged inside this one.
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        today = datetime.now(UTC).date()
        await asyncio.to_thread(nyse_sessions, today, today)
        async with inner(a):  # mdw's lifespan keeps its state on app.state and yields nothing
            yield

    app.router.lifespan_context = lifespan

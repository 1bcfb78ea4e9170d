"""``/docs`` (Swagger UI) and ``/redoc`` served from local assets, so they work with no network.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and a favicon and fonts from other
hosts; offline they are blank, although mdw promises to work with no network. The scripts are
installed from npm like the chart library (``web/``, ``make web``) into the dashboard's
``static/vendor`` and the pages are FastAPI's ``get_swagger_ui_html``/``get_redoc_html`` pointed
at them. When the assets were never built the page says how to build them (503) rather than
serving a blank page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

VENDOR_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static" / "vendor"
VENDOR_URL = "/static/vendor"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-favicon.png")
REDOC_FILES = ("redoc.standalone.js", "swagger-ui-favicon.png")
_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _missing(files: tuple[str, ...]) -> HTMLResponse | None:
    absent = [name for name in files if not (VENDOR_DIR / name).is_file()]
    if not absent:
        return None
    body = ("<!doctype html><title>mdw API docs</title><p>The API documentation's assets are not"
            f" installed ({', '.join(absent)}). Run <code>make web</code> (it needs npm) and restart"
            ' <code>mdw serve</code>. The OpenAPI document is at'
            ' <a href="/openapi.json">/openapi.json</a>.</p>')
    return HTMLResponse(body, status_code=503, headers=_HEADERS)


def mount_docs(app: FastAPI) -> None:
    """Add ``/docs`` and ``/redoc`` (build the app with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger() -> HTMLResponse:
        page = _missing(SWAGGER_FILES) or get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{VENDOR_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR_URL}/swagger-ui-favicon.png",
            # Swagger UI would send the document to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None})
        page.headers.update(_HEADERS)
        return page

    async def redoc() -> HTMLResponse:
        page = _missing(REDOC_FILES) or get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} API",
            redoc_js_url=f"{VENDOR_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR_URL}/swagger-ui-favicon.png", with_google_fonts=False)
        page.headers.update(_HEADERS)
        return page

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)

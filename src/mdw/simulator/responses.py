"""The vendor's response shapes: JSON bodies, error bodies (``error`` vs ``message`` keys), 5xx pages."""

from __future__ import annotations

import socket
import struct
from contextlib import suppress

from aiohttp import web

from mdw.simulator.encode import encode, request_id

PRICING = "https://polygon.io/pricing"
RATE_LIMIT_TEXT = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to "
    f"continue. {PRICING}"
)
TIMEFRAME_TEXT = f"Your plan doesn't include this data timeframe. Please upgrade your plan at {PRICING}"
ENTITLEMENT_TEXT = f"You are not entitled to this data. Please upgrade your plan at {PRICING}"
_PROXY_PAGES = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else encode(body)
    hdrs = {"X-Request-Id": request_id()}
    if headers:
        hdrs.update(headers)
    return web.Response(body=data, status=status, content_type="application/json", headers=hdrs)


def error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """400/401/429 bodies carry ``error``."""
    return json_response({"status": "ERROR", "request_id": request_id(), "error": text}, status, headers)


def not_authorized(text: str = TIMEFRAME_TEXT) -> web.Response:
    """403 bodies carry ``message``."""
    return json_response({"status": "NOT_AUTHORIZED", "request_id": request_id(), "message": text}, 403)


def not_found(text: str = "Ticker not found.") -> web.Response:
    """404 bodies carry ``message``."""
    return json_response({"status": "NOT_FOUND", "request_id": request_id(), "message": text}, 404)


def bad_request(text: str) -> web.Response:
    return error(400, text)


def proxy_error(status: int) -> web.Response:
    """A 5xx as a reverse proxy sends it: an HTML page, not JSON."""
    title = _PROXY_PAGES.get(status, f"{status} Error")
    html = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>"
            "\r\n<hr><center>nginx/1.19.2</center>\r\n</body>\r\n</html>\r\n")
    return web.Response(text=html, status=status, content_type="text/html")


def reset_connection(request: web.Request) -> None:
    """Close the socket with an RST (SO_LINGER 0), as a dropped upstream connection looks."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()

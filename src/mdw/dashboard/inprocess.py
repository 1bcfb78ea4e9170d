"""In-process GET requests to the app's own public HTTP API.

The server-rendered overview must show exactly what the public API returns, so it asks the API
itself: the request goes through the same ASGI stack (routing, auth, middleware) as a browser's
``fetch``, without a socket. That keeps the dashboard honest — it cannot read anything a client of
the API could not — and keeps "no route exists only for the dashboard" true by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import msgspec
from starlette.types import ASGIApp, Message, Scope

# Request headers passed through to the API call: the caller's own credentials, nothing else.
_FORWARDED = ("authorization", "x-api-key")


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """Status and decoded JSON body (``None`` when the body is not JSON)."""

    status: int
    body: object  # decoded JSON: dicts, lists, strings, numbers, booleans or None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def api_get(
    app: ASGIApp, path: str, params: dict[str, str] | None = None, *,
    headers: dict[str, str] | None = None,
) -> ApiResponse:
    """GET ``path`` from ``app`` in process and decode its JSON body.

    Args:
        app: the ASGI application that serves the public API (the dashboard's own app).
        path: an API path such as ``/v1/symbols``.
        params: query parameters.
        headers: the incoming request's headers; only credentials are forwarded.
    """
    raw_headers = [(b"accept", b"application/json"), (b"host", b"mdw.internal")]
    for name, value in (headers or {}).items():
        if name.lower() in _FORWARDED:
            raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(params or {}).encode(), "headers": raw_headers,
        "client": ("127.0.0.1", 0), "server": ("mdw.internal", 80),
    }
    status = 500
    chunks: list[bytes] = []
    sent_request = False

    async def receive() -> Message:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # The response is complete before anything asks again; report a disconnect if it does.
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    data = b"".join(chunks)
    try:
        body: object = msgspec.json.decode(data) if data else None
    except msgspec.DecodeError:
        body = None
    return ApiResponse(status, body)

"""A scripted vendor behind the client's one-method transport seam (no socket, no mock).

``ScriptedTransport`` implements :class:`mdw.polygon.Transport`: each request is answered by the
next entry of a script (a :class:`Response`, or an exception to raise as the transport would), and
every request is kept so a test can read what was sent.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from mdw.errors import VendorTransientError
from mdw.polygon import Request, Response

Answer = Response | BaseException | Callable[[Request], Response]


def bars_body(*ts_ms: int, next_url: str | None = None) -> bytes:
    """An aggregates answer with one valid bar per stamp."""
    rows = [{"t": t, "o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 100, "vw": 10.2, "n": 5} for t in ts_ms]
    body: dict[str, object] = {"status": "OK", "resultsCount": len(rows), "results": rows}
    if next_url:
        body["next_url"] = next_url
    return msgspec.json.encode(body)


def down(url: str = "") -> VendorTransientError:
    """What the default transport raises when the vendor can't be reached."""
    return VendorTransientError(f"could not reach the vendor (ClientConnectorError) [GET {url}]", url=url)


class ScriptedTransport:
    """Answers requests from a script; once the script runs out, ``then`` answers every request."""

    def __init__(self, *script: Answer, then: Answer | None = None) -> None:
        self.script = list(script)
        self.then = then
        self.sent: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.sent.append(request)
        answer = self.script.pop(0) if self.script else self.then
        if answer is None:
            raise AssertionError(f"unexpected request {request.url}")
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(request)
        request.headers_received()
        return answer

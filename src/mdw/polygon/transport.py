"""The transport seam: one method that sends one GET and returns its whole answer.

The client decides everything around a request (breaker, pacing, retries, status mapping,
decoding); a :class:`Transport` only moves bytes, like httpx's transport layer. The default is
:class:`AiohttpTransport` (one keep-alive session and connection pool); tests pass their own
implementation of the protocol to play a vendor without a socket.

Contract of :meth:`Transport.send`: return the status, headers and body of any HTTP answer
(a 5xx is an answer, not an error); raise :class:`~mdw.errors.VendorTransientError` when no whole
answer arrived (connection refused or reset, timeout, body cut short), as its subclass
:class:`~mdw.errors.VendorTimeout` when the request was sent and then given up on (its ``late_s``
says how long the vendor may still count it), and
:class:`~mdw.errors.VendorRequestError` for a URL that can't be sent. Call
``request.headers_received()`` once the status line and headers are in (the vendor has counted
the request by then; the limiter uses it). Never catch ``CancelledError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from yarl import URL

from mdw.errors import VendorRequestError, VendorTimeout, VendorTransientError
from mdw.logs import redact
from mdw.polygon.http import status_error


def _noop() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Request:
    """One GET: the absolute URL, its headers (the key travels only in ``Authorization``)."""

    url: URL
    headers: Mapping[str, str]
    shown: str = ""  # the redacted URL, for error messages
    headers_received: Callable[[], None] = field(default=_noop, compare=False)


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer; header names are matched case-insensitively by :meth:`header`."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None."""
        want = name.lower()
        value = self.headers.get(name)
        if value is not None:
            return value
        return next((v for k, v in self.headers.items() if k.lower() == want), None)


class Transport(Protocol):
    """Sends one request and returns its whole answer (see the module docstring for the contract)."""

    async def send(self, request: Request) -> Response:
        """Send ``request`` and read its answer to the end."""
        ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request time limits of the default transport.

    Args:
        connect_s: to open a connection (a vendor that doesn't answer a SYN is down).
        request_s: for the whole request, from send to the last byte of the body.
    """

    connect_s: float = 10.0
    request_s: float = 60.0


class AiohttpTransport:
    """The default transport: one aiohttp session with a bounded keep-alive pool.

    aiohttp resends a GET once on its own when a reused connection turns out to be closed; that
    resend would bypass the limiter, the breaker and the counters (the vendor would see a request
    mdw never counted). A client middleware (public API since aiohttp 3.12) turns the failure into
    a :class:`~mdw.errors.VendorTransientError` before aiohttp can resend, so the client's own
    retry sends it again, paced and accounted.

    Args:
        timeouts: connect and total limits per request.
        max_connections: the pool size (the client's in-flight bound).
    """

    def __init__(self, timeouts: Timeouts = Timeouts(), max_connections: int = 16) -> None:
        self.timeouts = timeouts
        self.max_connections = max(1, max_connections)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop: aiohttp sessions must not outlive their loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections,
                                             keepalive_timeout=30.0, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(total=self.timeouts.request_s, connect=self.timeouts.connect_s)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                                  middlewares=(_no_silent_resend,))
        return self._session

    async def send(self, request: Request) -> Response:
        http = self._open()
        with transport_errors(request.shown or redact(str(request.url)), late_s=self.timeouts.request_s):
            async with http.get(request.url, headers=dict(request.headers)) as resp:
                request.headers_received()
                body = await resp.read()
                return Response(resp.status, body, resp.headers)

    async def aclose(self) -> None:
        """Close the session and its pool."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _no_silent_resend(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
                            ) -> aiohttp.ClientResponse:
    try:
        return await handler(request)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        shown = redact(str(request.url))
        # Not an aiohttp error any more, so aiohttp has nothing to resend on.
        raise VendorTransientError(f"could not reach the vendor ({_why(exc)}) [GET {shown}]",
                                   url=shown) from exc


def _why(exc: BaseException) -> str:
    text = redact(str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def transport_errors(url: str, late_s: float = 0.0) -> Iterator[None]:
    """Map aiohttp and timeout exceptions raised inside the block to vendor errors.

    Args:
        url: the redacted URL, for the message and the error's ``url``.
        late_s: how long after a timeout the vendor may still count the request (the
            :class:`~mdw.errors.VendorTimeout` it raises carries it). A request still queued at a
            slow vendor when we gave up is counted when the vendor reads it; one more full request
            timeout later, a vendor that slow has dropped it, so the request timeout is the bound.
    """
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # no connection: the request was never sent
        raise VendorTransientError(f"vendor timed out connecting ({_why(exc)}) [GET {url}]", url=url) from exc
    except TimeoutError as exc:  # aiohttp.ServerTimeoutError is a TimeoutError too
        raise VendorTimeout(f"vendor timed out ({_why(exc)}) [GET {url}]", url=url, late_s=late_s) from exc
    except aiohttp.ClientPayloadError as exc:
        raise VendorTransientError(
            f"vendor body was cut short ({_why(exc)}) [GET {url}]", url=url
        ) from exc
    except aiohttp.InvalidURL as exc:
        raise VendorRequestError(f"invalid vendor URL; check POLYGON_BASE_URL [GET {url}]", url=url) from exc
    except aiohttp.ClientConnectionError as exc:
        raise VendorTransientError(
            f"could not reach the vendor ({_why(exc)}) [GET {url}]", url=url
        ) from exc
    except aiohttp.ClientResponseError as exc:
        raise status_error(exc.status, b"", url, None) from exc
    except aiohttp.ClientError as exc:
        raise VendorTransientError(f"vendor request failed ({_why(exc)}) [GET {url}]", url=url) from exc

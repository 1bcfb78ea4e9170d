"""The vendor's status codes become :mod:`mdw.errors` classes.

One function maps a status and body (transport failures are mapped by the transport, in
:mod:`mdw.polygon.transport`). Messages say what to do and carry the redacted URL, never the key.
"""

from __future__ import annotations

from mdw.errors import (
    NotEntitled,
    OutsidePlan,
    UnknownTicker,
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorNotFound,
    VendorPlanError,
    VendorRateLimited,
    VendorRequestError,
    VendorTransientError,
)
from mdw.logs import redact
from mdw.polygon.decode import error_detail, error_request_id

# 4xx codes that describe a passing condition rather than a bad request (the official client
# retries 413 and 499 too).
_TRANSIENT_4XX = frozenset({408, 413, 425, 499})


def status_error(status: int, body: bytes, url: str, retry_after: float | None,
                 header_request_id: str | None = None) -> VendorError:
    """The error for a non-200 answer; 4xx other than 408/413/425/429/499 are never retryable.

    The vendor's 403 says in its ``message`` which refusal it is: "doesn't include this data
    timeframe" (:class:`OutsidePlan`: before the plan's history, or in the future) or "not entitled"
    (:class:`NotEntitled`: the endpoint or market); another text stays a :class:`VendorPlanError`.
    A 404 that names the ticker is :class:`UnknownTicker`. Every error carries the vendor's message
    and ``request_id`` (from the body, else the ``X-Request-Id`` header), also in its text.
    """
    detail = redact(error_detail(body)) if body else ""
    rid = (error_request_id(body) if body else None) or header_request_id
    said = f": {detail}" if detail else ""
    where = f" [GET {url}]" + (f" (request_id {rid})" if rid else "")
    msg = detail or None
    if status == 429:
        wait = f"; vendor asked to wait {retry_after:g}s" if retry_after is not None else ""
        return VendorRateLimited(
            f"vendor rate limit exceeded (HTTP 429){wait}; lower MDW_RATE_LIMIT to the plan's limit{where}",
            status=status, url=url, retry_after=retry_after, request_id=rid, vendor_message=msg,
        )
    if status == 401:
        return VendorAuthError(
            f"unknown API key: the vendor refused it (HTTP 401{said}); check POLYGON_API_KEY{where}",
            status=status, url=url, request_id=rid, vendor_message=msg,
        )
    if status == 403:
        text = detail.lower()
        if "entitled" in text:
            return NotEntitled(f"not_entitled: the plan does not include this endpoint (HTTP 403{said})"
                               f"{where}", status=status, url=url, request_id=rid, vendor_message=msg)
        if "timeframe" in text:
            return OutsidePlan(f"outside_plan: the plan's history does not reach this range (HTTP 403{said})"
                               f"{where}", status=status, url=url, request_id=rid, vendor_message=msg)
        return VendorPlanError(
            f"plan does not include this data or range (HTTP 403{said}); request a later start or "
            f"upgrade the plan{where}",
            status=status, url=url, request_id=rid, vendor_message=msg,
        )
    if status == 404:
        if "ticker" in detail.lower():
            return UnknownTicker(f"unknown_ticker: the vendor does not know this ticker (HTTP 404{said}); "
                                 f"tickers are case-sensitive{where}", status=status, url=url, request_id=rid,
                                 vendor_message=msg)
        return VendorNotFound(f"not found at the vendor (HTTP 404{said}); check the ticker{where}",
                              status=status, url=url, request_id=rid, vendor_message=msg)
    if status >= 500 or status in _TRANSIENT_4XX:
        return VendorTransientError(f"vendor error (HTTP {status}{said}){where}", status=status, url=url,
                                    retry_after=retry_after, request_id=rid, vendor_message=msg)
    if status == 400:
        return VendorBadRequest(f"bad_request: the vendor could not read the request (HTTP 400{said}){where}",
                                status=status, url=url, request_id=rid, vendor_message=msg)
    if 400 <= status < 500:
        return VendorRequestError(f"vendor rejected the request (HTTP {status}{said}){where}",
                                  status=status, url=url, request_id=rid, vendor_message=msg)
    return VendorTransientError(f"unexpected vendor answer (HTTP {status}{said}){where}",
                                status=status, url=url, request_id=rid, vendor_message=msg)

"""The mdw error tree.

Every error mdw raises on purpose is an :class:`MdwError`. Whether an error is retryable depends on
its class, never on its message text. The tree is complete: ``tests/unit/test_errors.py`` checks
every exception class under ``src/mdw`` against it (classes defined outside this module name
their module)::

    MdwError
    ├── UsageError                 bad input from a user: exit code 2, HTTP 400
    │   ├── ConfigError            a setting has a bad value
    │   ├── NotStoredError         an unknown ticker or a series never stored: exit 2, HTTP 404
    │   └── ListingError           (mdw.simulator.listing) the simulator refuses a reference query: 400
    ├── ValidationError            a batch breaks a bar invariant (rows named, vendor bars kept)
    ├── IncompleteError            a read answered only in part (strict, or no corporate actions): 409
    ├── VendorError                anything the vendor boundary raises (status, url, retry_after)
    │   ├── VendorRequestError     4xx the vendor will answer the same way again: never retried
    │   │   ├── VendorAuthError    401: unknown or missing API key
    │   │   ├── VendorBadRequest   400 (bad_request): the vendor could not read the request
    │   │   ├── VendorPlanError    403: the plan does not include this data or range
    │   │   │   ├── OutsidePlan    (outside_plan) before the plan's history ("data timeframe")
    │   │   │   └── NotEntitled    (not_entitled) the plan lacks this endpoint or market
    │   │   └── VendorNotFound     404
    │   │       └── UnknownTicker  (unknown_ticker) the vendor does not know the ticker
    │   ├── VendorTransientError   worth retrying: 429, 5xx, timeouts, resets, bad bodies
    │   │   ├── VendorRateLimited  429
    │   │   ├── VendorTimeout      sent, then given up on: the vendor may still count it (late_s)
    │   │   ├── InvalidBarsError   (mdw.polygon.decode) a page holds bars that break OHLC invariants
    │   │   └── FrameError         (mdw.stream.decode) a WebSocket frame that is not an array of events
    │   └── VendorUnavailable      the circuit breaker is open: fail fast
    ├── StoreError                 the database failed or refused
    │   ├── SchemaVersionError     the database was migrated by a newer mdw
    │   └── CommitConflict         (mdw.store.lake.catalog) another writer moved the table's pointer
    └── ApiError                   (mdw.service.errors) an HTTP API answer: its status, code, message

Messages never contain the vendor API key: URLs are redacted before they are stored here. A
refusal's ``kind`` (``outside_plan``, ``not_entitled``, ``unknown_ticker``, ``bad_request``) names it
in reports and logs; ``request_id`` (what the vendor's support asks for) and ``vendor_message``
carry the vendor's own words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdw.domain import BarBatch


class MdwError(Exception):
    """Root of every error mdw raises on purpose."""


class UsageError(MdwError):
    """The user asked for something malformed; the message says what is accepted."""


class ConfigError(UsageError):
    """A configuration value is invalid; the message names the setting and the accepted form."""


class NotStoredError(UsageError):
    """The store holds nothing under this name (an unknown ticker, or a timeframe never stored).

    The message names what was asked, what is close (a did-you-mean) and what is held.
    """


class IncompleteError(MdwError):
    """A read the store can answer only in part, where a partial answer would mislead.

    Raised for strict reads of a partly held range, and for adjusted reads whose corporate
    actions were never fetched for the range (the message says how to fetch them). ``coverage``
    holds what is known of the range (a dict, as in a read's metadata) when there is one.
    """

    def __init__(self, message: str, coverage: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.coverage = coverage


class ValidationError(MdwError):
    """A bar batch violates an invariant; ``rows`` holds the offending row indexes.

    When the bars came from the vendor, ``bars`` holds the offending bars themselves, ``reasons``
    why each one is invalid (one per row of ``bars``) and ``url`` the redacted request URL, so the
    engine can quarantine them instead of dropping them.
    """

    def __init__(
        self,
        message: str,
        rows: list[int] | None = None,
        *,
        bars: BarBatch | None = None,
        reasons: Sequence[str] = (),
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rows: list[int] = rows or []
        self.bars = bars
        self.reasons: tuple[str, ...] = tuple(reasons)
        self.url = url


class VendorError(MdwError):
    """An error at the vendor boundary, carrying what a caller needs to decide what to do."""

    retryable: bool = False
    kind: str = "vendor_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        vendor_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.retry_after = retry_after
        self.request_id = request_id
        self.vendor_message = vendor_message


class VendorRequestError(VendorError):
    """The vendor rejected the request itself; retrying cannot help."""


class VendorAuthError(VendorRequestError):
    """Unknown or missing API key."""


class VendorBadRequest(VendorRequestError):
    """HTTP 400: the vendor could not read the request (a bad parameter, ``to`` before ``from``)."""

    kind = "bad_request"


class VendorPlanError(VendorRequestError):
    """The plan does not include this data or this time range (a 403 that does not say which)."""

    kind = "plan_refused"


class OutsidePlan(VendorPlanError):
    """The request reaches before the plan's history: the allowed part may be asked for again."""

    kind = "outside_plan"


class NotEntitled(VendorPlanError):
    """The plan lacks this endpoint or market: no date range will be answered."""

    kind = "not_entitled"


class VendorNotFound(VendorRequestError):
    """The vendor does not know this resource."""

    kind = "not_found"


class UnknownTicker(VendorNotFound):
    """The vendor does not know the ticker (its tickers are case-sensitive)."""

    kind = "unknown_ticker"


class VendorTransientError(VendorError):
    """A failure that may pass: 5xx, timeouts, connection resets, truncated or error bodies."""

    retryable = True


class VendorRateLimited(VendorTransientError):
    """HTTP 429: the plan's request rate was exceeded."""


class VendorTimeout(VendorTransientError):
    """A request timed out after it was sent: the vendor may read and count it later.

    ``late_s``: how long after this error the vendor may still stamp the request (the rate
    limiter keeps counting it until then); 0 when it cannot have been sent.
    """

    def __init__(self, message: str, *, url: str | None = None, late_s: float = 0.0) -> None:
        super().__init__(message, url=url)
        self.late_s = late_s


class VendorUnavailable(VendorError):
    """The circuit breaker is open; calls fail fast until a probe succeeds."""


class StoreError(MdwError):
    """The database failed or refused an operation."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of mdw understands."""

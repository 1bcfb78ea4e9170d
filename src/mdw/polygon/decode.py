"""Decode vendor bodies with msgspec straight into columns; never mistake a bad body for "no data".

Bars decode into small typed Structs (fields declared in the vendor's own key order ``v vw o c h l
t n``, which lets msgspec take its in-order fast path), then one ``np.fromiter`` pass flattens them
into a float64 matrix whose columns become the :class:`~mdw.domain.BarBatch`. No per-bar dict is
ever built. ``t`` and ``n`` round-trip exactly through float64 (both are far below 2**53).

Tolerated: a missing ``results`` (an empty range), ``status: DELAYED``, missing ``vw``/``n``,
fractional ``v``, index bars without ``v``/``vw``/``n``. Not tolerated (raise the retryable
:class:`~mdw.errors.VendorTransientError`): malformed or truncated JSON, a schema violation, and a
200 whose ``status`` is ``ERROR``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar

import msgspec
import numpy as np

from mdw.domain import BarBatch, Dividend, Split, Timeframe, reasons_by_row
from mdw.errors import VendorTransientError

NAN = math.nan
T = TypeVar("T")
Matrix = np.ndarray[Any, np.dtype[np.float64]]


class Bar(msgspec.Struct, kw_only=True, gc=False):
    """One aggregate bar as the vendor sends it; absent optional fields become NaN / 0."""

    v: float = NAN
    vw: float = NAN
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: int = 0


class GroupedBar(msgspec.Struct, kw_only=True, gc=False):
    """One row of a grouped-daily response: a bar plus its ticker ``T``."""

    T: str
    v: float = NAN
    vw: float = NAN
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    t: int
    n: int = 0


class _Envelope(msgspec.Struct, gc=False):
    status: str = ""
    next_url: str | None = None
    error: str | None = None
    message: str | None = None


class AggsPage(_Envelope, gc=False):
    results: list[Bar] | None = []  # ``"results": null`` is an empty page, as a missing key is


class GroupedPage(_Envelope, gc=False):
    results: list[GroupedBar] | None = []


class _DividendRow(msgspec.Struct, gc=False):
    id: str
    ticker: str
    ex_dividend_date: date
    cash_amount: float
    currency: str | None = None
    declaration_date: str | None = None
    record_date: str | None = None
    pay_date: str | None = None
    frequency: int | None = None
    dividend_type: str | None = None


class _SplitRow(msgspec.Struct, gc=False):
    ticker: str
    execution_date: date
    split_from: float
    split_to: float
    id: str = ""


class DividendsPage(_Envelope, gc=False):
    results: list[_DividendRow] = []


class SplitsPage(_Envelope, gc=False):
    results: list[_SplitRow] = []


class DictPage(_Envelope, gc=False):
    results: list[dict[str, Any]] = []


_AGGS = msgspec.json.Decoder(AggsPage)
_GROUPED = msgspec.json.Decoder(GroupedPage)
_DIVIDENDS = msgspec.json.Decoder(DividendsPage)
_SPLITS = msgspec.json.Decoder(SplitsPage)
_DICTS = msgspec.json.Decoder(DictPage)
_LIST = msgspec.json.Decoder(list[dict[str, Any]])
_ANY = msgspec.json.Decoder()
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_ERROR_STATUSES = frozenset({"ERROR", "NOT_AUTHORIZED", "NOT_FOUND"})


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, url: str) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        # Truncated or malformed: the bytes were damaged in transit or the vendor misbehaved.
        # Retryable, and never reported as an empty result.
        raise VendorTransientError(
            f"vendor returned an unreadable body ({len(body)} bytes): {exc}", status=200, url=url
        ) from exc


def _check(page: _Envelope, url: str) -> None:
    if page.status.upper() in _ERROR_STATUSES:
        detail = page.error or page.message or "no detail"
        raise VendorTransientError(
            f"vendor answered 200 with status {page.status}: {detail}", status=200, url=url
        )


def error_request_id(body: bytes) -> str | None:
    """The ``request_id`` of an error body (what the vendor's support asks for), when it has one."""
    try:
        data = _ANY.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("request_id"), str):
        return str(data["request_id"])[:64]
    return None


def error_detail(body: bytes) -> str:
    """The vendor's ``error`` / ``message`` text of an error body, or a short excerpt of it."""
    try:
        data = _ANY.decode(body)
    except msgspec.DecodeError:
        text = body[:500].decode("utf-8", "replace")
        title = _TITLE.search(text)  # a proxy's HTML error page: its title says it all
        return " ".join((title[1] if title else text[:120]).split())
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return ""


def bars_to_columns(bars: list[Bar] | list[GroupedBar]) -> Matrix:
    """An (8, n) float64 matrix of ``v vw o c h l t n`` rows, in one pass over the Structs."""
    n = len(bars)
    rows: Any
    if bars and isinstance(bars[0], Bar):
        rows = map(msgspec.structs.astuple, bars)  # C-level: Bar's field order is the row order
    else:
        rows = ((b.v, b.vw, b.o, b.c, b.h, b.l, b.t, b.n) for b in bars)
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=n * 8)
    return flat.reshape(n, 8).T


def batch_from_matrix(ticker: str, timeframe: Timeframe, m: Matrix) -> BarBatch:
    """A BarBatch from the (8, n) matrix of :func:`bars_to_columns`."""
    return BarBatch(
        ticker, timeframe,
        t=m[6].astype(np.int64), o=m[2], h=m[4], l=m[5], c=m[3], v=m[0], vw=m[1],
        n=m[7].astype(np.int64),
    )


class InvalidBarsError(VendorTransientError):
    """A page decoded but some bars break OHLC invariants (h < l, open/close outside, v < 0).

    Retried like a damaged body (a re-served page is usually clean); if every attempt shows bad
    bars the client raises :class:`~mdw.errors.ValidationError` instead, the class the store raises,
    carrying ``bars`` (the offending bars of this page) and ``reasons`` (one per bar) to quarantine.
    """

    def __init__(self, message: str, rows: list[int], url: str, *, bars: BarBatch,
                 reasons: Sequence[str]) -> None:
        super().__init__(message, status=200, url=url)
        self.rows = rows
        self.bars = bars
        self.reasons = tuple(reasons)


def check_bars(batch: BarBatch, url: str) -> BarBatch:
    """Return ``batch`` if every bar satisfies ``l <= o, c <= h`` with finite prices and ``v >= 0``.

    Raises:
        InvalidBarsError: naming the first offending bars, and holding all of them with their reasons.
    """
    if not len(batch):
        return batch
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(batch.o) & np.isfinite(batch.h) & np.isfinite(batch.l) & np.isfinite(batch.c)
              & (batch.l <= batch.o) & (batch.l <= batch.c) & (batch.o <= batch.h) & (batch.c <= batch.h)
              & ~(batch.v < 0))
    if bool(ok.all()):
        return batch
    rows = np.flatnonzero(~ok).tolist()
    shown = ", ".join(str(int(batch.t[i])) for i in rows[:5])
    raise InvalidBarsError(
        f"vendor served {len(rows)} invalid bar(s) for {batch.ticker} {batch.timeframe} (t={shown})",
        rows, url, bars=batch.take(np.asarray(rows, dtype=np.int64)), reasons=_reasons(batch, rows),
    )


def _reasons(batch: BarBatch, rows: list[int]) -> list[str]:
    """Why each of ``rows`` is invalid, in the words of :meth:`BarBatch.problems`."""
    why = reasons_by_row(batch.problems())
    return [why.get(i, "breaks an OHLC invariant") for i in rows]


def decode_aggs(body: bytes, ticker: str, timeframe: Timeframe, url: str) -> tuple[BarBatch, str | None]:
    """One aggregates page as a batch (unsorted, unfiltered) and its ``next_url``.

    Raises:
        VendorTransientError: the body is not a valid aggregates page, or says ERROR.
    """
    page = _decode(_AGGS, body, url)
    _check(page, url)
    if not page.results:
        return BarBatch.empty(ticker, timeframe), page.next_url
    return batch_from_matrix(ticker, timeframe, bars_to_columns(page.results)), page.next_url


def decode_grouped(body: bytes, url: str) -> list[GroupedBar]:
    """The rows of a grouped-daily response (one page, every ticker)."""
    page = _decode(_GROUPED, body, url)
    _check(page, url)
    return page.results or []


def _opt_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def decode_dividends(body: bytes, url: str) -> tuple[list[Dividend], str | None]:
    """One page of ``/v3/reference/dividends`` as domain objects, and its ``next_url``."""
    page = _decode(_DIVIDENDS, body, url)
    _check(page, url)
    out = [
        Dividend(
            id=r.id, ticker=r.ticker, ex_dividend_date=r.ex_dividend_date, cash_amount=r.cash_amount,
            currency=r.currency or "USD", declaration_date=_opt_date(r.declaration_date),
            record_date=_opt_date(r.record_date), pay_date=_opt_date(r.pay_date),
            frequency=r.frequency or 0, dividend_type=r.dividend_type or "CD",
        )
        for r in page.results
    ]
    return out, page.next_url


def decode_splits(body: bytes, url: str) -> tuple[list[Split], str | None]:
    """One page of ``/v3/reference/splits`` as domain objects, and its ``next_url``."""
    page = _decode(_SPLITS, body, url)
    _check(page, url)
    out = [
        Split(
            id=r.id or f"{r.ticker}-{r.execution_date.isoformat()}", ticker=r.ticker,
            execution_date=r.execution_date, split_from=r.split_from, split_to=r.split_to,
        )
        for r in page.results
    ]
    return out, page.next_url


def decode_dicts(body: bytes, url: str) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a reference endpoint whose rows are passed through as dicts."""
    page = _decode(_DICTS, body, url)
    _check(page, url)
    return page.results, page.next_url


def decode_list(body: bytes, url: str) -> list[dict[str, Any]]:
    """A bare JSON array of objects (``/v1/marketstatus/upcoming``)."""
    return _decode(_LIST, body, url)

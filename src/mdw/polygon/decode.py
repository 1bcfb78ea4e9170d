"""Decode vendor bodies with msgspec straight into columns; never mistake a bad body for "no data".

Bars decode into small typed Structs (fields declared in the vendor's own key order ``v vw o c h l
t n otc``, which lets msgspec take its in-order fast path), then one ``np.fromiter`` pass flattens
them into a float64 matrix whose rows become the :class:`~mdw.domain.BarBatch`'s columns. No per-bar
dict is ever built. ``t`` and ``n`` round-trip exactly through float64 (both are far below 2**53).
``otc`` (sent on OTC names only) is 1.0/0.0 in the matrix, NaN where a bar has none; any value other
than a JSON boolean is read as no flag.

Tolerated: a missing ``results`` (an empty range), ``status: DELAYED``, missing ``vw``/``n``,
fractional ``v``, index bars without ``v``/``vw``/``n``. A bar with a bad value (``null``, ``NaN``,
a string, a float ``t``, a value out of range: see :mod:`mdw.polygon.screen`) is an invalid bar
(:class:`InvalidBarsError`, a data error about the page, never an outage). Not tolerated (raise the
retryable :class:`~mdw.errors.VendorTransientError`): malformed or truncated JSON, an envelope that
is not an aggregates page, and a 200 whose ``status`` is ``ERROR``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from datetime import date
from typing import TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from mdw.domain import MISSING_N, BarBatch, Dividend, Split, Timeframe, otc_from_float, reasons_by_row
from mdw.errors import VendorTransientError
from mdw.logs import get_logger
from mdw.polygon import screen as scr

NAN = math.nan
_log = get_logger(__name__)
T = TypeVar("T")
Matrix = npt.NDArray[np.float64]


class Bar(msgspec.Struct, kw_only=True, gc=False):
    """One aggregate bar as the vendor sends it; absent optional fields become NaN.

    ``n`` is read as a float so that a huge count reaches the range check instead of wrapping.
    """

    v: float = NAN
    vw: float = NAN
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: float = NAN
    otc: bool | float = NAN  # a number is not a flag: dropped in bars_to_columns


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
    n: float = NAN
    otc: bool | float = NAN


class _Envelope(msgspec.Struct, gc=False):
    status: str = ""
    next_url: str | None = None
    error: str | None = None
    message: str | None = None


class AggsPage(_Envelope, gc=False):
    results: list[Bar] | None = []  # ``"results": null`` is an empty page, as a missing key is


class GroupedPage(_Envelope, gc=False):
    results: list[GroupedBar] | None = []


class DividendRow(msgspec.Struct, gc=False):
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


class SplitRow(msgspec.Struct, gc=False):
    ticker: str
    execution_date: date
    split_from: float
    split_to: float
    id: str = ""


class DividendsPage(_Envelope, gc=False):
    results: list[DividendRow] = []


class SplitsPage(_Envelope, gc=False):
    results: list[SplitRow] = []


class DictPage(_Envelope, gc=False):
    results: list[dict[str, object]] = []


_AGGS = msgspec.json.Decoder(AggsPage)
_GROUPED = msgspec.json.Decoder(GroupedPage)
_DIVIDENDS = msgspec.json.Decoder(DividendsPage)
_SPLITS = msgspec.json.Decoder(SplitsPage)
_DICTS = msgspec.json.Decoder(DictPage)
_LIST = msgspec.json.Decoder(list[dict[str, object]])
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
    """A (9, n) float64 matrix of ``v vw o c h l t n otc`` rows, in one pass over the Structs.

    The first eight rows are the values :mod:`mdw.polygon.screen` checks; the ninth is ``otc``
    (1.0, 0.0 or NaN).
    """
    n = len(bars)
    rows: Iterator[tuple[float, ...]]
    if bars and isinstance(bars[0], Bar):
        rows = map(msgspec.structs.astuple, bars)  # C-level: Bar's field order is the row order
    else:
        rows = ((b.v, b.vw, b.o, b.c, b.h, b.l, b.t, b.n, b.otc) for b in bars)
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=n * 9)
    m = np.ascontiguousarray(flat.reshape(n, 9).T)  # one transposing copy: rows become the batch's columns
    if n and bool(np.isfinite(m[8]).any()):
        m[8] = otc_flags(bars)  # a number sent as otc (not true/false) is no flag
    return m


def otc_flags(bars: Sequence[Bar | GroupedBar]) -> npt.NDArray[np.float64]:
    """``otc`` per bar: 1.0 or 0.0 where the vendor sent a JSON boolean, NaN otherwise."""
    return np.array([float(b.otc) if isinstance(b.otc, bool) else NAN for b in bars], dtype=np.float64)


def loose_otc(rows: Sequence[object]) -> npt.NDArray[np.float64]:
    """``otc`` of raw rows (the lenient path): 1.0 or 0.0 for a JSON boolean, NaN otherwise."""
    out = np.full(len(rows), NAN)
    for i, row in enumerate(rows):
        flag = row.get("otc") if isinstance(row, dict) else None
        if isinstance(flag, bool):
            out[i] = float(flag)
    return out




def batch_from_matrix(ticker: str, timeframe: Timeframe, m: Matrix, *, clean: bool = False) -> BarBatch:
    """A BarBatch from the (9, n) matrix of :func:`bars_to_columns` (``t``/``n`` never wrap).

    Args:
        clean: :func:`mdw.polygon.screen.screen` found no bad value in ``m`` (so ``t`` and ``n`` are
            whole numbers in range, ``n`` perhaps NaN): they convert without the range masks, and a
            page without any ``otc`` flag takes the batch's own "no flag" column.
    """
    if clean:
        t = m[6].astype(np.int64)
        n_nan = np.isnan(m[7])
        n = np.where(n_nan, float(MISSING_N), m[7]).astype(np.int64) if n_nan.any() else m[7].astype(np.int64)
        if np.isnan(m[8]).all():
            return BarBatch(ticker, timeframe, t=t, o=m[2], h=m[4], l=m[5], c=m[3], v=m[0], vw=m[1], n=n)
        return BarBatch(ticker, timeframe, t=t, o=m[2], h=m[4], l=m[5], c=m[3], v=m[0], vw=m[1], n=n,
                        otc=otc_from_float(m[8]))
    return BarBatch(
        ticker, timeframe,
        t=scr.to_int(m[6], 0), o=m[2], h=m[4], l=m[5], c=m[3], v=m[0], vw=m[1],
        n=scr.to_int(m[7], MISSING_N), otc=otc_from_float(m[8]),
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


def check_bars(batch: BarBatch, url: str, why: scr.Reasons | None = None) -> BarBatch:
    """Return ``batch`` if every bar satisfies ``0 < l <= o, c <= h`` with finite prices,
    ``v >= 0``, and no ``t`` repeats with other values.

    Args:
        why: reasons already found for rows of ``batch`` (bad or out-of-range values).

    Raises:
        InvalidBarsError: naming the first offending bars and the reasons, and holding all of them
            with their reasons.
    """
    if not len(batch):
        return batch
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(batch.o) & np.isfinite(batch.h) & np.isfinite(batch.l) & np.isfinite(batch.c)
              & (batch.l <= batch.o) & (batch.l <= batch.c) & (batch.o <= batch.h) & (batch.c <= batch.h)
              & (batch.l > 0) & ~(batch.v < 0))
    conflicts = _conflicting_duplicates(batch, set(why or ()))
    if bool(ok.all()) and not why and not conflicts:
        return batch
    found: dict[int, list[str]] = {i: list(r) for i, r in (why or {}).items()}
    for i in conflicts:
        found.setdefault(i, []).append("duplicate timestamp with different values")
    for i in np.flatnonzero(~ok).tolist():
        found.setdefault(i, [])
    rows = sorted(found)
    reasons = _reasons(batch, rows, found)
    shown = ", ".join(str(int(batch.t[i])) for i in rows[:5])
    kinds = "; ".join(dict.fromkeys(r.split(" (", 1)[0] for text in reasons for r in text.split("; ")))
    raise InvalidBarsError(
        f"vendor served {len(rows)} invalid bar(s) for {batch.ticker} {batch.timeframe} (t={shown}): {kinds}",
        rows, url, bars=batch.take(np.asarray(rows, dtype=np.int64)), reasons=reasons,
    )


def _conflicting_duplicates(batch: BarBatch, refused: set[int]) -> list[int]:
    """Rows whose ``t`` appears more than once in the page with different values (which one is
    right is unknown, so all of them are refused); identical repeats are left to de-duplication.
    Rows in ``refused`` (already invalid, their ``t`` perhaps unusable) take no part."""
    t = batch.t
    if len(t) < 2 or bool(np.all(t[1:] > t[:-1])):
        return []
    order = np.argsort(t, kind="stable")
    if refused:
        order = np.asarray([i for i in order.tolist() if i not in refused], dtype=np.int64)
    st = t[order]
    dup = np.flatnonzero(st[1:] == st[:-1])
    if not len(dup):
        return []
    bad: set[int] = set()
    cols = [getattr(batch, name) for name in ("o", "h", "l", "c", "v", "vw", "n")]
    for k in dup.tolist():
        a, b = int(order[k]), int(order[k + 1])
        if not all(x[a] == x[b] or (x[a] != x[a] and x[b] != x[b]) for x in cols):  # NaN == NaN
            bad.update((a, b))
    for k in dup.tolist():  # a row equal to a conflicting neighbour of its t is refused too
        a, b = int(order[k]), int(order[k + 1])
        if a in bad or b in bad:
            bad.update((a, b))
    return sorted(bad)


def _reasons(batch: BarBatch, rows: list[int], found: dict[int, list[str]]) -> list[str]:
    """Why each of ``rows`` is invalid: ``found`` first, then the words of :meth:`BarBatch.problems`."""
    why = reasons_by_row([p for p in batch.problems() if p.reason not in _ORDER_PROBLEMS])
    out = []
    for i in rows:
        parts = list(found.get(i, []))
        if i in why and not parts:
            parts.append(why[i])
        out.append("; ".join(parts) or "breaks an OHLC invariant")
    return out


# a page may arrive unsorted or repeat a bar; clip() sorts it, so these are not reasons here
_ORDER_PROBLEMS = frozenset({"duplicate timestamp", "timestamp out of order"})


def decode_aggs(body: bytes, ticker: str, timeframe: Timeframe, url: str) -> tuple[BarBatch, str | None]:
    """One aggregates page as a batch (unsorted, unfiltered) and its ``next_url``.

    Raises:
        VendorTransientError: the body is not a valid aggregates page, or says ERROR.
    """
    try:
        page = _AGGS.decode(body)
    except msgspec.DecodeError as exc:
        m, why, next_url = _loose_aggs(body, url, exc)  # a bad value, or an unreadable body
    else:
        _check(page, url)
        if not page.results:
            return BarBatch.empty(ticker, timeframe), page.next_url
        m, why, next_url = bars_to_columns(page.results), {}, page.next_url
    why = scr.screen(m, why)
    batch = batch_from_matrix(ticker, timeframe, m, clean=not why)
    if why:
        check_bars(batch, url, why)  # raises InvalidBarsError naming every bad bar
    return batch, next_url


def _loose_aggs(body: bytes, url: str, exc: msgspec.DecodeError) -> tuple[Matrix, scr.Reasons, str | None]:
    """Read a page the strict decoder refused; only a body that is not an aggregates page at all
    (truncated, malformed, a wrong envelope) is unreadable."""
    data = scr.loose_body(body)
    rows = data.get("results") if data is not None else None
    if data is None or not _envelope_ok(data) or not isinstance(rows, list | None):
        raise _unreadable(body, url, exc) from exc
    _check_loose(data, url)
    m, why = scr.loose_matrix(rows or [])
    return np.vstack([m, loose_otc(rows or [])]), why, _text(data, "next_url")


def _envelope_ok(data: dict[str, object]) -> bool:
    return all(isinstance(data.get(k), str | None) for k in ("status", "next_url", "error", "message"))


def _check_loose(data: dict[str, object], url: str) -> None:
    envelope = _Envelope(status=_text(data, "status") or "", error=_text(data, "error"),
                         message=_text(data, "message"))
    _check(envelope, url)


def _text(data: dict[str, object], key: str) -> str | None:
    """``data[key]`` when it is a string (:func:`_envelope_ok` has checked it is one or absent)."""
    value = data.get(key)
    return value if isinstance(value, str) else None


def _unreadable(body: bytes, url: str, exc: Exception) -> VendorTransientError:
    return VendorTransientError(f"vendor returned an unreadable body ({len(body)} bytes): {exc}", status=200,
                                url=url)


def decode_grouped(body: bytes, url: str) -> list[GroupedBar]:
    """The usable rows of a grouped-daily response (one page, every ticker).

    A row with a bad value is left out (logged with its reason): its ticker is then absent from the
    day, and the backfill asks for it on its own, where a bad bar is quarantined like any other.
    """
    try:
        page = _GROUPED.decode(body)
    except msgspec.DecodeError as exc:
        data = scr.loose_body(body)
        raw = data.get("results") if data is not None else None
        if data is None or not isinstance(raw, list | None) or not _envelope_ok(data):
            raise _unreadable(body, url, exc) from exc
        _check_loose(data, url)
        raw = raw or []
        m, why = scr.loose_matrix(raw)
        tickers = [r.get("T") if isinstance(r, dict) else None for r in raw]
        for i, tk in enumerate(tickers):
            if not isinstance(tk, str) or not tk:
                why.setdefault(i, []).append("T is missing")
        why = scr.screen(m, why)
        v, vw, o, c, h, lo, t, n = m.tolist()
        otc = loose_otc(raw).tolist()
        rows = [GroupedBar(T=str(tk), v=v[i], vw=vw[i], o=o[i], c=c[i], h=h[i], l=lo[i], t=int(t[i]), n=n[i],
                           otc=otc[i]) for i, tk in enumerate(tickers) if i not in why]
        _log_left_out(raw, tickers, why, url)
        return rows
    _check(page, url)
    rows = page.results or []
    why = scr.screen(bars_to_columns(rows)) if rows else {}
    if not why:
        return rows
    _log_left_out(rows, [r.T for r in rows], why, url)
    return [r for i, r in enumerate(rows) if i not in why]


def _log_left_out(rows: Sequence[object], tickers: Sequence[object], why: scr.Reasons, url: str) -> None:
    shown = "; ".join(f"{tickers[i]!s}: {', '.join(r)}" for i, r in list(why.items())[:5])
    _log.warning("grouped daily rows with bad values left out (their tickers are asked for on their own)",
                 action="vendor.bad_values", rows=len(why), of=len(rows), reasons=shown, url=url)


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


def decode_dicts(body: bytes, url: str) -> tuple[list[dict[str, object]], str | None]:
    """One page of a reference endpoint whose rows are passed through as dicts."""
    page = _decode(_DICTS, body, url)
    _check(page, url)
    return page.results, page.next_url


def decode_list(body: bytes, url: str) -> list[dict[str, object]]:
    """A bare JSON array of objects (``/v1/marketstatus/upcoming``)."""
    return _decode(_LIST, body, url)

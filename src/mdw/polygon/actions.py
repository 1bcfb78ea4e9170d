"""Corporate actions of many tickers at once: the ``/stocks/v1`` listings, and v3 as their fallback.

``/stocks/v1/dividends`` and ``/stocks/v1/splits`` answer every ticker's events in a date range,
5,000 a page, with the vendor's ``historical_adjustment_factor`` (kept to cross-check mdw's own
factors) and, for splits, an ``adjustment_type`` that names stock dividends. The deprecated
``/v3/reference/{dividends,splits}`` take the same date filters (1,000 a page) and are asked
instead when a plan (or a simulator) does not serve v1. Without a ticker filter both are
market-wide. Stock dividends are splits to mdw: a share change that adjusts prices and volumes
like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import msgspec

from mdw.domain import Dividend, Split
from mdw.polygon.decode import DividendRow, SplitRow, _check, _decode, _Envelope, _opt_date

ActionKind = Literal["dividends", "splits"]
V1_PAGE = 5000
V3_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed action and the vendor's cumulative ``historical_adjustment_factor`` (v1 only)."""

    action: Dividend | Split
    factor: float | None = None
    adjustment_type: str = ""


def path(kind: ActionKind, v1: bool) -> str:
    return f"/stocks/v1/{kind}" if v1 else f"/v3/reference/{kind}"


def params(kind: ActionKind, first: date, last: date, tickers: tuple[str, ...], v1: bool) -> dict[str, str]:
    """Query parameters for the actions of ``tickers`` (all when empty) dated ``first``..``last``."""
    col = "ex_dividend_date" if kind == "dividends" else "execution_date"
    out = {f"{col}.gte": first.isoformat(), f"{col}.lte": last.isoformat()}
    if v1:
        out |= {"limit": str(V1_PAGE), "sort": f"{col}.asc,ticker.asc"}
        if len(tickers) == 1:
            out["ticker"] = tickers[0]
        elif tickers:
            out["ticker.any_of"] = ",".join(tickers)
    else:
        out |= {"limit": str(V3_PAGE), "order": "asc", "sort": col}
        if tickers:
            out["ticker"] = tickers[0]
    return out


class _V1Dividend(DividendRow, gc=False):
    """A dividend of the v1 listing (or v3, which has ``dividend_type``): the per-ticker row plus
    the v1 fields mdw reads."""

    distribution_type: str | None = None
    historical_adjustment_factor: float | None = None


class _V1Split(SplitRow, gc=False):
    """A split of the v1 listing: the per-ticker row plus the v1 fields mdw reads."""

    adjustment_type: str | None = None
    historical_adjustment_factor: float | None = None


class _DividendPage(_Envelope, gc=False):
    results: list[_V1Dividend] | None = None


class _SplitPage(_Envelope, gc=False):
    results: list[_V1Split] | None = None


_DIVS = msgspec.json.Decoder(_DividendPage)
_SPLITS = msgspec.json.Decoder(_SplitPage)
# v1's distribution_type in v3's dividend_type words (CD: consistent, SC: special cash)
_TYPES = {"special": "SC", "recurring": "CD", "supplemental": "CD", "irregular": "CD", "unknown": "CD"}


def decode_dividends(body: bytes, url: str) -> tuple[list[Listed], str | None]:
    """One page of v1 or v3 dividends, and its ``next_url``."""
    page = _decode(_DIVS, body, url)
    _check(page, url)
    out = [Listed(Dividend(
        id=r.id, ticker=r.ticker, ex_dividend_date=r.ex_dividend_date, cash_amount=r.cash_amount,
        currency=r.currency or "USD", declaration_date=_opt_date(r.declaration_date),
        record_date=_opt_date(r.record_date), pay_date=_opt_date(r.pay_date), frequency=r.frequency or 0,
        dividend_type=r.dividend_type or _TYPES.get(r.distribution_type or "", "CD"),
    ), r.historical_adjustment_factor) for r in page.results or []]
    return out, page.next_url


def decode_splits(body: bytes, url: str) -> tuple[list[Listed], str | None]:
    """One page of v1 or v3 splits (stock dividends included), and its ``next_url``."""
    page = _decode(_SPLITS, body, url)
    _check(page, url)
    out = [Listed(Split(
        id=r.id or f"{r.ticker}-{r.execution_date.isoformat()}", ticker=r.ticker,
        execution_date=r.execution_date, split_from=r.split_from, split_to=r.split_to,
    ), r.historical_adjustment_factor, r.adjustment_type or "") for r in page.results or []]
    return out, page.next_url

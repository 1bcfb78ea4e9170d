"""Tickers as the vendor spells them: a mixed-case ticker the reference data does not know is refused.

The vendor's tickers are case-sensitive: ``KIMpL`` (a preferred share) and ``KIMPL`` (another
company) are two securities, and ``kimpl`` is neither. mdw keeps every ticker as written, so a
lower-case typo would otherwise be asked for as is, answered empty, and silently hold nothing.
Before a run, each stock ticker with a lower-case letter is looked up in the reference data (the
store's listings, else the vendor's ticker details: one request) and refused with the tickers the
vendor's search finds for it. Capitalised tickers, the vendor's usual spelling, are not looked
up in advance: an empty answer for one the reference data does not know is ``unknown_ticker``
(:func:`mdw.backfill.fetch.require_known`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mdw.backfill.answer import did_you_mean
from mdw.domain import AssetClass, Ticker
from mdw.errors import UsageError
from mdw.store.base import Store
from mdw.store.refdata import ListingFilter


class TickerReference(Protocol):
    """The vendor calls a ticker check makes (:class:`~mdw.polygon.PolygonClient` has them)."""

    async def ticker_known(self, ticker: str) -> bool: ...

    async def ticker_search(self, text: str) -> list[str]: ...


def needs_check(tk: Ticker) -> bool:
    """Whether ``tk`` is looked up before a run: a stock ticker with a lower-case letter."""
    return tk.asset_class is AssetClass.STOCKS and tk.symbol != tk.symbol.upper()


async def check_tickers(tickers: Sequence[Ticker], store: Store, vendor: TickerReference | None) -> None:
    """Refuse the mixed-case tickers neither the stored reference data nor the vendor knows.

    Without a vendor (a dry run without a key) only the stored listings can vouch for a ticker;
    one they do not hold is let through then.

    Raises:
        UsageError: one line per unknown ticker, each with a did-you-mean from reference data.
    """
    problems: list[str] = []
    for tk in tickers:
        if not needs_check(tk):
            continue
        if await store.reference.listings(ListingFilter(tickers=(tk.symbol,))):
            continue
        if vendor is None or await vendor.ticker_known(tk.symbol):
            continue
        near = ListingFilter(tickers=_spellings(tk.symbol))
        stored = [x.ticker for x in await store.reference.listings(near)]
        found = await vendor.ticker_search(tk.symbol)
        hint = did_you_mean(tk.symbol, [*stored, *found])
        problems.append(f"unknown ticker {tk.symbol!r}: the vendor's reference data does not know it"
                        f" (tickers are case-sensitive).{hint}")
    if problems:
        raise UsageError("; ".join(p.rstrip(".") for p in problems))


def _spellings(symbol: str) -> tuple[str, ...]:
    """The capitalised form and the vendor's preferred-share form (``KIMpL``) of ``symbol``."""
    up = symbol.upper()
    forms = [up]
    if len(up) >= 3:
        forms.append(up[:-2] + "p" + up[-1])
    return tuple(dict.fromkeys(forms))

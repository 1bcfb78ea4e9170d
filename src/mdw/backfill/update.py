"""``mdw update``: every tracked symbol, its timeframes, from its start up to now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from mdw.backfill.plan import BackfillSpec
from mdw.domain import AssetClass, Ticker, parse_timeframes
from mdw.store.base import RunKind, Store


async def update_specs(
    store: Store, *, default_days: int = 365, today: date | None = None
) -> list[BackfillSpec]:
    """One spec per (timeframes, start) group of the active tracked symbols, ending today.

    Symbols tracked without timeframes get daily bars; without a start date, ``default_days``.
    """
    now = today or datetime.now(UTC).date()
    groups: dict[tuple[tuple[str, ...], date], list[Ticker]] = {}
    for info in await store.symbols.all(active_only=True):
        tfs = tuple(info.timeframes) or ("1d",)
        start = date.fromisoformat(info.start_date) if info.start_date else now - timedelta(days=default_days)
        groups.setdefault((tfs, start), []).append(Ticker(info.ticker, AssetClass(info.asset_class)))
    return [
        BackfillSpec(
            tuple(tickers),
            tuple(parse_timeframes(list(tfs))),
            start,
            now + timedelta(days=1),
            corporate_actions=True,
            kind=RunKind.UPDATE,
        )
        for (tfs, start), tickers in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]

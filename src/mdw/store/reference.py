"""Reference data and universes over a backend's :class:`~mdw.store.primitives.Database`.

Listings are replaced wholesale by a refresh (one transaction, so a reader sees the old set or
the new one, never a mix); "listed during [first, last]" is one indexed range condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from mdw.clock import now_ms
from mdw.errors import StoreError
from mdw.store.primitives import Database, Dialect, SqlValue, Tx, placeholders
from mdw.store.refdata import (
    ListingFilter,
    OptionContract,
    RefreshRecord,
    TickerChange,
    TickerListing,
    UniverseRecord,
)
from mdw.store.rows import (
    as_bool,
    as_date,
    as_float,
    as_int,
    as_json,
    as_opt_date,
    as_str,
    dump_json,
)

LISTING_COLUMNS = (
    "ticker", "valid_from", "valid_to", "name", "market", "locale", "primary_exchange", "type", "active",
    "currency", "cik", "composite_figi", "share_class_figi", "list_date", "delisted_date",
)
CONTRACT_COLUMNS = (
    "ticker", "underlying", "expiration_date", "contract_type", "strike_price", "as_of",
    "shares_per_contract", "exercise_style", "primary_exchange",
)
_REFRESH_UPSERT = (
    "INSERT INTO ref_refreshes (kind, refreshed_at_ms, row_count, requests) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (kind) DO UPDATE SET refreshed_at_ms = excluded.refreshed_at_ms,"
    " row_count = excluded.row_count, requests = excluded.requests"
)


def _opt_str(value: object) -> str | None:
    return None if value is None else as_str(value)


def listing_values(d: Dialect, x: TickerListing) -> tuple[SqlValue, ...]:
    return (x.ticker, d.date(x.valid_from), d.date(x.valid_to), x.name, x.market, x.locale,
            x.primary_exchange, x.type, x.active, x.currency, x.cik, x.composite_figi,
            x.share_class_figi, d.date(x.list_date), d.date(x.delisted_date))


def listing_from_row(r: tuple[object, ...]) -> TickerListing:
    return TickerListing(
        ticker=as_str(r[0]), valid_from=as_date(r[1]), valid_to=as_opt_date(r[2]), name=as_str(r[3]),
        market=as_str(r[4]), locale=as_str(r[5]), primary_exchange=_opt_str(r[6]), type=_opt_str(r[7]),
        active=as_bool(r[8]), currency=_opt_str(r[9]), cik=_opt_str(r[10]), composite_figi=_opt_str(r[11]),
        share_class_figi=_opt_str(r[12]), list_date=as_opt_date(r[13]), delisted_date=as_opt_date(r[14]),
    )


def _contract_from_row(r: tuple[object, ...]) -> OptionContract:
    return OptionContract(
        ticker=as_str(r[0]), underlying=as_str(r[1]), expiration_date=as_date(r[2]),
        contract_type=as_str(r[3]), strike_price=as_float(r[4]), as_of=as_date(r[5]),
        shares_per_contract=None if r[6] is None else as_float(r[6]), exercise_style=_opt_str(r[7]),
        primary_exchange=_opt_str(r[8]),
    )


def _in(column: str, values: tuple[str, ...], where: list[str], args: list[SqlValue]) -> None:
    if values:
        where.append(f"{column} IN ({placeholders(len(values))})")
        args.extend(values)


class SqlReference:
    """:class:`~mdw.store.refdata.ReferenceStore` over a database."""

    _SELECT = f"SELECT {', '.join(LISTING_COLUMNS)} FROM ref_tickers"

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def replace_tickers(
        self, listings: Sequence[TickerListing], changes: Sequence[TickerChange], *, requests: int
    ) -> None:
        d = self._db.dialect
        insert = (f"INSERT INTO ref_tickers ({', '.join(LISTING_COLUMNS)})"
                  f" VALUES ({placeholders(len(LISTING_COLUMNS))})")
        # The vendor may list one (ticker, first day) twice (two pages of a moving list): last wins.
        unique = {(x.ticker, x.valid_from): x for x in listings}
        moves = {(c.composite_figi, c.date, c.ticker): c for c in changes}
        async with self._db.transaction("replace_tickers") as tx:
            await tx.execute("DELETE FROM ref_tickers")
            await tx.execute("DELETE FROM ref_ticker_changes")
            await tx.executemany(insert, [listing_values(d, x) for x in unique.values()])
            await tx.executemany(
                "INSERT INTO ref_ticker_changes (composite_figi, date, ticker, cik) VALUES (?, ?, ?, ?)",
                [(c.composite_figi, d.date(c.date), c.ticker, c.cik) for c in moves.values()],
            )
            await tx.execute(_REFRESH_UPSERT, "tickers", now_ms(), len(unique), int(requests))

    async def listings(self, where: ListingFilter = ListingFilter()) -> list[TickerListing]:
        d = self._db.dialect
        conds: list[str] = []
        args: list[SqlValue] = []
        _in("market", where.markets, conds, args)
        _in("type", where.types, conds, args)
        _in("primary_exchange", where.exchanges, conds, args)
        _in("ticker", where.tickers, conds, args)
        if where.last is not None:
            conds.append("valid_from <= ?")
            args.append(d.date(where.last))
        if where.first is not None:
            conds.append("(valid_to IS NULL OR valid_to >= ?)")
            args.append(d.date(where.first))
        where_sql = " WHERE " + " AND ".join(conds) if conds else ""
        sql = self._SELECT + where_sql + " ORDER BY ticker, valid_from"
        return [listing_from_row(r) for r in await self._db.fetch("ref_listings", sql, *args)]

    async def history(self, ident: str) -> list[TickerListing]:
        rows = await self._db.fetch(
            "ref_history", self._SELECT + " WHERE ticker = ? ORDER BY valid_from DESC LIMIT 1", ident)
        if rows:
            latest = listing_from_row(rows[0])
            if latest.composite_figi is None and latest.cik is None:
                return [latest]
            column, value = (("composite_figi", latest.composite_figi) if latest.composite_figi
                             else ("cik", latest.cik))
        else:
            column, value = ("composite_figi", ident)
            if not await self._db.fetch("ref_history", "SELECT 1 FROM ref_tickers WHERE composite_figi = ?",
                                        ident):
                column = "cik"
        found = await self._db.fetch(
            "ref_history", self._SELECT + f" WHERE {column} = ? ORDER BY valid_from, ticker", value)
        out = [listing_from_row(r) for r in found]
        if column == "cik":  # a CIK names a company: keep the line of its first security's FIGI
            figis = {x.composite_figi for x in out if x.composite_figi}
            if len(figis) > 1:
                keep = out[-1].composite_figi
                out = [x for x in out if x.composite_figi == keep]
        return out

    async def changes(self, composite_figi: str) -> list[TickerChange]:
        rows = await self._db.fetch(
            "ref_changes",
            "SELECT composite_figi, date, ticker, cik FROM ref_ticker_changes WHERE composite_figi = ?"
            " ORDER BY date, ticker", composite_figi)
        return [TickerChange(as_str(r[0]), as_date(r[1]), as_str(r[2]), _opt_str(r[3])) for r in rows]

    async def upsert_contracts(
        self, kind: str, contracts: Sequence[OptionContract], *, requests: int
    ) -> None:
        d = self._db.dialect
        rest = [c for c in CONTRACT_COLUMNS if c != "ticker"]
        sql = (f"INSERT INTO ref_option_contracts ({', '.join(CONTRACT_COLUMNS)})"
               f" VALUES ({placeholders(len(CONTRACT_COLUMNS))}) ON CONFLICT (ticker) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in rest))
        unique = {c.ticker: c for c in contracts}
        rows = [(c.ticker, c.underlying, d.date(c.expiration_date), c.contract_type, float(c.strike_price),
                 d.date(c.as_of), c.shares_per_contract, c.exercise_style, c.primary_exchange)
                for c in unique.values()]
        async with self._db.transaction("upsert_contracts") as tx:
            await tx.executemany(sql, rows)
            await tx.execute(_REFRESH_UPSERT, kind, now_ms(), len(rows), int(requests))

    async def contracts(
        self, underlying: str, first: date | None = None, last: date | None = None
    ) -> list[OptionContract]:
        d = self._db.dialect
        conds, args = ["underlying = ?"], [underlying]  # type: list[str], list[SqlValue]
        if first is not None:
            conds.append("expiration_date >= ?")
            args.append(d.date(first))
        if last is not None:
            conds.append("expiration_date <= ?")
            args.append(d.date(last))
        rows = await self._db.fetch(
            "ref_contracts",
            f"SELECT {', '.join(CONTRACT_COLUMNS)} FROM ref_option_contracts WHERE {' AND '.join(conds)}"
            " ORDER BY ticker", *args)
        return [_contract_from_row(r) for r in rows]

    async def refreshes(self) -> list[RefreshRecord]:
        rows = await self._db.fetch(
            "ref_refreshes",
            "SELECT kind, refreshed_at_ms, row_count, requests FROM ref_refreshes ORDER BY kind")
        return [RefreshRecord(as_str(r[0]), as_int(r[1]), as_int(r[2]), as_int(r[3])) for r in rows]


class SqlUniverses:
    """:class:`~mdw.store.refdata.UniverseStore` over a database."""

    _SELECT = "SELECT name, spec, created_at_ms, updated_at_ms FROM universes"

    def __init__(self, db: Database[Tx]) -> None:
        self._db = db

    async def save(self, name: str, spec: dict[str, Any]) -> UniverseRecord:
        at = now_ms()
        await self._db.execute(
            "save_universe",
            "INSERT INTO universes (name, spec, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms",
            name, dump_json(spec), at, at)
        saved = await self.get(name)
        if saved is None:
            raise StoreError(f"universe {name!r} was written but cannot be read back")
        return saved

    async def get(self, name: str) -> UniverseRecord | None:
        rows = await self._db.fetch("universe", self._SELECT + " WHERE name = ?", name)
        return _universe(rows[0]) if rows else None

    async def all(self) -> list[UniverseRecord]:
        return [_universe(r) for r in await self._db.fetch("universes", self._SELECT + " ORDER BY name")]

    async def delete(self, name: str) -> bool:
        return await self._db.execute("delete_universe", "DELETE FROM universes WHERE name = ?", name) > 0


def _universe(r: tuple[object, ...]) -> UniverseRecord:
    return UniverseRecord(as_str(r[0]), as_json(r[1]), as_int(r[2]), as_int(r[3]))

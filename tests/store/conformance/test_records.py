"""Corporate actions, symbols, runs, API keys, the audit log and summaries: the same on every backend."""

from __future__ import annotations

from datetime import date

from mdw.domain import Dividend, RangeSet, Split
from mdw.store import (
    ActionWrite,
    ApiKeyRecord,
    Dataset,
    RunKind,
    RunRecord,
    RunStatus,
    SeriesStats,
    Store,
    SymbolInfo,
    WriteResult,
)

from ..conftest import Backend
from ..helpers import D1, M1, days, make_batch, write

YEARS = days(date(2020, 1, 1), date(2024, 12, 31))


def _dividend(n: int, amount: float = 0.24) -> Dividend:
    return Dividend(
        id=f"D{n}",
        ticker="AAPL",
        ex_dividend_date=date(2024, 2, n),
        cash_amount=amount,
        declaration_date=date(2024, 1, n),
        record_date=None,
        pay_date=date(2024, 3, n),
        frequency=4,
    )


async def test_corporate_actions_round_trip_and_upsert_by_vendor_id(store: Store) -> None:
    """Actions are keyed by vendor id: a replay changes nothing, a correction updates one row."""
    divs = [_dividend(1), _dividend(2)]
    splits = [Split("S1", "AAPL", date(2020, 8, 31), 1.0, 4.0)]
    first = await store.actions.write("AAPL", divs, splits, YEARS)
    replay = await store.actions.write("AAPL", divs, splits, YEARS)
    fixed = await store.actions.write("AAPL", [_dividend(1), _dividend(2, 0.25)], None, YEARS)
    assert first == WriteResult(inserted=3)
    assert replay == WriteResult(unchanged=3)
    assert fixed == WriteResult(updated=1, unchanged=1)
    assert await store.actions.dividends("AAPL") == [_dividend(1), _dividend(2, 0.25)]
    assert await store.actions.splits("AAPL") == splits
    assert await store.actions.dividends("MSFT") == []


async def test_corporate_actions_record_coverage_only_for_the_kinds_written(store: Store) -> None:
    """Writing splits only (even none: confirmed empty) covers splits, not dividends."""
    await store.actions.write("AAPL", None, [], YEARS)
    assert await store.coverage("AAPL", Dataset.SPLITS) == RangeSet.of([YEARS])
    assert await store.coverage("AAPL", Dataset.DIVIDENDS) == RangeSet()


async def test_many_tickers_actions_and_their_coverage_commit_in_one_call(store: Store) -> None:
    """``write_many``: several tickers' actions and each one's coverage in one transaction, counted
    as ``write`` counts them; a kind not fetched (None) is not covered."""
    msft = Dividend("M1", "MSFT", date(2024, 2, 14), 0.75, frequency=4)
    result = await store.actions.write_many([
        ActionWrite("AAPL", [_dividend(1), _dividend(2)], None, YEARS),
        ActionWrite("MSFT", [msft], None, YEARS),
        ActionWrite("IBM", [], None, YEARS),  # confirmed: no dividend
    ])
    assert result == WriteResult(inserted=3)
    assert await store.actions.dividends("AAPL") == [_dividend(1), _dividend(2)]
    assert await store.actions.dividends("MSFT") == [msft]
    for ticker in ("AAPL", "MSFT", "IBM"):
        assert await store.coverage(ticker, Dataset.DIVIDENDS) == RangeSet.of([YEARS])
        assert await store.coverage(ticker, Dataset.SPLITS) == RangeSet()
    again = await store.actions.write_many(
        [ActionWrite("AAPL", None, [], YEARS), ActionWrite("MSFT", [msft], None, YEARS)])
    assert again == WriteResult(unchanged=1)
    assert await store.coverage("AAPL", Dataset.SPLITS) == RangeSet.of([YEARS])


async def test_symbols_upsert_list_get_and_stop_tracking(store: Store) -> None:
    """Symbols are upserted by ticker and read one at a time or all; delete without purge only deactivates."""
    await store.symbols.upsert(SymbolInfo("MSFT", "stocks", "Microsoft", True, ("1d",), "2020-01-01"))
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks", "Apple", True, ("1m", "1d")))
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks", "Apple Inc.", True, ("1d",)))
    assert await store.symbols.delete("MSFT") is True
    assert await store.symbols.delete("NOPE") is False
    assert await store.symbols.all() == [
        SymbolInfo("AAPL", "stocks", "Apple Inc.", True, ("1d",)),
        SymbolInfo("MSFT", "stocks", "Microsoft", False, ("1d",), "2020-01-01"),
    ]
    assert [s.ticker for s in await store.symbols.all(active_only=True)] == ["AAPL"]
    msft = SymbolInfo("MSFT", "stocks", "Microsoft", False, ("1d",), "2020-01-01")
    assert await store.symbols.get("MSFT") == msft
    assert await store.symbols.get("NOPE") is None


async def test_delete_symbol_with_purge_removes_its_data_and_nothing_else(store: Store) -> None:
    """Purging a symbol deletes its bars, actions, coverage and row; other symbols stay."""
    await store.symbols.upsert(SymbolInfo("AAPL", "stocks"))
    await store.write_bars([write(make_batch("AAPL", n=5)), write(make_batch("MSFT", n=5))])
    await store.actions.write("AAPL", [_dividend(1)], None, YEARS)
    assert await store.symbols.delete("AAPL", purge=True) is True
    assert await store.symbols.all() == []
    assert len(await store.bars("AAPL", M1, 0, 2**62)) == 0
    assert await store.actions.dividends("AAPL") == []
    assert await store.catalog.ledger("AAPL") == []
    assert len(await store.bars("MSFT", M1, 0, 2**62)) == 5


async def test_runs_are_saved_updated_and_listed_newest_first(store: Store) -> None:
    """A run is inserted, then updated by id; listing is newest first and honours the limit."""
    old = RunRecord("r1", RunKind.BACKFILL, RunStatus.RUNNING, 1_000,
                    params={"tickers": ["AAPL"], "since": "2020-01-01"})
    await store.runs.save(old)
    await store.runs.save(RunRecord("r2", RunKind.UPDATE, RunStatus.OK, 2_000, 2_500, report={"bars": 10}))
    old.status, old.finished_at_ms, old.report = RunStatus.PARTIAL, 1_900, {"failed": [{"ticker": "AAPL"}]}
    await store.runs.save(old)
    assert await store.runs.get("r1") == old
    assert await store.runs.get("nope") is None
    assert [r.id for r in await store.runs.recent()] == ["r2", "r1"]
    assert [r.id for r in await store.runs.recent(limit=1)] == ["r2"]


async def test_runs_store_status_and_kind_as_their_plain_values(store: Store, backend: Backend) -> None:
    """The enums are stored as the strings they stand for, so the database reads as before them."""
    await store.runs.save(RunRecord("r1", RunKind.SCHEDULED, RunStatus.INTERRUPTED, 1_000))
    assert await backend.fetch("SELECT kind, status FROM runs") == [("scheduled", "interrupted")]
    got = await store.runs.get("r1")
    assert got is not None and got.kind is RunKind.SCHEDULED and got.status is RunStatus.INTERRUPTED


async def test_api_keys_store_hashes_and_revoke_once(store: Store) -> None:
    """Keys are listed and got by id as stored; revoking marks the key and a second revoke reports False."""
    key = ApiKeyRecord("mdw_ab12", "read", "salt", "f" * 64, 1_000, "ci")
    await store.keys.add(key)
    await store.keys.add(ApiKeyRecord("mdw_cd34", "admin", "s2", "e" * 64, 2_000))
    assert await store.keys.all() == [key, ApiKeyRecord("mdw_cd34", "admin", "s2", "e" * 64, 2_000)]
    assert await store.keys.get("mdw_ab12") == key and await store.keys.get("missing") is None
    assert await store.keys.revoke("mdw_ab12") is True
    assert await store.keys.revoke("mdw_ab12") is False
    assert await store.keys.revoke("missing") is False
    revoked = (await store.keys.all())[0]
    assert revoked.revoked_at_ms is not None and revoked.hash == key.hash
    assert await store.keys.get("mdw_ab12") == revoked


async def test_audit_log_appends_and_lists_newest_first(store: Store) -> None:
    """Audit entries keep actor, action and JSON detail, newest first."""
    await store.audit.append("admin", "keys.create", {"id": "mdw_ab12"})
    await store.audit.append("admin", "symbols.delete", {"ticker": "AAPL", "purge": True})
    log = await store.audit.recent()
    assert [(e["actor"], e["action"], e["detail"]) for e in log] == [
        ("admin", "symbols.delete", {"ticker": "AAPL", "purge": True}),
        ("admin", "keys.create", {"id": "mdw_ab12"}),
    ]
    assert len(await store.audit.recent(limit=1)) == 1 and log[0]["at_ms"] >= log[1]["at_ms"]


async def test_catalog_series_count_bars_per_series(store: Store) -> None:
    """Per ticker and timeframe: how many bars and the first and last t; of one ticker when asked."""
    minute, daily = make_batch(n=7), make_batch(n=3, tf=D1)
    await store.write_bars([write(minute), write(daily), write(make_batch("MSFT", n=2))])
    aapl = [
        SeriesStats("AAPL", "1d", 3, int(daily.t[0]), int(daily.t[-1])),
        SeriesStats("AAPL", "1m", 7, int(minute.t[0]), int(minute.t[-1])),
    ]
    assert await store.catalog.series() == [*aapl, SeriesStats("MSFT", "1m", 2, int(minute.t[0]),
                                                                int(minute.t[1]))]
    assert await store.catalog.series("AAPL") == aapl
    assert await store.catalog.series("NOPE") == []


async def test_ping_of_an_open_store_reports_the_current_schema_version(store: Store) -> None:
    """An open store answers ping with the schema version in the database, the one the code expects."""
    db, code = await store.ping()
    assert db == code and code >= 1

"""``refetch``: the whole range is requested again; writes stay idempotent and the ledger is refreshed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio

from mdw.backfill import plan_only, run_backfill
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator import SimServer
from mdw.store import Dataset, Store

from .helpers import make_spec

SPEC = make_spec("AAPL", "1h", "2024-03-04", "2024-03-08")
REFETCH = replace(SPEC, refetch=True)


@pytest_asyncio.fixture
async def client(sim: SimServer) -> AsyncIterator[PolygonClient]:
    async with PolygonClient(sim.key, sim.base_url, pacing=Pacing("unlimited")) as c:
        yield c


async def execute_sql(url: str, sql: str) -> None:
    """Change stored data behind the store's back (the test's stand-in for a corrupted row)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        await pg.execute(sql)
    finally:
        await pg.close()


async def test_refetch_requests_everything_when_the_ledger_covers_the_range(
    store: Store, sim: SimServer, client: PolygonClient
) -> None:
    """A refetch over stored data makes the planned requests: 0 inserted, every bar unchanged."""
    first = await run_backfill(store, client, SPEC)
    assert first.status == "ok" and first.bars_inserted > 0
    assert (await plan_only(store, SPEC)).request_count == 0
    planned = await plan_only(store, REFETCH)
    assert planned.request_count == first.planned_requests > 0
    served = int(sim.stats()["requests"])
    again = await run_backfill(store, client, REFETCH)
    assert again.status == "ok" and again.requests == planned.request_count
    assert int(sim.stats()["requests"]) - served == planned.request_count
    assert (again.bars_inserted, again.bars_updated, again.bars_unchanged) == (0, 0, first.bars_inserted)
    entries = [e for e in await store.catalog.ledger("AAPL") if e.dataset == Dataset.BARS]
    assert entries and min(e.fetched_at_ms for e in entries) >= again.started_at_ms
    run = await store.runs.get(again.run_id)
    assert run is not None and run.params["specs"][0]["refetch"] is True


async def test_refetch_restores_vendor_value_when_a_stored_bar_was_changed(
    store: Store, store_url: str, sim: SimServer, client: PolygonClient
) -> None:
    """A bar changed in the database is put back to the vendor's value and counted as one update."""
    first = await run_backfill(store, client, SPEC)
    rng = SPEC.wanted(SPEC.tickers[0].asset_class)
    tf = SPEC.timeframes[0]
    truth = sim.market.aggregates("AAPL", tf, rng.start_ms, rng.end_ms)
    t = int(truth.t[3])
    where = f"ticker = 'AAPL' AND timeframe = '1h' AND t = {t}"
    await execute_sql(store_url, f"UPDATE bars SET c = c + 1 WHERE {where}")
    changed = await store.bars("AAPL", tf, t, t + 1)
    assert float(changed.c[0]) == float(truth.c[3]) + 1
    again = await run_backfill(store, client, REFETCH)
    assert (again.bars_inserted, again.bars_updated, again.bars_unchanged) == (0, 1, first.bars_inserted - 1)
    assert (await store.bars("AAPL", tf, rng.start_ms, rng.end_ms)).equals(truth)

"""Deferring without workers: one job per window, no duplicates, the run recorded as running."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from mdw.backfill.plan import BackfillSpec
from mdw.config import load_settings
from mdw.domain import parse_tickers, parse_timeframes
from mdw.errors import UsageError
from mdw.scaleout.launcher import PgLauncher
from mdw.store import open_store

pytestmark = pytest.mark.postgres


async def test_launcher_defers_each_window_once_when_submitted_twice(module_pg_url: str) -> None:
    """The service's launcher queues one job per planned window; a repeat queues nothing new."""
    settings = load_settings(None, database_url=module_pg_url, polygon_api_key="k")
    spec = BackfillSpec(tuple(parse_tickers("AAPL,MSFT")), tuple(parse_timeframes("1h,1d")),
                        date(2024, 3, 4), date(2024, 3, 8), grouped_daily=False)
    launcher = PgLauncher(settings)
    first = await launcher.submit(spec, actor="test")
    second = await launcher.submit(spec, actor="test")
    await launcher.aclose()
    async with await psycopg.AsyncConnection.connect(module_pg_url) as conn:
        cur = await conn.execute("SELECT args->>'run_id', count(*) FROM procrastinate_jobs GROUP BY 1")
        counts = dict(await cur.fetchall())
    assert counts == {first: 4}
    store = await open_store(module_pg_url)
    try:
        runs = {r.id: r for r in await store.runs.recent()}
    finally:
        await store.close()
    assert runs[first].kind == "distributed" and runs[first].status == "running"
    assert len(runs[second].params["jobs"]) == 4  # the repeat follows the first run's jobs


def test_launcher_refuses_sqlite_when_built(tmp_path: object) -> None:
    """A SQLite warehouse cannot host distributed runs: a usage error, not a crash later."""
    with pytest.raises(UsageError):
        PgLauncher(load_settings(None, database_url="sqlite:///x.db"))

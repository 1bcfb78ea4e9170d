"""``mdw copy`` (#21): a warehouse moved to PostgreSQL or the columnar store exactly, resumed after a kill."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from mdw.domain import Timeframe
from mdw.simulator import SimServer
from mdw.store import Dataset, Store

from .conftest import cli_env, mdw, start_mdw

MINUTE_TICKERS = "AAPL,MSFT,NVDA,X:BTCUSD,X:ETHUSD"


async def _fill(sim: SimServer, url: str) -> None:
    """A source warehouse: minute and daily bars, corporate actions, a tracked symbol and an API key."""
    env = cli_env(sim, url)
    minute = await mdw("backfill", "-s", MINUTE_TICKERS, "--timeframes", "1m", "--start", "2024-03-04",
                       "--end", "2024-03-08", env=env, limit_s=180)
    assert minute.code == 0, minute.stderr
    daily = await mdw("backfill", "-s", "AAPL,NVDA", "--timeframes", "1d", "--start", "2024-01-02",
                      "--end", "2024-06-28", "--corporate-actions", env=env)
    assert daily.code == 0, daily.stderr
    assert (await mdw("symbols", "add", "TSLA", "-t", "1h", "--start", "2024-05-01", env=env)).code == 0
    assert (await mdw("keys", "create", "--scope", "admin", "--name", "ops", env=env)).code == 0


async def _same(source: Store, target: Store) -> None:
    """Every bar, ledger row (with fetched_at), action, symbol and key of source is in target, equal."""
    series = await source.catalog.series()
    assert [(s.ticker, s.timeframe, s.bars) for s in series] == [
        (s.ticker, s.timeframe, s.bars) for s in await target.catalog.series()]
    for s in series:
        tf = Timeframe.parse(s.timeframe)
        mine = await source.bars(s.ticker, tf, 0, 4_102_444_800_000)
        theirs = await target.bars(s.ticker, tf, 0, 4_102_444_800_000)
        assert mine.equals(theirs), f"{s.ticker} {s.timeframe}"
    assert await source.catalog.ledger() == await target.catalog.ledger()
    for ticker in {s.ticker for s in series}:
        assert await source.actions.splits(ticker) == await target.actions.splits(ticker)
        assert await source.actions.dividends(ticker) == await target.actions.dividends(ticker)
    assert await source.symbols.all() == await target.symbols.all()
    assert await source.keys.all() == await target.keys.all()


async def test_cli_copy_sqlite_to_postgres_resumes_after_a_kill_and_is_exact(
    sim: SimServer, sqlite_url: str, pg_schema: str, opened: Any
) -> None:
    """Killed after its first series, a second `mdw copy` finishes the rest; the target equals the source."""
    await _fill(sim, sqlite_url)
    env = cli_env(None, sqlite_url)
    args = ("copy", "--from", sqlite_url, "--to", pg_schema, "--chunk", "500")
    running = await start_mdw(*args, env=env)
    for _ in range(1500):  # the first series copied, others not yet: kill -9
        if running.proc.returncode is not None or any(x.startswith("mdw: copy: ") for x in running.lines):
            break
        await asyncio.sleep(0.02)
    await running.signal(signal.SIGKILL)
    killed = await running.finish()
    assert killed.code == -signal.SIGKILL, killed.stderr
    target = await opened(pg_schema)
    source = await opened(sqlite_url)
    assert len(await target.catalog.series()) < len(await source.catalog.series())  # really cut short
    resumed = await mdw(*args, env=env, limit_s=180)
    assert resumed.code == 0, resumed.stderr
    assert "target matches source" in resumed.stdout
    assert "already held" in resumed.stderr  # the first series was not read again
    await _same(source, target)
    again = await mdw(*args, "--json", env=env)
    assert again.code == 0 and '"bars_written": 0' in again.stdout  # nothing left to do


async def test_cli_copy_fills_the_columnar_store_exactly(
    sim: SimServer, sqlite_url: str, tmp_path: Path, opened: Any
) -> None:
    """SQLite to iceberg+sqlite: the same bars, ledger, actions, symbols and keys; reads answer the same."""
    await _fill(sim, sqlite_url)
    lake = f"iceberg+sqlite:///{tmp_path / 'lake.db'}?warehouse={tmp_path / 'lake'}"
    out = await mdw("copy", "--from", sqlite_url, "--to", lake, env=cli_env(None, sqlite_url), limit_s=180)
    assert out.code == 0, out.stderr
    assert "target matches source" in out.stdout
    await _same(await opened(sqlite_url), await opened(lake))
    assert await (await opened(lake)).coverage("AAPL", Dataset.SPLITS)


async def test_cli_copy_refuses_a_missing_source_and_creates_nothing(tmp_path: Path) -> None:
    """A source that does not exist exits 2 naming its path; the target is not created."""
    src, dst = tmp_path / "none.db", tmp_path / "new.db"
    out = await mdw("copy", "--from", f"sqlite:///{src}", "--to", f"sqlite:///{dst}",
                    env=cli_env(None, f"sqlite:///{dst}"))
    assert out.code == 2 and str(src) in out.stderr
    assert not dst.exists()

"""``mdw backfill`` with flat files, run as a subprocess: dry-run costs, bad setups, kill -9 mid-download."""

from __future__ import annotations

import asyncio
import random
import signal
from datetime import date
from typing import Any

import numpy as np

from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
from mdw.flatfiles.keys import dataset_named
from mdw.simulator import SimServer
from mdw.store import Dataset, Store

from .conftest import cli_env, mdw, start_mdw

MINUTES = dataset_named("us_stocks_sip/minute_aggs_v1")
DAYS = dataset_named("us_stocks_sip/day_aggs_v1")
NOW = local_midnight_ms(date(2024, 3, 13), NEW_YORK) + 15 * 3_600_000  # files out up to the 12th
FIRST, LAST = date(2024, 3, 4), date(2024, 3, 12)


def files_env(sim: SimServer, db_url: str, **extra: str) -> dict[str, str]:
    key_id, secret = sim.flatfile_key
    return cli_env(sim, db_url, MDW_FLATFILES_ENDPOINT=sim.base_url, MDW_FLATFILES_KEY_ID=key_id,
                   MDW_FLATFILES_SECRET=secret, **extra)


def args(symbols: list[str], *extra: str) -> list[str]:
    return ["backfill", "--symbols", ",".join(symbols), "--timeframes", "1m,1d", "--start", FIRST.isoformat(),
            "--end", LAST.isoformat(), *extra]


async def assert_no_day_half_covered(store: Store, sim: SimServer, tickers: list[str]) -> int:
    """Every file day the store holds is held whole (every ticker exact); no other file day is held
    for any ticker. Returns how many days were held."""
    held_days = 0
    for ds in (MINUTES, DAYS):
        recorded = {d.start_ms for d in await store.market_days.recorded(ds.prefix, 0, 2**62)
                    if d.timeframe == str(ds.timeframe)}
        for day in ds.days(FIRST, LAST):
            rng = ds.day_range(day)
            if rng.start_ms in recorded:
                held_days += 1
                truth = sim.flatfiles.bars(ds, day)
                for ticker in tickers:
                    got = await store.bars(ticker, ds.timeframe, rng.start_ms, rng.end_ms)
                    expected = truth.get(ticker)
                    assert len(got) == (0 if expected is None else len(expected)), (ticker, day)
                    if expected is not None:
                        assert np.array_equal(got.c, expected.c) and np.array_equal(got.v, expected.v)
            else:
                for ticker in tickers:
                    assert not (await store.coverage(ticker, Dataset.BARS, str(ds.timeframe))) & [rng]
    return held_days


async def test_cli_flatfiles_source_without_keys_exits_2_with_one_line(sqlite_url: str) -> None:
    """--source flatfiles without the S3 key pair: one line naming the settings, exit 2."""
    for flag in (["--source", "flatfiles"],):
        result = await mdw(*args(["AAPL"], *flag), env=cli_env(None, sqlite_url, POLYGON_API_KEY="k"))
        assert result.code == 2 and "MDW_FLATFILES_KEY_ID" in result.stderr
        assert "Traceback" not in result.stderr
    bad = await mdw(*args(["AAPL"], "--source", "ftp"), env=cli_env(None, sqlite_url, POLYGON_API_KEY="k"))
    assert bad.code == 2 and "--source" in bad.stderr


async def test_cli_flatfiles_dry_run_prints_both_costs_and_downloads_nothing(
    sqlite_url: str, sim_factory: Any,
) -> None:
    """The dry run of a whole-market backfill lists the files it would take and the REST cost they save."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=20, now_ms=NOW)
    tickers = sim.market.universe(MINUTES.asset)
    result = await mdw(*args(tickers, "--dry-run"), env=files_env(sim, sqlite_url, COLUMNS="200"))
    assert result.code == 0, result.stderr
    assert "flat files or REST" in result.stdout and "us_stocks_sip/minute_aggs_v1" in result.stdout
    assert "flat files to download: 14" in result.stdout
    assert sim.stats()["flatfile_bytes"] == 0


async def test_cli_flatfiles_resume_exactly_when_killed_mid_download(
    db_url: str, sim_factory: Any, opened: Any,
) -> None:
    """kill -9 at seeded moments while files download: no day is ever half held; a re-run is exact.

    Every simulator response waits 500 ms before its first byte, so a run takes at least one such
    wait per wave of 4 files. Each kill lands at a seeded moment within 0.45 s of the run's first
    file byte, before the next wave's first byte: it stores at most one wave, so each of the three
    kills meets files still to come however fast or loaded the machine is (14 files in all)."""
    sim = await sim_factory(keys={"k": "unlimited"}, n_stocks=20, now_ms=NOW, latency_ms=500)
    tickers = sim.market.universe(MINUTES.asset)
    env = files_env(sim, db_url, MDW_MAX_IN_FLIGHT="4")
    rng = random.Random(20240313)
    for _ in range(3):
        before = sim.stats()["flatfile_bytes"]
        run = await start_mdw(*args(tickers, "--source", "flatfiles"), env=env)
        await asyncio.wait_for(run.planned.wait(), 60)
        while sim.stats()["flatfile_bytes"] == before:
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0.0, 0.45))
        await run.signal(signal.SIGKILL)
        assert (await run.finish()).code == -signal.SIGKILL
        await assert_no_day_half_covered(await opened(db_url), sim, tickers)
    final = await mdw(*args(tickers, "--source", "flatfiles"), env=env)
    assert final.code == 0, final.stderr
    store = await opened(db_url)
    assert await assert_no_day_half_covered(store, sim, tickers) == 2 * len(MINUTES.days(FIRST, LAST))
    for ticker in ("AAPL", tickers[-1]):
        start, end = MINUTES.day_range(FIRST).start_ms, MINUTES.day_range(LAST).end_ms
        got = await store.bars(ticker, Timeframe(1, "m"), start, end)
        expected = sim.market.aggregates(ticker, Timeframe(1, "m"), start, end)
        assert np.array_equal(got.t, expected.t) and np.array_equal(got.o, expected.o)

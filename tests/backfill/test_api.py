"""The Python API: ``mdw.connect`` backfills and reads back DataFrames and Arrow tables exactly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import mdw
from mdw.api import AsyncWarehouse
from mdw.bar_schema import ADJUSTED_DECIMALS
from mdw.domain import AssetClass, RangeSet, Timeframe, day_range_ms, parse_ticker
from mdw.errors import ConfigError, IncompleteError, NotStoredError
from mdw.simulator import SimConfig, SimServer, start_simulator


@contextmanager
def simulator_thread() -> Iterator[SimServer]:
    """A simulator on its own loop thread, so the synchronous facade can block the test thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ctx = start_simulator(SimConfig(seed=42, keys={"api-key": "unlimited"}))
    sim = asyncio.run_coroutine_threadsafe(ctx.__aenter__(), loop).result()
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(ctx.__aexit__(None, None, None), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_api_connect_backfills_and_reads_frames_when_used_synchronously(tmp_path: Path) -> None:
    """connect().backfill fills the gaps; bars() and bars_arrow() return exactly the vendor's bars."""
    with simulator_thread() as sim:
        url = f"sqlite:///{tmp_path / 'api.db'}"
        with mdw.connect(url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                         rate_limit="unlimited") as wh:
            plan = wh.plan("AAPL,BTC-USD", "1h,1d", "2024-03-04", "2024-03-08")
            assert plan.request_count == 4 + 2 and sim.stats()["requests"] == 0  # + AAPL splits, dividends
            report = wh.backfill("AAPL,BTC-USD", "1h,1d", "2024-03-04", "2024-03-08")
            assert report.status == "ok" and report.requests == 4 + 2
            frame = wh.bars("X:BTCUSD", "1h", "2024-03-04", "2024-03-08")
            table = wh.bars_arrow("AAPL", "1d", "2024-03-04", "2024-03-08")
            vendor = wh.bars("AAPL", "1d", "2024-03-04", "2024-03-08", names="vendor")
            held = wh.coverage("AAPL", "1d")
    rng = day_range_ms(frame.index[0].date(), frame.index[-1].date(), parse_ticker("X:BTCUSD").asset_class.tz)
    truth = sim.market.aggregates("X:BTCUSD", Timeframe.parse("1h"), rng.start_ms, rng.end_ms)
    assert len(frame) == len(truth) == 5 * 24
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "vwap", "trades", "otc"]
    assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC" and frame.index[0].hour == 0
    assert np.array_equal(frame["close"].to_numpy(), truth.c)
    assert np.array_equal(frame.index.as_unit("ms").asi8, truth.t)
    attrs = frame.attrs
    assert (attrs["ticker"], attrs["timeframe"], attrs["adjustment"]) == ("X:BTCUSD", "1h", "none")
    stock = day_range_ms(date(2024, 3, 4), date(2024, 3, 8), parse_ticker("AAPL").asset_class.tz)
    daily = sim.market.aggregates("AAPL", Timeframe.parse("1d"), stock.start_ms, stock.end_ms)
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == daily.t.tolist()
    assert [d.isoformat() for d in table.column("date").to_pylist()] == [
        "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]  # sessions, not 05:00 UTC
    assert table.column("vwap").to_pylist() == daily.vw.tolist()
    meta = table.schema.metadata
    assert (meta[b"mdw.ticker"], meta[b"mdw.timeframe"], meta[b"mdw.adjustment"]) == (b"AAPL", b"1d", b"none")
    assert meta[b"mdw.as_of"] and b"mdw.coverage" in meta
    assert list(vendor.columns) == ["date", "o", "h", "l", "c", "v", "vw", "n", "otc"]
    assert vendor.index.name == "t"
    assert held == RangeSet.of([stock])


async def test_api_async_core_reads_stored_bars_when_store_is_postgres(
    store_url: str, sim: SimServer
) -> None:
    """The async core works on both backends and reads empty ranges as empty tables."""
    wh = await AsyncWarehouse.open(store_url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                                   rate_limit="unlimited")
    try:
        plan = await wh.plan(["X:ETHUSD"], ["15m"], "2024-05-01", "2024-05-01")
        report = await wh.backfill(["X:ETHUSD"], ["15m"], "2024-05-01", "2024-05-01")
        assert plan.request_count == report.requests == 1
        frame = await wh.bars("X:ETHUSD", "15m", "2024-05-01", "2024-05-01")
        assert len(frame) == 96
        empty = await wh.bars_arrow("X:ETHUSD", "15m", "2023-01-01", "2023-01-02")
        assert empty.num_rows == 0
        assert empty.column_names == ["timestamp", "open", "high", "low", "close", "volume", "vwap", "trades",
                                      "otc"]
        assert [s.bars for s in await wh.status()] == [96]
    finally:
        await wh.close()


def test_api_connect_raises_usage_error_when_url_is_not_a_store() -> None:
    """A wrong URL fails at connect with the accepted forms, and leaves no thread behind."""
    before = threading.active_count()
    with pytest.raises(mdw.MdwError, match="sqlite"):
        mdw.connect("mysql://nope")
    assert threading.active_count() == before


def test_api_connect_refuses_a_misspelt_setting_with_the_mdw_toml_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``connect(url, rate_limt=...)`` fails as ``rate_limt`` in mdw.toml does, opening nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MDW_CONFIG", raising=False)
    (tmp_path / "mdw.toml").write_text('rate_limt = "100/s"\n')
    with pytest.raises(ConfigError) as from_toml:
        mdw.load_settings()
    (tmp_path / "mdw.toml").unlink()
    before = threading.active_count()
    with pytest.raises(ConfigError) as from_connect:
        mdw.connect(f"sqlite:///{tmp_path / 'typo.db'}", rate_limt="100/s")
    assert threading.active_count() == before and not (tmp_path / "typo.db").exists()
    toml_where, _, toml_says = str(from_toml.value).partition(": ")
    connect_where, _, connect_says = str(from_connect.value).partition(": ")
    assert (toml_where, connect_where) == ("mdw.toml", "mdw.connect()")
    assert connect_says == toml_says and connect_says.startswith("unknown setting(s) rate_limt; known: ")


# -- every read says what it could not answer (#21) ----------------------------------------

DAY = Timeframe.parse("1d")


def _truth_adjusted(sim: SimServer, ticker: str, first: date, last: date) -> np.ndarray:
    """The simulator's adjusted closes at the instrument's precision (as mdw serves adjusted values)."""
    rng = day_range_ms(first, last, parse_ticker(ticker).asset_class.tz)
    closes = sim.market.aggregates(ticker, DAY, rng.start_ms, rng.end_ms, adjusted=True).c
    return np.round(closes, ADJUSTED_DECIMALS[AssetClass.STOCKS])


def test_reads_unknown_ticker_raises_not_stored_when_a_close_name_is_held(tmp_path: Path) -> None:
    """A misspelt ticker is NotStoredError with a did-you-mean; an unstored timeframe names the held ones."""
    with simulator_thread() as sim, mdw.connect(f"sqlite:///{tmp_path / 'r.db'}", polygon_api_key=sim.key,
                                                polygon_base_url=sim.base_url, rate_limit="unlimited") as wh:
        wh.backfill("AAPL", "1d", "2024-03-04", "2024-03-08", corporate_actions=False)
        with pytest.raises(NotStoredError, match="Did you mean AAPL"):
            wh.bars("AAPLL", "1d", "2024-03-04", "2024-03-08")
        with pytest.raises(NotStoredError, match="stored timeframes: 1d"):
            wh.bars("AAPL", "1h", "2024-03-04", "2024-03-08")


def test_reads_partial_range_carries_coverage_when_not_strict(tmp_path: Path) -> None:
    """A range held in part returns what is held with its coverage in attrs/metadata; strict refuses it."""
    with simulator_thread() as sim, mdw.connect(f"sqlite:///{tmp_path / 'r.db'}", polygon_api_key=sim.key,
                                                polygon_base_url=sim.base_url, rate_limit="unlimited") as wh:
        wh.backfill("AAPL", "1d", "2024-03-04", "2024-03-08", corporate_actions=False)
        whole = wh.bars("AAPL", "1d", "2024-03-04", "2024-03-08", strict=True)
        part = wh.bars("AAPL", "1d", "2024-03-04", "2024-03-15")
        with pytest.raises(IncompleteError, match="partial"):
            wh.bars_arrow("AAPL", "1d", "2024-03-04", "2024-03-15", strict=True)
    assert whole.attrs["coverage"]["complete"] is True and len(whole) == 5
    cov = part.attrs["coverage"]
    assert len(part) == 5 and cov["complete"] is False and cov["gap_count"] == 1
    held_end = day_range_ms(date(2024, 3, 8), date(2024, 3, 8), parse_ticker("AAPL").asset_class.tz).end_ms
    assert cov["gaps"][0][0] >= held_end and 0 < cov["ratio"] < 1


def test_reads_adjusted_after_backfill_equal_simulator_truth_when_a_split_is_inside(tmp_path: Path) -> None:
    """wh.backfill fetches splits by default, so adjust='splits' right after it equals the vendor's."""
    first, last = date(2025, 6, 2), date(2025, 6, 13)  # AAPL splits 2-for-1 on 2025-06-09 in the simulator
    with simulator_thread() as sim, mdw.connect(f"sqlite:///{tmp_path / 'r.db'}", polygon_api_key=sim.key,
                                                polygon_base_url=sim.base_url, rate_limit="unlimited") as wh:
        wh.backfill("AAPL", "1d", first, last)
        frame = wh.bars("AAPL", "1d", first, last, adjust="splits")
        raw = wh.bars("AAPL", "1d", first, last)
        truth = _truth_adjusted(sim, "AAPL", first, last)
    assert len(frame) == len(truth) == 10
    assert np.array_equal(frame["close"].to_numpy(), truth)
    assert not np.array_equal(raw["close"].to_numpy(), truth)  # the split is really inside the range
    assert frame.attrs["coverage"]["adjust"] == "splits" and frame.attrs["coverage"]["actions_as_of"]


def test_reads_adjusted_refuse_when_actions_were_never_fetched_and_no_key(tmp_path: Path) -> None:
    """Without stored splits and without a key, adjust='splits' refuses and says how to fetch them."""
    first, last = date(2025, 6, 2), date(2025, 6, 13)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with simulator_thread() as sim:
        with mdw.connect(url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                         rate_limit="unlimited") as wh:
            wh.backfill("AAPL", "1d", first, last, corporate_actions=False)
        with mdw.connect(url) as bare, pytest.raises(IncompleteError, match="mdw corporate-actions -s AAPL"):
            bare.bars("AAPL", "1d", first, last, adjust="splits")
        with mdw.connect(url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                         rate_limit="unlimited") as keyed:
            frame = keyed.bars("AAPL", "1d", first, last, adjust="splits")  # fetches the splits it needs
        truth = _truth_adjusted(sim, "AAPL", first, last)
    assert np.array_equal(frame["close"].to_numpy(), truth)

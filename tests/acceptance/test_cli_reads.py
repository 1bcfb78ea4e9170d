"""``mdw export`` says what it could not answer and reads the market's own days (#21)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mdw.bar_schema import ADJUSTED_DECIMALS
from mdw.domain import AssetClass, Timeframe, day_range_ms, parse_ticker
from mdw.simulator import SimServer

from .conftest import cli_env, mdw

BACKFILL = ("backfill", "-s", "AAPL", "--timeframes", "1h", "--start", "2024-03-04", "--end", "2024-03-04")


async def test_cli_export_fails_or_reports_coverage_when_the_answer_is_not_whole(
    sqlite_url: str, sim: SimServer
) -> None:
    """Unknown ticker or timeframe: exit 2, one line; a partial range: stderr note; --strict: exit 1."""
    env = cli_env(sim, sqlite_url)
    assert (await mdw(*BACKFILL, env=env)).code == 0
    nope = await mdw("export", "-s", "NOPE", "-t", "1h", "--start", "2024-03-04", env=env)
    assert nope.code == 2 and nope.stdout == ""
    assert nope.stderr_lines == ["mdw: error: unknown ticker 'NOPE': nothing is stored under it"]
    close = await mdw("export", "-s", "AAPLL", "-t", "1h", "--start", "2024-03-04", env=env)
    assert close.code == 2 and "Did you mean AAPL?" in close.stderr
    unstored = await mdw("export", "-s", "AAPL", "-t", "1d", "--start", "2024-03-04", env=env)
    assert unstored.code == 2 and "stored timeframes: 1h" in unstored.stderr
    part = await mdw("export", "-s", "AAPL", "-t", "1h", "--start", "2024-03-04", "--end", "2024-03-05",
                     env=env)
    assert part.code == 0 and [x for x in part.stderr_lines if x.startswith("mdw: partial: AAPL 1h")]
    strict = await mdw("export", "-s", "AAPL", "-t", "1h", "--start", "2024-03-04", "--end", "2024-03-05",
                       "--strict", env=env)
    assert strict.code == 1 and strict.stdout == "" and "strict read refused" in strict.stderr


async def test_cli_export_reads_the_markets_day_when_given_dates(sqlite_url: str, sim: SimServer) -> None:
    """--start/--end dates are New York days for AAPL: the after-hours bars past 00:00 UTC are exported."""
    env = cli_env(sim, sqlite_url)
    assert (await mdw(*BACKFILL, env=env)).code == 0
    out = await mdw("export", "-s", "AAPL", "-t", "1h", "--start", "2024-03-04", "--end", "2024-03-04",
                    "--strict", "--names", "vendor", env=env)
    assert out.code == 0, out.stderr
    rng = day_range_ms(date(2024, 3, 4), date(2024, 3, 4), parse_ticker("AAPL").asset_class.tz)
    truth = sim.market.aggregates("AAPL", Timeframe.parse("1h"), rng.start_ms, rng.end_ms)
    rows = out.stdout.splitlines()[1:]
    assert [int(r.split(",")[2]) for r in rows] == truth.t.tolist()
    assert truth.t[-1] >= rng.end_ms - 5 * 3_600_000  # 19:00 ET: past UTC midnight


async def test_cli_export_writes_the_one_schema_in_csv_jsonl_and_parquet(
    sqlite_url: str, sim: SimServer, tmp_path: Path
) -> None:
    """timestamp (UTC), the session date, long names, adjusted values rounded; Parquet carries metadata."""
    env = cli_env(sim, sqlite_url)
    first, last = "2024-02-01", "2024-02-29"  # before AAPL's 2025 split: every adjusted close differs
    got = await mdw("backfill", "-s", "AAPL", "--timeframes", "1d", "--start", first, "--end", last, env=env)
    assert got.code == 0, got.stderr
    out = await mdw("export", "-s", "AAPL", "--start", first, "--end", last, "--adjust", "all", env=env)
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "ticker,timeframe,timestamp,date,open,high,low,close,volume,vwap,trades,otc"
    assert lines[1].startswith("AAPL,1d,2024-02-01T05:00:00Z,2024-02-01,")
    prices = [f for line in lines[1:] for f in line.split(",")[4:8]]
    assert all(len(p.partition(".")[2]) <= ADJUSTED_DECIMALS[AssetClass.STOCKS] for p in prices), prices
    rng = day_range_ms(date(2024, 2, 1), date(2024, 2, 29), parse_ticker("AAPL").asset_class.tz)
    raw = sim.market.aggregates("AAPL", Timeframe.parse("1d"), rng.start_ms, rng.end_ms)
    assert [float(line.split(",")[7]) for line in lines[1:]] != raw.c.tolist()
    jsonl = await mdw("export", "-s", "AAPL", "--start", first, "--end", last, "-f", "jsonl", env=env)
    row = json.loads(jsonl.stdout.splitlines()[0])
    assert list(row) == ["ticker", "timeframe", "timestamp", "date", "open", "high", "low", "close", "volume",
                         "vwap", "trades", "otc"]
    assert row["close"] == raw.c[0]
    path = tmp_path / "aapl.parquet"
    pq_out = await mdw("export", "-s", "AAPL", "--start", first, "--end", "2024-03-08", "-f", "parquet",
                       "-o", str(path), "--adjust", "splits", env=env)
    assert pq_out.code == 0 and "mdw: partial: AAPL 1d" in pq_out.stderr
    table = pq.read_table(path)
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("date").type == pa.date32()
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == raw.t.tolist()
    meta = table.schema.metadata
    assert (meta[b"mdw.ticker"], meta[b"mdw.timeframe"]) == (b"AAPL", b"1d")
    assert meta[b"mdw.adjustment"] == b"splits"
    assert meta[b"mdw.as_of"] and json.loads(meta[b"mdw.coverage"])[0]["complete"] is False

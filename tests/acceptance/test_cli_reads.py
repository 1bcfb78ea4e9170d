"""``mdw export`` says what it could not answer and reads the market's own days (#21)."""

from __future__ import annotations

from datetime import date

from mdw.domain import Timeframe, day_range_ms, parse_ticker
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
                    "--strict", env=env)
    assert out.code == 0, out.stderr
    rng = day_range_ms(date(2024, 3, 4), date(2024, 3, 4), parse_ticker("AAPL").asset_class.tz)
    truth = sim.market.aggregates("AAPL", Timeframe.parse("1h"), rng.start_ms, rng.end_ms)
    rows = out.stdout.splitlines()[1:]
    assert [int(r.split(",")[2]) for r in rows] == truth.t.tolist()
    assert truth.t[-1] >= rng.end_ms - 5 * 3_600_000  # 19:00 ET: past UTC midnight

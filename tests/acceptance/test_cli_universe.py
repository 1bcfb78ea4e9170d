"""``mdw universe`` and ``mdw backfill --universe`` as a subprocess against the simulator's market.

The universe ``us`` (stocks, CS and ETF) is backfilled at 1d; every ticker the simulator lists
as such at any time in the range holds exactly its bars while listed (delisted and renamed names
included), names outside the definition hold none, and the daily bars come in one grouped-daily
request per session: the minimum.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from mdw.domain import NEW_YORK, Timeframe, day_range_ms, local_midnight_ms
from mdw.simulator import SimServer
from mdw.simulator.roster import Listing
from mdw.simulator.testing import SimFactory

from .conftest import cli_env, mdw

ONE_DAY = Timeframe(1, "d")
SIM_TODAY = date(2025, 1, 15)


def _members(sim: SimServer, first: date, last: date) -> list[Listing]:
    """The simulator's truth: CS and ETF stock tickers listed on some day of the range."""
    return [x for x in sim.market.listings() if x.market == "stocks" and x.kind in ("CS", "ETF")
            and x.start <= SIM_TODAY and x.overlaps(first, last) and (x.end is None or x.end > x.start)]


async def _backfill_us(sim: SimServer, url: str, tmp: Path, first: date, last: date,
                      limit_s: float = 900) -> dict[str, object]:
    env = cli_env(sim, url)
    out = await mdw("universe", "define", "us", "--market", "stocks", "--type", "CS,ETF", env=env)
    assert out.code == 0, out.stderr
    assert json.loads(out.stdout)["definition"]["types"] == ["CS", "ETF"]
    report = tmp / "report.json"
    out = await mdw("backfill", "--universe", "us", "--timeframes", "1d", "--start", first.isoformat(),
                    "--end", last.isoformat(), "--report", str(report), env=env, limit_s=limit_s)
    assert out.code == 0, out.stderr[-2000:]
    assert "universe us:" in out.stderr
    body = json.loads(report.read_text())
    assert isinstance(body, dict)
    return body


async def _assert_exact_members(sim: SimServer, url: str, opened: object, first: date, last: date,
                                sample: list[str]) -> None:
    from mdw.store import open_store

    store = await open_store(url)
    try:
        rng = day_range_ms(first, last, NEW_YORK)
        for ticker in sample:
            got = await store.bars(ticker, ONE_DAY, rng.start_ms, rng.end_ms)
            want = sim.market.aggregates(ticker, ONE_DAY, rng.start_ms, rng.end_ms)
            assert len(want) and got.equals(want), ticker
        outside = [x.ticker for x in sim.market.listings() if x.kind in ("ADRC", "PFD", "OS")
                   and x.overlaps(first, last) and x.start <= SIM_TODAY][:5]
        assert outside
        for ticker in outside:
            assert not len(await store.bars(ticker, ONE_DAY, rng.start_ms, rng.end_ms)), ticker
    finally:
        await store.close()


async def test_universe_backfill_stores_each_member_exactly_while_listed_in_grouped_daily_requests(
    sim_factory: SimFactory, sqlite_url: str, tmp_path: Path, opened: object,
) -> None:
    """A quarter of 1,000 securities: a delisted, a renamed and a new name exact; one request a session."""
    sim = await sim_factory(n_stocks=1000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))
    first, last = date(2024, 10, 1), date(2024, 12, 31)
    report = await _backfill_us(sim, sqlite_url, tmp_path, first, last)
    truth = {x.ticker: x for x in _members(sim, first, last)}
    assert {"YTF", "PVQ", "PVQF", "HDWA", "AAPL"} <= set(truth)  # delisted, renamed, new
    assert truth["PVQF"].previous == "PVQ" and truth["YTF"].end is not None
    await _assert_exact_members(sim, sqlite_url, opened, first, last,
                                ["YTF", "PVQ", "PVQF", "HDWA", "AAPL", "SPY"])
    rng = day_range_ms(first, last, NEW_YORK)
    sessions = len(sim.market.aggregates("AAPL", ONE_DAY, rng.start_ms, rng.end_ms))
    assert report["requests"] == sessions  # the grouped-daily minimum: one request per session
    series = report["series"]
    assert isinstance(series, list) and len(series) == len(truth)


async def test_universe_commands_list_show_and_remove(sim_factory: SimFactory, sqlite_url: str,
                                                      tmp_path: Path) -> None:
    """define/list/show/rm round trip; bad input is one line and exit 2."""
    sim = await sim_factory(n_stocks=1000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))
    env = cli_env(sim, sqlite_url)
    tickers = tmp_path / "t.txt"
    tickers.write_text("AAPL, SPY  # two\nPVQF\n")
    assert (await mdw("universe", "define", "mine", "--tickers-file", str(tickers), env=env)).code == 0
    assert (await mdw("universe", "define", "spy-dec", "--underlying", "SPY", "--expiry", "2024-12",
                      "--strikes", "ATM±5", env=env)).code == 0
    out = await mdw("universe", "list", "--json", env=env)
    assert [u["name"] for u in json.loads(out.stdout)] == ["mine", "spy-dec"]
    out = await mdw("universe", "show", "mine", "--on", "2024-11-01", env=env)
    assert out.code == 2 and "mdw reference refresh" in out.stderr
    out = await mdw("reference", "refresh", env=env)
    assert out.code == 0, out.stderr
    assert "tickers:" in out.stdout and "options:SPY:2024-12" in out.stdout
    out = await mdw("universe", "show", "mine", "--on", "2024-11-01", "--json", env=env)
    assert json.loads(out.stdout)["members"] == ["AAPL", "PVQ", "SPY"]  # PVQF was PVQ then
    out = await mdw("universe", "show", "mine", "--on", "2024-12-20", "--json", env=env)
    assert json.loads(out.stdout)["members"] == ["AAPL", "PVQF", "SPY"]
    assert (await mdw("universe", "rm", "mine", env=env)).code == 0
    for args in (("universe", "rm", "mine"), ("universe", "define", "bad name"),
                 ("universe", "define", "x", "--strikes", "ATM±5"),
                 ("universe", "define", "x", "--underlying", "SPY", "--expiry", "2024-13"),
                 ("universe", "define", "x", "--market", "bonds"),
                 ("backfill", "--universe", "nope", "--start", "2024-01-02"),
                 ("backfill", "--universe", "us", "--symbols", "AAPL", "--start", "2024-01-02")):
        out = await mdw(*args, env=env)
        assert out.code == 2 and len(out.stderr_lines) == 1, (args, out.stderr)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)  # about 3M daily bars through the CLI: over 15 min on a loaded 2-core host
async def test_universe_backfill_2019_to_2024_is_exact_in_grouped_daily_requests(
    sim_factory: SimFactory, sqlite_url: str, tmp_path: Path, opened: object,
) -> None:
    """The issue's range, 2019-2024, for 2,000 securities: members exact, one request a session."""
    sim = await sim_factory(n_stocks=2000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))
    first, last = date(2019, 1, 1), date(2024, 12, 31)
    report = await _backfill_us(sim, sqlite_url, tmp_path, first, last, limit_s=4 * 3600 - 300)
    truth = _members(sim, first, last)
    delisted = [x.ticker for x in truth if x.end is not None and x.following is None][:3]
    renamed = [t for x in truth if x.following is not None for t in (x.ticker, x.following)][:4]
    listed = [x.ticker for x in truth if x.start > first and x.previous is None][:3]
    assert len(delisted) == 3 and len(renamed) == 4 and len(listed) == 3
    await _assert_exact_members(sim, sqlite_url, opened, first, last, [*delisted, *renamed, *listed, "AAPL"])
    rng = day_range_ms(first, last, NEW_YORK)
    assert report["requests"] == len(sim.market.aggregates("AAPL", ONE_DAY, rng.start_ms, rng.end_ms))


async def test_export_stitch_and_update_universe(
    sim_factory: SimFactory, sqlite_url: str, tmp_path: Path,
) -> None:
    """export --stitch reads PVQF across its rename (the change on stderr); update --universe plans
    the universe's timeframes from its first backfilled day."""
    sim = await sim_factory(n_stocks=1000, now_ms=local_midnight_ms(SIM_TODAY, NEW_YORK))
    env = cli_env(sim, sqlite_url)
    names = tmp_path / "t.txt"
    names.write_text("PVQF\n")
    assert (await mdw("universe", "define", "pvq", "--tickers-file", str(names), env=env)).code == 0
    out = await mdw("backfill", "-u", "pvq", "-t", "1d", "--start", "2024-11-01", "--end", "2024-12-31",
                    env=env)
    assert out.code == 0, out.stderr
    out = await mdw("export", "-s", "PVQF", "--stitch", "--start", "2024-11-01", "--end", "2024-12-31",
                    "--names", "vendor", env=env)
    assert out.code == 0, out.stderr
    assert "stitched PVQF: PVQ + PVQF; changes: 2024-12-06 PVQ>PVQF" in out.stderr
    rows = out.stdout.splitlines()[1:]
    rng = day_range_ms(date(2024, 11, 1), date(2024, 12, 31), NEW_YORK)
    want = [*sim.market.aggregates("PVQ", ONE_DAY, rng.start_ms, rng.end_ms).t.tolist(),
            *sim.market.aggregates("PVQF", ONE_DAY, rng.start_ms, rng.end_ms).t.tolist()]
    assert [int(r.split(",")[2]) for r in rows] == want
    assert {r.split(",")[0] for r in rows} == {"PVQF"}
    out = await mdw("export", "-s", "PVQF", "--stitch", "--adjust", "splits", "--start", "2024-11-01",
                    env=env)
    assert out.code == 2 and len(out.stderr_lines) == 1
    out = await mdw("update", "--universe", "pvq", "--dry-run", env=env)
    assert out.code == 0, out.stderr
    assert "universe pvq: 2 tickers listed between 2024-11-01" in out.stderr
    offline = cli_env(None, sqlite_url)  # no key: a dry run resolves from stored reference data
    out = await mdw("backfill", "-u", "pvq", "--start", "2024-11-01", "--end", "2024-12-31", "--dry-run",
                    env=offline)
    assert out.code == 0 and "universe pvq: 2 tickers" in out.stderr, out.stderr
    assert (await mdw("universe", "define", "spy", "--underlying", "SPY", "--expiry", "2024-12",
                      env=offline)).code == 0
    out = await mdw("backfill", "-u", "spy", "--start", "2024-12-02", "--dry-run", env=offline)
    assert out.code == 2 and len(out.stderr_lines) == 1 and "POLYGON_API_KEY" in out.stderr, out.stderr

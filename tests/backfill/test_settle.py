"""The settle pass against the simulator: a daily bar the vendor revised after the close is
corrected once, counted as bars_updated, and never fetched again."""

from __future__ import annotations

from datetime import date, datetime, time

from mdw.backfill import run_backfill
from mdw.backfill.settle_window import SettleWindow
from mdw.domain import NEW_YORK, AssetClass, SeriesKey, Timeframe, local_midnight_ms
from mdw.polygon import Pacing, PolygonClient
from mdw.simulator.revisions import REVISED_BY_DEFAULT
from mdw.simulator.testing import SimFactory
from mdw.store import Store

from .helpers import make_spec

D1 = Timeframe(1, "d")


def _et(day: date, hour: int, minute: int = 0) -> int:
    return int(datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK).timestamp() * 1000)


def test_settle_window_takes_the_last_sessions_after_eleven_the_next_day() -> None:
    """Tuesday 2025-03-04's session settles from Wednesday 11:00 ET; weekends and holidays are skipped."""
    window = SettleWindow()
    before = _et(date(2025, 3, 5), 10, 59)
    assert window.days(AssetClass.STOCKS, before) == [date(2025, 2, 28), date(2025, 3, 3)]
    assert window.days(AssetClass.STOCKS, _et(date(2025, 3, 5), 11)) == [date(2025, 3, 3), date(2025, 3, 4)]
    assert window.days(AssetClass.STOCKS, _et(date(2024, 7, 5), 12)) == [date(2024, 7, 2), date(2024, 7, 3)]
    assert window.days(AssetClass.CRYPTO, _et(date(2025, 3, 9), 12)) == [date(2025, 3, 7), date(2025, 3, 8)]
    assert SettleWindow(0).days(AssetClass.STOCKS, _et(date(2025, 3, 5), 12)) == []
    assert SettleWindow.parse(3, "09:30") == SettleWindow(3, time(9, 30))


async def test_settle_pass_corrects_a_revised_daily_bar_and_counts_it_as_updated(
    store: Store, sim_factory: SimFactory,
) -> None:
    """ABBV's bar stored at the close is preliminary; the settle pass the next day replaces it with
    the vendor's revision (one bar updated, logged with its window); a second pass asks nothing."""
    assert "ABBV" in REVISED_BY_DEFAULT
    close = _et(date(2025, 3, 4), 20, 30)  # Tuesday, after the close: the day's bar is final for mdw
    sim = await sim_factory(keys={"k": "unlimited"}, now_ms=close)
    spec = make_spec("ABBV,KO", "1d", "2025-02-24", "2025-03-04")
    day = local_midnight_ms(date(2025, 3, 4), NEW_YORK)
    first = local_midnight_ms(date(2025, 2, 24), NEW_YORK)
    async with PolygonClient("k", sim.base_url, pacing=Pacing("unlimited")) as client:
        assert (await run_backfill(store, client, spec, now=close)).exit_code == 0
        truth = sim.market.aggregates("ABBV", D1, first, day + 86_400_000)
        held = await store.bars("ABBV", D1, first, day + 86_400_000)
        assert not held.equals(truth) and held.take(slice(0, -1)).equals(truth.take(slice(0, -1)))
        assert held.v[-1] < truth.v[-1]  # the late-reported trades are not in yet
        assert (await store.bars("KO", D1, first, day + 86_400_000)).equals(
            sim.market.aggregates("KO", D1, first, day + 86_400_000))

        later = _et(date(2025, 3, 5), 11, 30)
        sim.clock.set(later)
        report = await run_backfill(store, client, spec, now=later, settle=True)
        assert report.exit_code == 0 and report.bars_updated == 1
        assert report.settled["bars_updated"] == 1 and report.settled["series"] == 2
        assert report.settled["updated"] == [
            {"series": str(SeriesKey("ABBV", D1)), "window": "2025-03-03..2025-03-04", "bars_updated": 1}]
        assert (await store.bars("ABBV", D1, first, day + 86_400_000)).equals(truth)
        assert report.to_dict()["settle"] == report.settled

        again = await run_backfill(store, client, spec, now=later, settle=True)
        assert again.requests == 0 and again.bars_updated == 0 and again.settled["series"] == 0


async def test_settle_pass_counts_only_revised_values_when_grouped_daily_refetches_the_market(
    store: Store, sim_factory: SimFactory,
) -> None:
    """Five tickers settle in two grouped-daily requests: a bar rewritten only because it now comes
    from grouped daily is not counted; the three revised tickers' bars are, one each."""
    close = _et(date(2025, 3, 4), 20, 30)
    sim = await sim_factory(keys={"k": "unlimited"}, now_ms=close)
    spec = make_spec("ABBV,CVX,MRK,KO,AAPL", "1d", "2025-02-24", "2025-03-04")
    async with PolygonClient("k", sim.base_url, pacing=Pacing("unlimited")) as client:
        assert (await run_backfill(store, client, spec, now=close)).exit_code == 0
        later = _et(date(2025, 3, 5), 11, 30)
        sim.clock.set(later)
        report = await run_backfill(store, client, spec, now=later, settle=True)
    assert report.settled["requests"] == 2 and report.bars_updated == 3
    assert sorted((u["series"], u["bars_updated"]) for u in report.settled["updated"]) == [
        ("ABBV 1d", 1), ("CVX 1d", 1), ("MRK 1d", 1)]

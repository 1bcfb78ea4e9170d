"""Per-session coverage states (the heat map's cells) from ledger, bars and calendar."""

from __future__ import annotations

from datetime import date

import numpy as np

from mdw.domain import AssetClass, RangeSet, Timeframe, TimeRange, day_range_ms
from mdw.service.coverage_sessions import day_span, session_states

ET = AssetClass.STOCKS.tz
D1 = Timeframe.parse("1d")
NOW = day_range_ms(date(2024, 3, 1), date(2024, 3, 1), ET).start_ms  # a Friday, 00:00 ET


def _day(d: date) -> TimeRange:
    return day_range_ms(d, d, ET)


def _bars(*days: date) -> np.ndarray:
    return np.array(sorted(_day(d).start_ms for d in days), dtype=np.int64)


def test_session_states_classify_covered_empty_partial_missing_and_failed() -> None:
    """Each of the five states comes out where the ledger, bars and failures put it."""
    mon, tue, wed, thu = date(2024, 2, 26), date(2024, 2, 27), date(2024, 2, 28), date(2024, 2, 29)
    wed_part = TimeRange(_day(wed).start_ms, _day(wed).start_ms + 3600_000)
    covered = RangeSet.of([_day(mon), _day(tue), wed_part])
    cells = session_states(AssetClass.STOCKS, D1, mon, thu, covered=covered, bar_times=_bars(mon),
                           failed=RangeSet(), now_ms=NOW)
    assert [(c.day, c.state, c.bars) for c in cells] == [
        (mon, "covered", 1), (tue, "empty", 0), (wed, "partial", 0), (thu, "missing", 0)]
    failed = session_states(AssetClass.STOCKS, D1, thu, thu, covered=covered, bar_times=_bars(mon),
                            failed=RangeSet.of([_day(thu)]), now_ms=NOW)
    assert [c.state for c in failed] == ["failed"]


def test_session_states_skip_weekends_holidays_and_the_future() -> None:
    """Only NYSE sessions before now are listed: no Saturday, no Presidents' Day, no March."""
    cells = session_states(AssetClass.STOCKS, D1, date(2024, 2, 16), date(2024, 3, 8), covered=RangeSet(),
                           bar_times=_bars(), failed=RangeSet(), now_ms=NOW)
    days = [c.day for c in cells]
    assert days[0] == date(2024, 2, 16)
    assert date(2024, 2, 17) not in days and date(2024, 2, 19) not in days  # Saturday, holiday
    assert days[-1] == date(2024, 2, 29)
    assert all(c.state == "missing" for c in cells)


def test_session_states_count_every_calendar_day_for_crypto() -> None:
    """Crypto trades every day, so a weekend day is a session."""
    cells = session_states(AssetClass.CRYPTO, D1, date(2024, 2, 24), date(2024, 2, 25), covered=RangeSet(),
                           bar_times=_bars(), failed=RangeSet(), now_ms=NOW)
    assert [c.day for c in cells] == [date(2024, 2, 24), date(2024, 2, 25)]


def test_day_span_keeps_the_end_when_the_period_is_too_long() -> None:
    """A period longer than the limit is cut at its start."""
    assert day_span(date(2020, 1, 1), date(2024, 1, 10), 10) == (date(2024, 1, 1), date(2024, 1, 10))
    assert day_span(date(2024, 1, 5), date(2024, 1, 10), 10) == (date(2024, 1, 5), date(2024, 1, 10))


def test_today_is_not_missing_before_its_daily_bar_is_due() -> None:
    """At 05:00 ET on a session day the day's 1d bar cannot exist yet: the day is not a gap (#21)."""
    five_am = NOW + 5 * 3600_000
    thu, fri = date(2024, 2, 29), date(2024, 3, 1)
    cells = session_states(AssetClass.STOCKS, D1, thu, fri, covered=RangeSet(), bar_times=_bars(),
                           failed=RangeSet(), now_ms=five_am)
    assert [(c.day, c.state) for c in cells] == [(thu, "missing")]
    held = session_states(AssetClass.STOCKS, D1, fri, fri, covered=RangeSet(), bar_times=_bars(fri),
                          failed=RangeSet(), now_ms=five_am)
    assert [c.state for c in held] == ["partial"]


def test_session_states_mark_unheld_days_before_the_plans_history_outside_plan() -> None:
    """Before the plan's boundary an unheld day is outside_plan (failed too: it was refused), a held
    day keeps its state; from the boundary on, gaps are missing again."""
    mon, tue, wed, thu = date(2024, 2, 26), date(2024, 2, 27), date(2024, 2, 28), date(2024, 2, 29)
    cells = session_states(AssetClass.STOCKS, D1, mon, thu, covered=RangeSet.of([_day(tue)]),
                           bar_times=_bars(tue), failed=RangeSet.of([_day(mon)]), now_ms=NOW,
                           plan_from_ms=_day(wed).start_ms)
    assert [c.state for c in cells] == ["outside_plan", "covered", "missing", "missing"]


def test_coverage_page_has_an_outside_plan_legend_cell_and_colour() -> None:
    """The legend names the state the API serves, and the stylesheet colours its cells."""
    from importlib.resources import files

    from mdw.dashboard import shells

    assert '<span class="cell outside_plan"></span>outside plan' in shells.coverage_page()
    css = (files("mdw.dashboard") / "static" / "mdw.css").read_text()
    assert ".cell.outside_plan {" in css
    assert "outside_plan:" in (files("mdw.dashboard") / "static" / "coverage.js").read_text()

"""A universe's run at scale: progress counts tickers done of total; the report groups failures by cause."""

from __future__ import annotations

from datetime import date

from mdw.backfill.engine import job_series
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.planner import plan_backfill
from mdw.backfill.progress import TickerTally
from mdw.backfill.report import GROUP_AFTER, RunReport, SeriesOutcome, cause_of, group_failures, render
from mdw.domain import NEW_YORK, SeriesKey, Ticker, Timeframe, local_midnight_ms, parse_tickers
from mdw.store.base import RunKind

NOW = local_midnight_ms(date(2024, 6, 1), NEW_YORK)


def _plan(spans: dict[str, tuple[date, date]]) -> tuple[BackfillSpec, object]:
    tickers = tuple(parse_tickers(",".join(spans)))
    spec = BackfillSpec(tickers, (Timeframe(1, "d"), Timeframe(1, "h")), date(2024, 3, 1), date(2024, 3, 28),
                        spans=spans, universe="u")
    return spec, plan_backfill(spec, {}, NOW)


def test_ticker_tally_counts_a_ticker_done_when_its_own_and_the_grouped_requests_are() -> None:
    """25 members over four weeks: 1d is grouped (shared by all), 1h is per ticker; a ticker is
    done after its own 1h request and every grouped session; all are done at the end."""
    spans = {f"A{c}{d}": (date(2024, 3, 1), date(2024, 3, 28)) for c in "BCDEFG" for d in "XYZW"}
    spans["EEE"] = (date(2024, 3, 20), date(2024, 3, 28))  # listed late: in fewer grouped sessions
    _, plan = _plan(spans)
    requests = plan.requests  # type: ignore[attr-defined]
    grouped = [r for r in requests if r.kind == "grouped"]
    own = [r for r in requests if r.kind == "aggs"]
    assert len(grouped) == 20 and len(own) == 25  # March 1-28: 20 sessions
    tally = TickerTally(plan)  # type: ignore[arg-type]
    assert (tally.done, tally.total) == (0, 25)
    for r in own:
        tally.advanced(job_series(r)[0])
    assert tally.done == 0  # the daily bars of the grouped sessions are still to come
    for r in grouped[:-1]:
        tally.advanced(job_series(r)[0])
    assert tally.done == 0
    tally.advanced(job_series(grouped[-1])[0])
    assert tally.done == 25


def test_cause_of_drops_what_differs_between_series() -> None:
    """The ticker, the URL, the request id and the days go; the vendor's words stay."""
    a = cause_of("ticker not found by the vendor (HTTP 404 for AAPL) [GET http://x/v2/aggs/ticker/AAPL/range/1/"
                 "day/2024-01-01/2024-02-01] (request_id abc123)", "AAPL")
    b = cause_of("ticker not found by the vendor (HTTP 404 for MSFT) [GET http://x/v2/aggs/ticker/MSFT/range/1/"
                 "day/2024-03-01/2024-04-01] (request_id zzz)", "MSFT")
    assert a == b == "ticker not found by the vendor (HTTP 404 for <ticker>)"


def test_report_groups_thousands_of_failed_series_by_cause() -> None:
    """5,000 failures of two causes are two rows of the table and of the JSON report."""
    from io import StringIO

    from rich.console import Console

    report = RunReport("r", RunKind.BACKFILL)
    for i in range(5000):
        ticker = f"T{i:04d}"
        key = SeriesKey(ticker, Timeframe(1, "d"))
        reason = (f"ticker not found by the vendor (404 for {ticker}) [GET http://x/{ticker}]" if i % 5
                  else f"vendor rate limit exceeded (HTTP 429) (request_id {i})")
        report.series[key] = SeriesOutcome(key, requests_planned=1, requests_failed=1, reason=reason)
    report.series[SeriesKey("OK", Timeframe(1, "d"))] = SeriesOutcome(SeriesKey("OK", Timeframe(1, "d")),
                                                                       requests_planned=1, requests_done=1)
    report.settle(False)
    groups = group_failures(report.failed_series)
    assert [(g.count, g.cause) for g in groups] == [
        (4000, "ticker not found by the vendor (404 for <ticker>)"),
        (1000, "vendor rate limit exceeded (HTTP 429)")]
    assert report.to_dict()["failures_by_cause"][0]["examples"] == ["T0001 1d", "T0002 1d", "T0003 1d",
                                                                    "T0004 1d", "T0006 1d"]
    out = StringIO()
    render(report, Console(file=out, width=200))
    text = out.getvalue()
    assert len(report.failed_series) > GROUP_AFTER and "5,000 series did not complete, by cause" in text
    assert "T4999" not in text and text.count("\n") < 60


def test_universe_spans_are_what_the_plan_asks_for() -> None:
    """A member listed late is asked for from its listing on (no request before it)."""
    spec, plan = _plan({"AAA": (date(2024, 3, 1), date(2024, 3, 28)), "EEE": (date(2024, 3, 20),
                                                                               date(2024, 3, 28))})
    late = [r for r in plan.requests if r.ticker == "EEE"]  # type: ignore[attr-defined]
    assert late and min(r.fetch.start_ms for r in late) >= local_midnight_ms(date(2024, 3, 20), NEW_YORK)
    assert spec.wanted_for(Ticker("EEE", spec.tickers[0].asset_class)).start_ms == local_midnight_ms(
        date(2024, 3, 20), NEW_YORK)

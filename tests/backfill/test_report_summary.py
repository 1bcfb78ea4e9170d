"""The run summary counts bar series apart from corporate actions, and a run with nothing to do
says so (#21: the demo said "125 series" in its progress and "165" in its summary, and a re-run
printed a bare ``series:``)."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from mdw.backfill.plan import ActionsKey
from mdw.backfill.report import RunReport, SeriesOutcome, outcome_lines, render
from mdw.domain import SeriesKey, Timeframe
from mdw.store.base import RunKind


def _report(tickers: list[str], timeframes: list[str], stocks: list[str]) -> RunReport:
    report = RunReport("r", RunKind.BACKFILL)
    for ticker in tickers:
        for tf in timeframes:
            key = SeriesKey(ticker, Timeframe.parse(tf))
            report.series[key] = SeriesOutcome(key, requests_planned=1, requests_done=1)
    for stock in stocks:
        for kind in ("splits", "dividends"):
            akey = ActionsKey(stock, kind)
            report.series[akey] = SeriesOutcome(akey, requests_planned=1, requests_done=1)
    report.settle(False)
    return report


def test_report_summary_counts_bar_series_apart_from_corporate_actions() -> None:
    report = _report(["AAPL", "MSFT", "X:BTCUSD"], ["1m", "1h"], ["AAPL", "MSFT"])
    assert outcome_lines(report) == [
        "bar series (ticker x timeframe) fetched: 6 ok",
        "corporate actions (splits, dividends; one row per stock and kind, 2 stocks): 4 ok",
    ]


def test_report_summary_of_a_run_with_nothing_to_do_never_prints_a_bare_series() -> None:
    out = StringIO()
    render(_report([], [], []), Console(file=out, width=200))
    text = out.getvalue()
    assert "nothing to fetch: every series asked for was already held" in text
    assert "series:" not in text

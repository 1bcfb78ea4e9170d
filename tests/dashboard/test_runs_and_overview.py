"""The runs page reads as tables; the overview's freshness table is grouped, ordered and filterable (#21)."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mdw.dashboard.overview import _series_rows, _series_table

from .conftest import Served, screenshot

pytestmark = pytest.mark.timeout(120)


def _wait(drv: Any, condition: Any) -> Any:
    return WebDriverWait(drv, 10, poll_frequency=0.05).until(condition)


def test_a_run_report_is_shown_as_tables(served: Served, browser: Any) -> None:
    runs = served.get("/v1/backfills?limit=50")["runs"]
    run_id = next(r["id"] for r in runs if r["status"] == "ok")
    report = served.get(f"/v1/backfills/{run_id}")["report"]
    browser.get(f"{served.url}/runs?run={run_id}")
    body = browser.find_element(By.ID, "report-body")
    _wait(browser, lambda d: body.get_attribute("data-run") == run_id
          and body.find_elements(By.TAG_NAME, "table"))
    series = body.find_elements(By.CSS_SELECTOR, 'table[data-list="series"] tbody tr')
    assert len(series) == len(report["series"]) > 0
    assert [r.find_element(By.TAG_NAME, "td").text for r in series] == [s["series"] for s in report["series"]]
    fetched = body.find_element(By.CSS_SELECTOR, 'tr[data-key="bars_fetched"] td').text
    assert fetched == f"{report['bars_fetched']:,}"
    assert not browser.find_element(By.ID, "report-json").is_displayed()  # raw JSON folded away
    assert "{" not in body.text
    screenshot(browser, "runs")


def test_overview_freshness_rows_group_by_symbol_in_timeframe_order() -> None:
    """Server-rendered (no JavaScript): one tbody per symbol, timeframes 1m < 5m < 1h < 1d < 1w."""
    symbols = [{"ticker": t, "active": True, "timeframes": tfs,
                "series": [{"timeframe": tf, "bars": 1, "stale": False} for tf in tfs]}
               for t, tfs in (("MSFT", ["1d", "1w"]), ("AAPL", ["1d", "1h", "1m", "5m", "1w", "15m"]))]
    html = _series_table(_series_rows(symbols))
    assert html.index('data-ticker="AAPL"') < html.index('data-ticker="MSFT"')
    order = re.findall(r'data-series="AAPL/([^"]+)"', html)
    assert order == ["1m", "5m", "15m", "1h", "1d", "1w"], order
    assert html.count('<tbody class="group"') == 2 and 'id="series-filter"' in html


def test_overview_filter_box_hides_other_symbols(served: Served, browser: Any) -> None:
    browser.get(served.url + "/")
    groups = browser.find_elements(By.CSS_SELECTOR, "#series tbody.group")
    tickers = [g.get_attribute("data-ticker") for g in groups]
    assert tickers == sorted(tickers) and len(set(tickers)) == len(tickers) >= 4
    box = browser.find_element(By.ID, "series-filter")
    count = browser.find_element(By.ID, "series-count")
    for typed, expected in (("nv", ["NVDA/1d"]), ("x: 1d", ["X:BTCUSD/1d"])):
        box.clear()
        box.send_keys(typed)
        _wait(browser, lambda d, n=len(expected): count.get_attribute("data-shown") == str(n))
        rows = browser.find_elements(By.CSS_SELECTOR, "#series tbody tr")
        shown = [r.get_attribute("data-series") for r in rows if r.is_displayed()]
        assert shown == expected, (typed, shown)
    box.clear()
    box.send_keys("a")
    _wait(browser, lambda d: count.get_attribute("data-shown") == "1")
    screenshot(browser, "overview-filter")


def test_overview_explains_why_series_are_stale(served: Served) -> None:
    """The fixture's data ends in 2024 and its scheduler is off: the page says so and how to fill."""
    with urllib.request.urlopen(served.url + "/", timeout=10) as resp:  # server-rendered, no JavaScript
        html = resp.read().decode()
    stale = served.get("/v1/overview")["series"]["stale"]
    assert stale > 0
    note = html[html.index('id="stale-note"'):]
    note = note[:note.index("</p>")]
    assert f"{stale:,} series are stale" in note and "scheduler is off" in note and "mdw update" in note

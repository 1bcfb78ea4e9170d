"""The dashboard in headless Chromium against ``mdw serve`` on a backfilled database."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import GAP, Served, screenshot

pytestmark = pytest.mark.timeout(120)


def _wait(drv: Any, condition: Any, timeout: float = 10) -> Any:
    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(condition)


def _field(drv: Any, name: str) -> str:
    return str(drv.find_element(By.CSS_SELECTOR, f'[data-field="{name}"]').get_attribute("data-value"))


def _chart_ready(drv: Any) -> dict[str, str]:
    box = drv.find_element(By.ID, "chart")
    _wait(drv, lambda d: box.get_attribute("data-state") in ("ready", "error"))
    assert box.get_attribute("data-state") == "ready", drv.find_element(By.ID, "chart-summary").text
    keys = ("candles", "first-close", "last-close", "adjust", "markers")
    return {k: str(box.get_attribute(f"data-{k}")) for k in keys}


def test_overview_numbers_equal_the_api_and_render_without_javascript(served: Served, browser: Any) -> None:
    """Every overview number equals /v1/overview and /v1/symbols; the raw HTML holds them too."""
    browser.set_window_size(1280, 900)
    browser.get(served.url + "/")
    ov = served.get("/v1/overview")
    for name in ("tracked_symbols", "series", "bars", "stale"):
        assert int(_field(browser, name)) == ov["series"][name], name
    hour = ov["vendor"]["last_hour"]
    for name in ("requests", "rate_limited", "retries"):
        assert int(_field(browser, name)) == hour[name], name
    assert _field(browser, "breaker") == ov["vendor"]["breaker"] == "closed"
    assert ov["series"]["bars"] > 0
    symbols = served.get("/v1/symbols")["symbols"]
    bars = {(sym["ticker"], s["timeframe"]): s["bars"] for sym in symbols for s in sym["series"]}
    rows = browser.find_elements(By.CSS_SELECTOR, "#series tbody tr")
    cells = {r.get_attribute("data-series"): r.find_element(By.CSS_SELECTOR, "td[data-bars]") for r in rows}
    shown = {tuple(k.split("/")): int(td.get_attribute("data-bars")) for k, td in cells.items()}
    assert shown == bars
    runs = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert [r.get_attribute("data-run") for r in runs] == [r["id"] for r in ov["runs"]["recent"]]
    screenshot(browser, "overview")
    with urllib.request.urlopen(served.url + "/", timeout=10) as resp:  # no JavaScript at all
        html = resp.read().decode()
    assert f'data-field="bars" data-value="{ov["series"]["bars"]}"' in html


def test_pages_fit_a_phone_width(served: Served, browser: Any) -> None:
    """At 390 px (emulated phone) the overview and the chart need no sideways scrolling of the page."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        for path, name in (("/", "overview-390"), ("/chart?ticker=AAPL&timeframe=1d", "chart-390")):
            browser.get(served.url + path)
            if name.startswith("chart"):
                _chart_ready(browser)
            assert browser.execute_script("return window.innerWidth") == 390
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390, path
            screenshot(browser, name)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_heatmap_shows_the_gap_cut_out_of_the_data(served: Served, browser: Any) -> None:
    """The sessions deleted from MSFT are missing, their neighbours covered; a gap offers a backfill."""
    ticker, tf, first, last = GAP
    browser.get(f"{served.url}/coverage?timeframe={tf}&start=2024-02-20&end=2024-04-10")
    _wait(browser, lambda d: d.find_element(By.ID, "heatmap").get_attribute("data-ready") == "1")

    def state(day: str) -> str:
        cell = browser.find_element(By.CSS_SELECTOR, f'.cell[data-ticker="{ticker}"][data-day="{day}"]')
        return str(cell.get_attribute("data-state"))

    assert [state(d) for d in ("2024-03-12", "2024-03-13", "2024-03-14")] == ["missing"] * 3
    assert state("2024-03-11") == "covered" and state("2024-03-15") == "covered"
    assert state("2024-03-11") == "covered"
    other = browser.find_element(By.CSS_SELECTOR, '.cell[data-ticker="AAPL"][data-day="2024-03-13"]')
    assert other.get_attribute("data-state") == "covered"
    api = served.get(f"/v1/coverage/{ticker}?timeframe={tf}&start={first}&end={last}")
    assert [s["state"] for s in api["heatmap"]["sessions"]] == ["missing"] * 3
    screenshot(browser, "coverage")
    browser.find_element(By.CSS_SELECTOR, f'.cell[data-ticker="{ticker}"][data-day="2024-03-13"]').click()
    dialog = browser.find_element(By.ID, "gap-dialog")
    _wait(browser, lambda d: dialog.get_attribute("open") is not None)
    assert "2024-03-13" in browser.find_element(By.ID, "gap-text").text
    dialog.find_element(By.CSS_SELECTOR, 'button[value="cancel"]').click()
    _wait(browser, lambda d: dialog.get_attribute("open") is None)


def test_chart_renders_one_candle_per_stored_bar_of_the_range(served: Served, browser: Any) -> None:
    """The chart of AAPL 1d over March 2024 holds exactly the bars the API returns for it."""
    browser.get(f"{served.url}/chart?ticker=AAPL&timeframe=1d&start=2024-03-01&end=2024-03-28")
    shown = _chart_ready(browser)
    api = served.get("/v1/bars/AAPL?timeframe=1d&start=2024-03-01&end=2024-03-28")
    assert api["count"] == 20  # the sessions of 1-28 March 2024
    assert int(shown["candles"]) == api["count"]
    assert float(shown["first-close"]) == api["bars"][0]["close"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas")


def test_adjustment_toggle_changes_prices_across_a_split(served: Served, browser: Any) -> None:
    """Across NVDA's 1:10 split of 2024-06-10, raw closes jump and split-adjusted ones do not."""
    rng = "start=2024-05-20&end=2024-06-21"
    browser.get(f"{served.url}/chart?ticker=NVDA&timeframe=1d&{rng}")
    raw = _chart_ready(browser)
    assert raw["adjust"] == "none"
    browser.find_element(By.CSS_SELECTOR, 'input[name="adjust"][value="splits"]').click()
    _wait(browser, lambda d: d.find_element(By.ID, "chart").get_attribute("data-adjust") == "splits")
    adjusted = _chart_ready(browser)
    api_raw = served.get(f"/v1/bars/NVDA?timeframe=1d&{rng}")["bars"]
    api_adj = served.get(f"/v1/bars/NVDA?timeframe=1d&adjust=splits&{rng}")["bars"]
    assert float(raw["first-close"]) == api_raw[0]["close"]
    assert float(raw["last-close"]) == api_raw[-1]["close"]
    assert float(adjusted["first-close"]) == pytest.approx(api_adj[0]["close"])
    assert float(adjusted["last-close"]) == pytest.approx(api_adj[-1]["close"])
    # The split inside the range: raw/adjusted differs by its ratio between the first and last bar.
    before = float(raw["first-close"]) / float(adjusted["first-close"])
    after = float(raw["last-close"]) / float(adjusted["last-close"])
    assert before / after == pytest.approx(10, rel=1e-6)
    assert int(raw["markers"]) >= 1  # the split's marker (and any ex-dividend date in range)
    screenshot(browser, "chart")


def test_admin_action_without_a_key_is_refused(served: Served, browser: Any) -> None:
    """Tracking a symbol with no key gets the API's 401 on the page, and nothing changes."""
    before = served.get("/v1/symbols")
    browser.get(served.url + "/admin")
    form = browser.find_element(By.ID, "add-form")
    form.find_element(By.NAME, "ticker").send_keys("KO")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    result = browser.find_element(By.ID, "admin-result")
    _wait(browser, lambda d: result.get_attribute("data-status"))
    assert result.get_attribute("data-status") == "401"
    assert "401" in result.text
    assert served.get("/v1/symbols") == before
    assert served.send("/v1/symbols", "POST", {"ticker": "KO", "timeframes": ["1d"]})[0] == 401


def test_admin_key_stays_out_of_urls_and_local_storage(served: Served, browser: Any) -> None:
    """A key typed on the page authorises the call; it is in no URL and not in localStorage."""
    browser.get(served.url + "/admin")
    keyform = browser.find_element(By.ID, "key-form")
    keyform.find_element(By.NAME, "key").send_keys(served.admin_key)
    keyform.find_element(By.NAME, "keep").click()
    keyform.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    form = browser.find_element(By.ID, "backfill-form")
    form.find_element(By.NAME, "symbols").send_keys("MSFT")
    for name, value in (("start", "2024-09-03"), ("end", "2024-09-06")):  # outside the gap test's range
        browser.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, name), value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    result = browser.find_element(By.ID, "admin-result")
    _wait(browser, lambda d: result.get_attribute("data-status"))
    assert result.get_attribute("data-status") == "202", result.text
    assert served.admin_key not in browser.current_url
    assert browser.execute_script("return window.localStorage.length") == 0
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not any(served.admin_key in u for u in urls)
    screenshot(browser, "admin")
    browser.get(served.url + "/runs")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr[data-run]"))
    first = browser.find_element(By.CSS_SELECTOR, "#runs-table tbody tr[data-run]")
    run_id = first.get_attribute("data-run")
    first.find_element(By.TAG_NAME, "button").click()
    report = browser.find_element(By.ID, "report-json")
    _wait(browser, lambda d: run_id in str(report.get_attribute("textContent")))
    assert '"report"' in str(report.get_attribute("textContent"))  # the raw JSON, folded under the tables
    screenshot(browser, "runs")

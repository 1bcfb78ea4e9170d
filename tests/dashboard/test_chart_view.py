"""The chart reads like a chart: OHLCV on hover, its time zone, its range, rounded prices (#21)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import CRYPTO, Served, screenshot

pytestmark = pytest.mark.timeout(120)
NY = ZoneInfo("America/New_York")


def _ready(drv: Any, path: str) -> Any:
    drv.get(path)
    box = drv.find_element(By.ID, "chart")
    WebDriverWait(drv, 15, poll_frequency=0.05).until(
        lambda d: box.get_attribute("data-state") in ("ready", "error"))
    assert box.get_attribute("data-state") == "ready", drv.find_element(By.ID, "chart-summary").text
    return box


def _day(ms: str, zone: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, zone).date().isoformat()


def test_stock_chart_has_legend_zone_range_rounding_and_fills_the_window(served: Served,
                                                                         browser: Any) -> None:
    browser.set_window_size(1280, 900)
    box = _ready(browser, served.url + "/chart?ticker=AAPL&timeframe=1d")
    assert "New York" in browser.find_element(By.ID, "ch-zone").text
    start = browser.find_element(By.ID, "ch-start").get_attribute("value")
    end = browser.find_element(By.ID, "ch-end").get_attribute("value")
    shown = (_day(box.get_attribute("data-first-t"), NY), _day(box.get_attribute("data-last-t"), NY))
    assert (start, end) == shown
    assert browser.find_element(By.ID, "ch-adjust").is_displayed()
    legend = browser.find_element(By.ID, "ch-legend")
    last_t = box.get_attribute("data-last-t")
    assert legend.get_attribute("data-t") == last_t  # before any hover: the newest bar
    ActionChains(browser).move_to_element_with_offset(box, -box.rect["width"] // 4, 0).perform()
    WebDriverWait(browser, 10, poll_frequency=0.05).until(
        lambda d: legend.get_attribute("data-t") != last_t)
    t = int(legend.get_attribute("data-t"))
    bar = served.get(f"/v1/bars/AAPL?timeframe=1d&names=vendor&start={t}&end={t + 1}")["bars"][0]
    values = {s.get_attribute("data-k"): s.text.split(" ", 1)[1]
              for s in legend.find_elements(By.CSS_SELECTOR, "span[data-k]")}
    assert values == {"O": f"{bar['o']:.2f}", "H": f"{bar['h']:.2f}", "L": f"{bar['l']:.2f}",
                      "C": f"{bar['c']:.2f}", "V": f"{round(bar['v']):,}"}
    summary = browser.find_element(By.ID, "chart-summary").text
    assert all(re.fullmatch(r"\d+\.\d\d", c) for c in re.findall(r"close ([\d.]+)", summary)), summary
    inner_w, inner_h = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    assert box.rect["width"] >= 0.9 * inner_w and box.rect["height"] >= 0.6 * inner_h, box.rect
    screenshot(browser, "chart-legend")  # hovered: the legend shows that bar


def test_crypto_chart_is_in_utc_without_adjustment_toggles(served: Served, browser: Any) -> None:
    box = _ready(browser, f"{served.url}/chart?ticker={CRYPTO}&timeframe=1d")
    assert browser.find_element(By.ID, "ch-zone").text == "Times in UTC."
    assert not browser.find_element(By.ID, "ch-adjust").is_displayed()
    assert box.get_attribute("data-adjust") == "none"
    last_day = _day(box.get_attribute("data-last-t"), UTC)
    assert browser.find_element(By.ID, "ch-end").get_attribute("value") == last_day

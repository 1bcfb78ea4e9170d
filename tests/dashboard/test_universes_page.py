"""The Universes page in headless Chromium: size over time and coverage by universe equal the API."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import GAP, SYMBOLS, Served, screenshot

pytestmark = pytest.mark.timeout(120)
RANGE = "start=2024-01-02&end=2024-08-30"


def test_universes_page_shows_size_over_time_and_coverage_by_universe(served: Served, browser: Any) -> None:
    """A universe of the served tickers: three members every day; MSFT's cut sessions make it the one
    partial member; every number on the page is the API's."""
    status, body = served.send("/v1/reference/refresh", "POST", key=served.admin_key)
    assert status == 200, body
    status, body = served.send("/v1/universes/demo", "PUT", {"tickers": SYMBOLS.split(",")},
                               key=served.admin_key)
    assert status == 200, body
    browser.get(f"{served.url}/universes?name=demo&{RANGE}&timeframes=1d")
    WebDriverWait(browser, 15, poll_frequency=0.05).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") in ("1", "error"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", \
        browser.find_element(By.ID, "uni-status").text
    sizes = served.get(f"/v1/universes/demo/sizes?{RANGE}&points=120")["sizes"]
    box = browser.find_element(By.ID, "uni-sizes")
    assert box.get_attribute("data-points") == str(len(sizes)) and len(sizes) > 10
    assert box.get_attribute("data-first") == box.get_attribute("data-last") == "3"
    assert {s["members"] for s in sizes} == {3}
    (cov,) = served.get(f"/v1/universes/coverage?{RANGE}&timeframes=1d")["coverage"]
    row = browser.find_element(By.CSS_SELECTOR, '#uni-coverage tr[data-universe="demo"][data-timeframe="1d"]')
    shown = {k: row.find_element(By.CSS_SELECTOR, f"td[data-{k}]").get_attribute(f"data-{k}")
             for k in ("members", "complete", "partial", "missing", "ratio")}
    assert shown == {k: str(cov[k]) for k in shown}
    assert (cov["members"], cov["complete"], cov["partial"]) == (3, 2, 1)  # the gap cut out of MSFT
    assert GAP[0] == "MSFT" and 0.9 < cov["ratio"] < 1
    screenshot(browser, "universes")

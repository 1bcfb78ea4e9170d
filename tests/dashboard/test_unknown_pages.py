"""What the dashboard says when asked for something it does not have (#21)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import Served

pytestmark = pytest.mark.timeout(120)


def _get(url: str, accept: str) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.headers["content-type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers["content-type"], exc.read().decode()


def test_an_unknown_page_is_an_html_404_for_a_browser_and_json_for_the_api(served: Served,
                                                                           browser: Any) -> None:
    status, ctype, body = _get(served.url + "/nosuchpage", "text/html,application/xhtml+xml,*/*;q=0.8")
    assert status == 404 and ctype.startswith("text/html")
    assert "Page not found" in body and "/nosuchpage" in body and 'href="/chart"' in body
    status, ctype, body = _get(served.url + "/nosuchpage", "application/json")
    assert status == 404 and ctype.startswith("application/json") and json.loads(body)["error"]
    status, ctype, body = _get(served.url + "/v1/nosuch", "text/html")  # the API stays JSON
    assert status == 404 and ctype.startswith("application/json")
    browser.get(served.url + "/coverage/oops")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Page not found"
    assert "/coverage/oops" in browser.find_element(By.ID, "not-found").text


def test_an_unknown_ticker_on_the_chart_is_named_with_a_did_you_mean(served: Served, browser: Any) -> None:
    browser.get(served.url + "/chart?ticker=AAPLE")
    box = browser.find_element(By.ID, "chart")
    WebDriverWait(browser, 10, poll_frequency=0.05).until(
        lambda d: box.get_attribute("data-state") == "unknown")
    text = browser.find_element(By.ID, "chart-summary").text
    assert "unknown ticker" in text and "AAPLE" in text and "Did you mean AAPL" in text, text
    assert "Track a symbol first" not in text

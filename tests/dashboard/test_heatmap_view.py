"""The coverage heat map opens where the gaps appear: the most recent sessions (#21)."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import END, START, Served, screenshot

pytestmark = pytest.mark.timeout(120)


def test_heatmap_opens_at_the_latest_sessions_with_month_names(served: Served, browser: Any) -> None:
    browser.set_window_size(1280, 900)
    browser.get(f"{served.url}/coverage?timeframe=1d&start={START}&end={END}")
    heatmap = browser.find_element(By.ID, "heatmap")
    WebDriverWait(browser, 10, poll_frequency=0.05).until(
        lambda d: heatmap.get_attribute("data-ready") == "1")
    left, width, total = browser.execute_script(
        "const m = document.getElementById('heatmap'); return [m.scrollLeft, m.clientWidth, m.scrollWidth];")
    assert total > width  # eight months of sessions do not fit: the map scrolls
    assert left + width >= total - 2, (left, width, total)  # ...and opens at its right end
    labels = [s.text for s in heatmap.find_elements(By.CSS_SELECTOR, "thead th[title] span") if s.text]
    assert labels[0] == "Jan 2024" and labels[-1] == "Aug 2024", labels
    last_cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr td:last-child .cell")
    assert last_cells and all(c.is_displayed() for c in last_cells)
    screenshot(browser, "coverage-latest")

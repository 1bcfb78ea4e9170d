"""Headless Chromium for the dashboard tests: Debian's ``chromium`` driven by its ``chromedriver``.

The flags are the ones this machine needs: no sandbox (root), no GPU, and no background
networking, since the machine's closed network refuses Chromium's own connections.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when the browser is not installed."""
    browser = os.environ.get("MDW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("MDW_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return None
    return browser, driver


def start_browser(browser: str, driver: str, width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A fresh headless browser with an empty profile of its own."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    profile = Path(tempfile.mkdtemp(prefix="mdw-chromium-"))
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    drv = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    drv.set_page_load_timeout(20)
    drv.set_script_timeout(20)
    return drv

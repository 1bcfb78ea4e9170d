"""The dashboard's 1m chart follows ``/v1/stream/bars``: each bar the stream stores is drawn.

``mdw serve`` streams from the simulator (its clock frozen at 09:31 ET and moved by the test);
the chart's ``data-*`` attributes say what it drew.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import MDW, Served, _free_port, _run, _Simulator, _wait_ready

OPEN_MS = 1709649060000  # 2024-03-05 14:31 UTC, 09:31 ET


class _StreamingSimulator(_Simulator):
    """The simulator with its data clock frozen at 09:31 ET."""

    def __init__(self) -> None:
        from mdw.simulator.config import SimConfig
        from mdw.simulator.server import SimServer

        super().__init__()
        self.server = SimServer(SimConfig(seed=42, keys={"test-key": "unlimited"}, now_ms=OPEN_MS, speed=0))

    def advance(self, ms: int) -> None:
        self.loop.call_soon_threadsafe(self.server.clock.advance, ms)


@pytest.fixture(scope="module")
def live(chromium: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Served, _StreamingSimulator]]:
    """``mdw serve`` with the stream on, over AAPL's 1m bars of the morning."""
    tmp = tmp_path_factory.mktemp("live")
    db_url = f"sqlite:///{tmp / 'live.db'}"
    with _StreamingSimulator() as sim:
        env = {**os.environ, "POLYGON_BASE_URL": sim.server.base_url, "POLYGON_API_KEY": "test-key",
               "MDW_DATABASE_URL": db_url, "MDW_RATE_LIMIT": "unlimited", "MDW_SCHEDULER": "false",
               "MDW_LOG_LEVEL": "WARNING", "MDW_CONFIG": str(tmp / "none.toml"), "MDW_STREAM": "true",
               "MDW_STREAM_URL": sim.server.ws_url, "MDW_STREAM_BATCH_MS": "20",
               "MDW_STREAM_RECONCILE_S": "3600"}
        _run(["backfill", "--symbols", "AAPL", "--timeframes", "1m", "--start", "2024-03-05",
              "--end", "2024-03-05"], env)
        port = _free_port()
        log = (tmp / "serve.log").open("w")
        proc = subprocess.Popen([*MDW, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, tmp / "serve.log")
            served = Served(url, "", db_url)
            deadline = time.monotonic() + 30
            while not served.get("/readyz")["checks"]["stream"].get("connected"):
                assert time.monotonic() < deadline, "the stream did not subscribe"
                time.sleep(0.1)
            yield served, sim
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


def _truth(sim: _StreamingSimulator, start: int, end: int) -> Any:
    return sim.server.market.minute_bars("AAPL", start, end)


def test_live_chart_draws_each_streamed_bar(live: tuple[Served, _StreamingSimulator], browser: Any) -> None:
    """Two minutes pass: the 1m chart gains two candles, the last one REST's close of 09:32."""
    served, sim = live
    browser.get(f"{served.url}/chart?ticker=AAPL&timeframe=1m")
    box = browser.find_element(By.ID, "chart")
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda d: box.get_attribute("data-state") == "ready"
               and box.get_attribute("data-live") == "on")
    before = int(box.get_attribute("data-candles"))
    assert int(box.get_attribute("data-last-t")) == OPEN_MS - 60_000  # the backfill ends at 09:30
    sim.advance(2 * 60_000)
    wait.until(lambda d: box.get_attribute("data-live-bars") == "2")
    assert int(box.get_attribute("data-candles")) == before + 2
    truth = _truth(sim, OPEN_MS, OPEN_MS + 2 * 60_000)
    assert int(box.get_attribute("data-last-t")) == int(truth.t[-1])
    assert float(box.get_attribute("data-last-close")) == float(truth.c[-1])

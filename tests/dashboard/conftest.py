"""A served demo-like warehouse and a headless browser for the dashboard's browser tests.

The warehouse is built the way a user builds one: the simulator runs on loopback, ``mdw backfill``
fills a small SQLite database from it, ``mdw keys create`` makes an admin key, the test cuts one
gap out of the data with ``Store.delete_range``, and ``mdw serve`` (its scheduler off, so nothing
refills the gap) serves API and dashboard on a free port.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from .browser import chromium_paths, start_browser

MDW = [str(Path(sys.executable).with_name("mdw"))]
SYMBOLS = "AAPL,NVDA,MSFT"
CRYPTO = "X:BTCUSD"  # one non-stock: shown in UTC, no split/dividend adjustment
START, END = "2024-01-02", "2024-08-30"
GAP = ("MSFT", "1d", date(2024, 3, 12), date(2024, 3, 14))  # three sessions cut out of the data
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@dataclass(frozen=True, slots=True)
class Served:
    """A running ``mdw serve`` on the test database."""

    url: str
    admin_key: str
    database_url: str

    def get(self, path: str, key: str | None = None) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Accept": "application/json"})
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def send(self, path: str, method: str = "GET", body: Any = None,
             key: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"null")

    def wait_run(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll a run until it is no longer running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.get(f"/v1/backfills/{run_id}")
            if run["status"] != "running":
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} still running after {timeout} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Simulator:
    """The Polygon-compatible simulator on its own event loop in a thread."""

    def __init__(self) -> None:
        from mdw.simulator.config import SimConfig
        from mdw.simulator.server import SimServer

        self.server = SimServer(SimConfig(seed=42, keys={"test-key": "unlimited"}))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulator", daemon=True)

    def __enter__(self) -> _Simulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run([*MDW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"mdw {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


async def _cut_gap_and_make_key(url: str) -> tuple[int, str]:
    """Delete the GAP sessions' bars and their coverage; create an admin key (as `mdw keys create`)."""
    from mdw.domain import AssetClass, day_range_ms
    from mdw.service.auth import new_key
    from mdw.store import open_store

    ticker, tf, first, last = GAP
    rng = day_range_ms(first, last, AssetClass.STOCKS.tz)
    key, record = new_key("admin", "dashboard-tests", int(time.time() * 1000))
    async with await open_store(url) as store:
        deleted = await store.delete_range(ticker, tf, rng.start_ms, rng.end_ms)
        await store.keys.add(record)
    return deleted, key


def _wait_ready(url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mdw serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("mdw serve did not answer /healthz in time")


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Chromium and chromedriver; skipped when missing outside CI, a failure under CI."""
    found = chromium_paths()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the dashboard's browser tests need chromium and chromedriver under CI")
        pytest.skip("chromium/chromedriver not installed (apt-get install chromium chromium-driver)")
    return found


@pytest.fixture(scope="session")
def served(chromium: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``mdw serve`` on a database backfilled from the simulator, with one gap cut out."""
    tmp = tmp_path_factory.mktemp("dashboard")
    db_url = f"sqlite:///{tmp / 'demo.db'}"
    with _Simulator() as sim:
        env = {**os.environ, "POLYGON_BASE_URL": sim.server.base_url, "POLYGON_API_KEY": "test-key",
               "MDW_DATABASE_URL": db_url, "MDW_RATE_LIMIT": "unlimited", "MDW_SCHEDULER": "false",
               "MDW_LOG_LEVEL": "WARNING", "MDW_CONFIG": str(tmp / "none.toml")}
        _run(["backfill", "--symbols", SYMBOLS, "--timeframes", "1d", "--start", START, "--end", END,
              "--corporate-actions"], env)
        _run(["backfill", "--symbols", CRYPTO, "--timeframes", "1d", "--start", "2024-07-01", "--end", END],
             env)
        port = _free_port()
        log = (tmp / "serve.log").open("w")
        # The server starts (imports, calendar) while the gap is cut: SQLite in WAL mode lets both in.
        proc = subprocess.Popen([*MDW, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deleted, key = asyncio.run(_cut_gap_and_make_key(db_url))
            assert deleted == 3
            _wait_ready(url, proc, tmp / "serve.log")
            yield Served(url, key, db_url)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


@pytest.fixture(scope="session")
def browser(chromium: tuple[str, str]) -> Iterator[Any]:
    """One headless Chromium for the session (1280 x 900)."""
    drv = start_browser(*chromium)
    try:
        yield drv
    finally:
        drv.quit()


def screenshot(drv: Any, name: str) -> Path:
    """Save a PNG of the current page: under docs/img/ when MDW_SCREENSHOTS=1, else in a temp dir.

    Refreshing the committed screenshots is a deliberate act, so an ordinary test run leaves the
    working tree clean.
    """
    target = DOCS_IMG if os.environ.get("MDW_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "mdw-img"
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(drv.get_screenshot_as_png())
    tmp.replace(path)
    return path

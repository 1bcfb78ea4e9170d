"""Shared helpers of the comparison benchmarks: workloads, a simulator process, fresh databases, results.

Every figure is measured side by side in one run and quoted as a ratio, because absolute times on
a shared two-core machine are noise. Contenders run in their own processes so one contender's
blocking work (the original system's per-row inserts) cannot slow another, and the simulator runs
in its own process too, as a remote vendor would.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from mdw.backfill.demo import CRYPTO, ETFS, STOCKS, TIMEFRAMES
from mdw.backfill.plan import BackfillSpec
from mdw.domain import Ticker, Timeframe, day_range_ms, parse_tickers, parse_timeframes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = os.environ.get("MDW_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_KEY = "bench-key"
# The data clock is pinned so every run asks for the same bars: the workloads end on END.
END = date(2025, 6, 30)
SIM_NOW = "2025-07-02"
LATENCY_MS = 30.0


# -- workloads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """Tickers x timeframes x days ending on :data:`END`, and how it was scaled from the standard one."""

    name: str
    tickers: tuple[str, ...]
    timeframes: tuple[str, ...]
    days: int
    note: str = ""

    @property
    def start(self) -> date:
        return END - timedelta(days=self.days - 1)

    @property
    def end(self) -> date:
        return END

    def parsed_tickers(self) -> list[Ticker]:
        return parse_tickers(list(self.tickers))

    def parsed_timeframes(self) -> list[Timeframe]:
        return parse_timeframes(list(self.timeframes))

    def spec(self) -> BackfillSpec:
        """mdw's spec for it: bars only (no peer fetches corporate actions), defaults otherwise."""
        return BackfillSpec(
            tuple(self.parsed_tickers()), tuple(self.parsed_timeframes()), self.start, self.end
        )

    def ranges(self) -> Iterator[tuple[Ticker, Timeframe, int, int]]:
        """Every series with its half-open ms range (local days of the ticker's market)."""
        for tk in self.parsed_tickers():
            rng = day_range_ms(self.start, self.end, tk.asset_class.tz)
            for tf in self.parsed_timeframes():
                yield tk, tf, rng.start_ms, rng.end_ms

    def describe(self) -> str:
        return (
            f"{len(self.tickers)} tickers ({', '.join(self.tickers)}) x {', '.join(self.timeframes)} x "
            f"{self.days} days ending {END}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tickers": list(self.tickers),
            "timeframes": list(self.timeframes),
            "days": self.days,
            "start": str(self.start),
            "end": str(self.end),
            "note": self.note,
            "series": len(self.tickers) * len(self.timeframes),
        }


STANDARD = Workload(
    "standard",
    (*STOCKS, *CRYPTO, *ETFS),
    TIMEFRAMES,
    365,
    "the standard workload: 15 stocks, 5 crypto pairs, 5 ETFs x 5m, 15m, 1h, 4h, 1d x 365 days",
)
# The standard workload's mix (3 stocks : 1 crypto : 1 ETF), 365 days: the side-by-side runs.
SCALED = Workload(
    "scaled",
    (*STOCKS[:3], CRYPTO[0], ETFS[0]),
    TIMEFRAMES,
    365,
    "the standard workload scaled to 5 of its 25 tickers in the same 3:1:1 mix "
    "(first 3 stocks, first crypto pair, first ETF), all 5 timeframes, all 365 days",
)
# The free tier (5/min): 7 requests, so the window binds once and the run stays near a minute.
FREE = Workload(
    "free-tier",
    (STOCKS[0], CRYPTO[0]),
    ("1h", "1d"),
    90,
    "2 tickers (first stock, first crypto pair) x 1h, 1d x 90 days: more requests than one "
    "5/min window holds",
)
WORKLOADS = {w.name: w for w in (STANDARD, SCALED, FREE)}


def ground_truth(workload: Workload) -> tuple[dict[str, int], int]:
    """Bars per series as the simulator's market defines them (seed 42, clock pinned), and the
    minimal request count: each series paged from its start with ``limit=50000`` base bars.

    No client needs fewer requests: a page holds at most 50,000 base bars (minutes or days)."""
    from mdw.domain import to_ms
    from mdw.simulator import Market

    market = Market(42, now_ms=to_ms(datetime.fromisoformat(SIM_NOW).replace(tzinfo=UTC)))
    bars: dict[str, int] = {}
    total = 0
    for tk, tf, s, e in workload.ranges():
        base, count, start = 0, 0, s
        while True:
            page = market.page(tk.symbol, tf, start, e - 1, limit=50_000, sort="asc", adjusted=False)
            base += page.query_count
            count += len(page.bars)
            if page.next_start_ms is None:
                break
            start = page.next_start_ms
        bars[f"{tk.symbol} {tf}"] = count
        total += max(1, math.ceil(base / 50_000))
    return bars, total


# -- the simulator as a separate process ---------------------------------------------------------


def mdw_exe() -> str:
    exe = Path(sys.executable).parent / "mdw"
    return str(exe) if exe.exists() else "mdw"


@dataclass
class SimProcess:
    """``mdw simulate`` on a free loopback port, with a pinned data clock and one unlimited key."""

    rate_limit: str = "unlimited"
    latency_ms: float = LATENCY_MS
    extra: list[str] = field(default_factory=list)
    base_url: str = ""
    key: str = BENCH_KEY
    proc: subprocess.Popen[str] | None = None

    def start(self) -> SimProcess:
        cmd = [
            mdw_exe(),
            "simulate",
            "--stocks",  # the 300 legacy names: the workloads' tickers, and a small grouped daily
            "300",
            "--port",
            "0",
            "--key",
            f"{self.key}:unlimited",
            "--now",
            SIM_NOW,
            "--rate-limit",
            self.rate_limit,
            "--latency-ms",
            str(self.latency_ms),
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "listening on" in line:
                self.base_url = line.rsplit(" ", 1)[-1].strip()
                self.warm_up()
                return self
        self.stop()
        raise RuntimeError("the simulator did not start")

    def warm_up(self) -> None:
        """Answer a stock and a crypto request (calendar, imports) off the clock, then forget them."""
        for ticker in ("IBM", "X:LTCUSD"):
            path = f"/v2/aggs/ticker/{ticker}/range/1/hour/2025-06-02/2025-06-03"
            url = f"{self.base_url}{path}?apiKey={self.key}"
            with urlopen(url, timeout=30) as resp:
                resp.read()
        self.reset()

    def stats(self) -> dict[str, Any]:
        with urlopen(f"{self.base_url}/_sim/stats", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def reset(self) -> None:
        with urlopen(Request(f"{self.base_url}/_sim/reset", data=b"", method="POST"), timeout=10):
            pass

    def cpu_s(self) -> float:
        """CPU seconds the simulator process has used (user + system)."""
        import psutil

        if self.proc is None:
            return 0.0
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(db_url: str, sim: SimProcess, cwd: str, **env: str) -> Iterator[str]:
    """``mdw serve`` (no scheduler) on a free port over ``db_url``, ready; yields its base URL.

    Started and awaited before any timing (the wait blocks), stopped on exit.
    """
    port = free_port()
    full = {**os.environ, "POLYGON_API_KEY": sim.key, "POLYGON_BASE_URL": sim.base_url,
            "MDW_RATE_LIMIT": "unlimited", "MDW_LOG_LEVEL": "WARNING", "MDW_DATABASE_URL": db_url, **env}
    server = subprocess.Popen([mdw_exe(), "serve", "--port", str(port), "--no-scheduler"], env=full, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urlopen(base + "/readyz", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mdw serve did not become ready") from None
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(60)


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def fresh_pg() -> Iterator[str]:
    """A new empty PostgreSQL database ``mdw_bench_<random>``, dropped afterwards."""
    import psycopg

    name = f"mdw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def count_rows(db_url: str) -> dict[str, int]:
    """Stored bars per series ("TICKER tf") in mdw's ``bars`` table."""
    sql = "SELECT ticker, timeframe, count(*) FROM bars GROUP BY ticker, timeframe"
    if db_url.startswith("sqlite:///"):
        import sqlite3

        con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(db_url) as con:
            rows = con.execute(sql).fetchall()
    return {f"{t} {tf}": int(n) for t, tf, n in rows}


# -- measuring and reporting --------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's ``VmHWM`` is per address space, so it starts afresh at exec; ``ru_maxrss`` would carry
    the forking parent's peak over into a child process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def machine() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
    }
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3) as con:
            row = con.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    except Exception:
        info["postgresql"] = None
    return info


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` atomically, stamped with the time and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        **data,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"

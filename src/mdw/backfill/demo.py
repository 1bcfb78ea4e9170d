"""The offline demo: the built-in simulator, the standard workload, a SQLite file, a report.

The standard workload is the original system's baseline: 25 tickers (15 stocks, 5 crypto pairs,
5 ETFs) x 5m, 15m, 1h, 4h, 1d x 365 days. The rate limit is chosen from the plan so the run
takes about ``target_s`` seconds, as a customer's plan would pace it. The simulator is imported
here only, lazily: no production code path depends on it.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from mdw.backfill.fetch import VendorSource
from mdw.backfill.plan import BackfillSpec
from mdw.backfill.report import Progress, RunReport
from mdw.backfill.runner import plan_only, run_backfill
from mdw.config import RateLimit
from mdw.domain import parse_tickers, parse_timeframes
from mdw.store.base import RunKind

STOCKS = (
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "TSLA",
    "NVDA",
    "META",
    "NFLX",
    "AVGO",
    "ASML",
    "BRK.B",
    "JPM",
    "V",
    "WMT",
    "JNJ",
)
CRYPTO = ("X:BTCUSD", "X:ETHUSD", "X:XRPUSD", "X:SOLUSD", "X:ADAUSD")
ETFS = ("SPY", "QQQ", "DIA", "IWM", "EEM")
TIMEFRAMES = ("5m", "15m", "1h", "4h", "1d")
DEFAULT_DB = Path("mdw-demo") / "demo.db"


def standard_spec(
    end: date | None = None, days: int = 365, *, corporate_actions: bool = True
) -> BackfillSpec:
    """The standard workload ending ``end`` (default: yesterday, UTC), ``days`` days long."""
    last = end or (datetime.now(UTC).date() - timedelta(days=1))
    return BackfillSpec(
        tickers=tuple(parse_tickers([*STOCKS, *CRYPTO, *ETFS])),
        timeframes=tuple(parse_timeframes(list(TIMEFRAMES))),
        start=last - timedelta(days=days - 1),
        end=last,
        corporate_actions=corporate_actions,
        kind=RunKind.DEMO,
    )


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did and where the data is."""

    report: RunReport
    database_url: str
    db_path: Path
    spec: BackfillSpec
    rate_limit: RateLimit


def demo_rate(requests: int, target_s: float) -> RateLimit:
    """A per-second rate at which ``requests`` take about ``target_s`` seconds (at least 1/s)."""
    if requests <= 0:
        return RateLimit(math.inf, 1.0)
    return RateLimit(float(max(1, math.ceil(requests / target_s))), 1.0)


async def run_demo(
    db_path: Path = DEFAULT_DB,
    *,
    target_s: float = 60.0,
    fresh: bool = False,
    days: int = 365,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    latency_ms: float = 30.0,
) -> DemoResult:
    """Start the simulator in-process and backfill the standard workload into ``db_path``.

    Args:
        db_path: the SQLite file (its directory is created).
        target_s: the wall time the chosen rate limit aims for.
        fresh: delete an existing demo database first (else the run only fills what is missing).
        latency_ms: the simulator's added latency per request, like a real network.
    """
    from mdw.polygon import Pacing, PolygonClient
    from mdw.simulator import SimConfig, start_simulator  # the demo's vendor; never on a real path
    from mdw.store import open_store

    db_path.parent.mkdir(parents=True, exist_ok=True)
    if fresh:
        _remove_sqlite(db_path)
    url = f"sqlite:///{db_path}"
    spec = standard_spec(days=days)
    store = await open_store(url)
    try:
        planned = (await plan_only(store, spec)).request_count
        rate = demo_rate(planned, target_s)
        config = SimConfig(seed=42, keys={"demo-key": "unlimited"}, latency_ms=latency_ms)
        async with (
            start_simulator(config) as sim,
            PolygonClient(sim.key, sim.base_url, pacing=Pacing(rate, max_in_flight=16)) as client,
        ):
            source: VendorSource = client
            report = await run_backfill(
                store, source, spec, progress=progress, stop=stop, rate_limit=str(rate)
            )
    finally:
        await store.close()
    return DemoResult(report, url, db_path, spec, rate)


def how_to_query(result: DemoResult) -> str:
    """The lines the demo prints after its report: the CLI and the Python API on the demo data."""
    last = result.spec.end
    first = last - timedelta(days=6) if isinstance(last, date) else last
    url = result.database_url
    # Name the commands so they run as printed, even when the virtualenv is not activated.
    mdw, python = _executable("mdw"), _executable("python")
    return "\n".join(
        [
            f"The data is in {result.db_path} ({url}). Try:",
            f"  {mdw} status --database-url {url}",
            f"  {mdw} export --database-url {url} --symbols AAPL --timeframe 1h --start {first} --end {last} "
            "--format csv",
            f"  {mdw} export --database-url {url} --symbols AAPL --timeframe 1d --start {result.spec.start} "
            f"--end {last} --adjust splits --format parquet -o aapl.parquet",
            f"  {python} -c \"import mdw; wh = mdw.connect('" + url + "'); "
            f"print(wh.bars('X:BTCUSD', '4h', '{first}', '{last}'))\"",
            "Run `make demo` again: it requests only what is missing (nothing, the same day).",
        ]
    )


def _executable(name: str) -> str:
    """``name`` when the running interpreter's one is first on PATH, else its path relative to here."""
    here = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found and Path(found).absolute() == here.absolute():
        return name
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)

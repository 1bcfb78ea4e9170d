"""One contender of one case, run in its own process: ``python bench/compare.py --worker NAME ...``.

The worker times only the backfill itself (not interpreter start-up or schema creation) and
reports its peak RSS, so the orchestrator can run contenders side by side without their work
mixing in one event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common import WORKLOADS, peak_rss_mb, rss_mb
from peers import official, original, raw
from peers.store import COLUMNS, RowWriter, prepare


async def _mdw(base_url: str, key: str, db_url: str, workload: str, rate: str) -> dict[str, Any]:
    """mdw with its default settings; only the plan's rate, the vendor URL/key and the store are set."""
    from mdw.backfill.runner import run_backfill
    from mdw.config import load_settings
    from mdw.polygon import PolygonClient
    from mdw.store import open_store

    settings = load_settings(
        polygon_api_key=key, polygon_base_url=base_url, database_url=db_url, rate_limit=rate
    )
    spec = WORKLOADS[workload].spec()
    began = time.perf_counter()
    store = await open_store(settings.database_url)
    try:
        async with PolygonClient.from_settings(settings) as client:
            report = await run_backfill(store, client, spec, rate_limit=str(settings.rate_limit))
            stats = client.stats()
    finally:
        await store.close()
    wall = time.perf_counter() - began
    data = report.to_dict()
    return {
        "wall_s": wall,
        "client_requests": stats.total_requests,
        "client_429s": stats.rate_limited_count,
        "failed_series": [s["series"] for s in data["series"] if s["status"] != "ok"],
        "report": {
            k: data[k]
            for k in (
                "status",
                "planned_requests",
                "requests",
                "rate_limited",
                "retries",
                "api_s",
                "db_s",
                "bars_fetched",
                "bars_written",
                "wall_s",
            )
        },
    }


async def _raw_fetch(base_url: str, key: str, db_url: str, workload: str, insert: bool) -> dict[str, Any]:
    from mdw.backfill.runner import plan_only
    from mdw.store import open_store

    store = await open_store(db_url)
    try:
        plan = await plan_only(store, WORKLOADS[workload].spec())
    finally:
        await store.close()
    requests = [r for r in plan.requests if r.kind == "aggs"]
    if len(requests) != len(plan.requests):
        raise RuntimeError("the raw fetch handles aggregates requests only")
    out = await raw.fetch(base_url, key, requests, keep=insert)
    result: dict[str, Any] = {
        "wall_s": out.seconds,
        "client_requests": out.requests,
        "bars_decoded": out.bars,
    }
    if insert:
        # The rows of the same pages, inserted with one executemany (SQLite) or COPY (PostgreSQL).
        result["raw_insert"] = await _raw_insert(db_url, out.rows())
    return result


async def _raw_insert(db_url: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    if db_url.startswith("sqlite:///"):
        writer = RowWriter(db_url)
        began = time.perf_counter()
        writer.insert_many(rows)
        writer.commit()
        seconds = time.perf_counter() - began
        writer.close()
        how = "sqlite3 executemany, one transaction"
    else:
        import asyncpg

        con = await asyncpg.connect(db_url)
        began = time.perf_counter()
        await con.copy_records_to_table("bars", records=rows, columns=list(COLUMNS.split(", ")))
        seconds = time.perf_counter() - began
        await con.close()
        how = "asyncpg copy_records_to_table"
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": len(rows) / seconds, "how": how}


def run_worker(name: str, base_url: str, key: str, db_url: str, workload: str, rate: str) -> dict[str, Any]:
    """Run one contender and return what it measured (its own wall time and peak memory)."""
    w = WORKLOADS[workload]
    prepare(db_url, range(w.start.year, w.end.year + 1))
    rss_before = rss_mb()
    if name == "mdw":
        result = asyncio.run(_mdw(base_url, key, db_url, workload, rate))
    elif name in ("raw", "raw+insert"):
        result = asyncio.run(_raw_fetch(base_url, key, db_url, workload, insert=name == "raw+insert"))
    elif name == "original":
        began = time.perf_counter()
        o = asyncio.run(
            original.run(base_url, key, db_url, list(w.tickers), list(w.timeframes), str(w.start), str(w.end))
        )
        result = {
            "wall_s": time.perf_counter() - began,
            "client_requests": o.total_requests,
            "client_429s": o.rate_limited_count,
            "failed_series": o.failed_pairs,
            "api_s": o.api_s,
            "db_s": o.db_s,
        }
    elif name == "official":
        began = time.perf_counter()
        f = official.run(base_url, key, db_url, list(w.tickers), list(w.timeframes), w.start, w.end)
        result = {
            "wall_s": time.perf_counter() - began,
            "failed_series": f.failed_series,
            "errors": sorted(set(f.errors)),
            "api_s": f.api_s,
            "db_s": f.db_s,
        }
    else:
        raise SystemExit(f"unknown contender {name}")
    result["rss_before_mb"] = rss_before
    result["peak_rss_mb"] = peak_rss_mb()
    return result

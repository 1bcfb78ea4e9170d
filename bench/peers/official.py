"""A script around the official vendor client, the ``massive`` package, written the way its docs show.

``RESTClient(api_key)`` with its defaults (``retries=3``: urllib3 retries a 429 after 0, 0.2 and
0.4 s, then raises ``MaxRetryError``), ``list_aggs`` per series one after another (the generator
follows ``next_url``), and the series' rows handed to ``executemany`` into mdw's ``bars`` table.

One kindness: a series that raises is counted as failed and the script moves on, where a plain
script would stop at the first exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from massive import RESTClient

from peers.store import RowWriter

TIMESPANS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}


@dataclass
class Outcome:
    rows_inserted: int = 0
    failed_series: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    api_s: float = 0.0
    db_s: float = 0.0


def _split(timeframe: str) -> tuple[int, str]:
    return int(timeframe[:-1]), TIMESPANS[timeframe[-1]]


def run(
    base_url: str, key: str, db_url: str, symbols: list[str], timeframes: list[str], start: date, end: date
) -> Outcome:
    """Fetch every series in turn with ``list_aggs`` and store it with one ``executemany``."""
    outcome = Outcome()
    client = RESTClient(api_key=key, base=base_url)
    writer = RowWriter(db_url)
    try:
        for symbol in symbols:
            for tf in timeframes:
                mult, span = _split(tf)
                began = time.perf_counter()
                try:
                    aggs = list(
                        client.list_aggs(
                            symbol, mult, span, start, end, adjusted=False, sort="asc", limit=50000
                        )
                    )
                except Exception as exc:
                    outcome.failed_series.append(f"{symbol} {tf}")
                    outcome.errors.append(type(exc).__name__)
                    continue
                finally:
                    outcome.api_s += time.perf_counter() - began
                began = time.perf_counter()
                rows: list[tuple[Any, ...]] = [
                    (
                        symbol,
                        tf,
                        a.timestamp,
                        a.open,
                        a.high,
                        a.low,
                        a.close,
                        a.volume,
                        a.vwap,
                        a.transactions or 0,
                    )
                    for a in aggs
                ]
                writer.insert_many(rows)
                writer.commit()
                outcome.db_s += time.perf_counter() - began
                outcome.rows_inserted += len(rows)
    finally:
        writer.close()
    return outcome

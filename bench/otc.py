"""What the per-bar ``otc`` flag costs on the write path (#15), measured side by side in one run.

CPU seconds (``time.process_time``: every thread of the process, less sensitive to a loaded host
than wall time), best of ``--rounds``, each pair interleaved:

1. **decode**: ``decode_aggs`` of a 50,000-bar page without the flag (a listed name) vs the same
   page with ``"otc": true`` on every bar (an OTC name).
2. **SQLite write**: ``write_bars`` of ``--rows`` bars (50,000-bar writes into a fresh file) whose
   bars carry no flag (the column is left out of the INSERT and defaults to NULL) vs the same bars
   flagged (one more bound value a row).

Run: ``.venv/bin/python bench/otc.py [--rows 300000] [--rounds 5]``; prints JSON (no results file:
it is not part of ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import replace

import numpy as np

from mdw.domain import BarBatch, RangeSet, Timeframe
from mdw.polygon import decode as dec
from mdw.store import BarWrite, open_store

M1 = Timeframe.parse("1m")
T0 = 1_704_204_000_000
PAGE = 50_000


def _page(otc: bool) -> bytes:
    bars = [{"v": 1000.5 + i, "vw": 10.25, "o": 10.0, "c": 10.5, "h": 11.0, "l": 9.5,
             "t": T0 + i * 60_000, "n": 7, **({"otc": True} if otc else {})} for i in range(PAGE)]
    return json.dumps({"ticker": "X", "status": "OK", "resultsCount": PAGE, "results": bars}).encode()


def _decode_cpu(body: bytes) -> float:
    start = time.process_time()
    dec.decode_aggs(body, "X", M1, "u")
    return time.process_time() - start


def _batches(rows: int, otc: bool) -> list[BarBatch]:
    out = []
    for i in range(max(1, rows // PAGE)):
        t = T0 + np.arange(PAGE, dtype=np.int64) * 60_000
        o = 100 + np.arange(PAGE) * 0.01
        b = BarBatch.from_columns(f"T{i}", M1, {"t": t, "o": o, "h": o + 1, "l": o - 1, "c": o + 0.5,
                                                "v": np.full(PAGE, 1000.5), "vw": o + 0.2,
                                                "n": np.full(PAGE, 7, dtype=np.int64)})
        out.append(replace(b, otc=np.ones(PAGE, dtype=np.int8)) if otc else b)
    return out


async def _write_cpu(batches: list[BarBatch]) -> float:
    with tempfile.TemporaryDirectory() as d:
        async with await open_store(f"sqlite:///{d}/otc.db") as store:
            start = time.process_time()
            for b in batches:
                await store.write_bars([BarWrite(b, RangeSet.of([(int(b.t[0]), int(b.t[-1]) + 60_000)]))])
            return time.process_time() - start


async def main(rows: int, rounds: int) -> dict[str, float]:
    pages = {False: _page(False), True: _page(True)}
    batches = {False: _batches(rows, False), True: _batches(rows, True)}
    decode: dict[bool, list[float]] = {False: [], True: []}
    write: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for otc in (False, True):
            decode[otc].append(_decode_cpu(pages[otc]))
            write[otc].append(await _write_cpu(batches[otc]))
    return {
        "decode_plain_ms": min(decode[False]) * 1000, "decode_otc_ms": min(decode[True]) * 1000,
        "decode_otc_over_plain": min(decode[True]) / min(decode[False]),
        "sqlite_write_plain_s": min(write[False]), "sqlite_write_otc_s": min(write[True]),
        "sqlite_write_otc_over_plain": min(write[True]) / min(write[False]),
        "rows": rows, "rounds": rounds,
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rows, args.rounds)), indent=1))

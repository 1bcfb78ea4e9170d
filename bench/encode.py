"""Encode benchmark: what the one schema of bars (``mdw.bar_schema``) costs over raw vendor columns.

One batch of minute bars is encoded side by side, best of ``--repeat``, in one run:

* **raw**: what the interfaces did before the one schema (#21): the vendor's columns as they are
  stored, ``t`` an int64 of epoch ms; CSV by pyarrow's writer, JSON as msgspec structs, Arrow as
  the store's columns.
* **schema**: :class:`mdw.bar_schema.BarSchema`: ``timestamp`` (ISO 8601 text in CSV/JSON,
  ``timestamp[ms, tz=UTC]`` in Arrow), long names; and adjusted (rounded) for CSV.

Each line prints rows/s of both and the ratio schema/raw (1.0 = free). Run:
``.venv/bin/python bench/encode.py [--rows 1000000] [--small]``; writes ``bench/results/encode.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mdw.bar_schema import BarSchema
from mdw.domain import BarBatch, Timeframe
from mdw.store.arrow import to_arrow

RESULTS = Path(__file__).parent / "results" / "encode.json"
MINUTE = Timeframe.parse("1m")
JSON_PAGE = 50_000  # the largest JSON page GET /v1/bars serves


class RawBar(msgspec.Struct):
    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's name
    c: float
    v: float
    vw: float
    n: int


def minute_bars(rows: int, seed: int = 1) -> BarBatch:
    rng = np.random.default_rng(seed)
    t = 1_704_200_000_000 + np.arange(rows, dtype=np.int64) * 60_000
    c = np.round(100 + rng.standard_normal(rows).cumsum() * 0.01, 4)
    v = np.round(rng.random(rows) * 1e5)
    cols = {"t": t, "o": c, "h": c + 0.01, "l": c - 0.01, "c": c, "v": v, "vw": np.round(c + 0.001, 4),
            "n": rng.integers(1, 500, rows)}
    return BarBatch.from_columns("AAPL", MINUTE, cols)


def raw_csv(b: BarBatch) -> bytes:
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(to_arrow(b), sink, write_options=options)
    return bytes(sink.getvalue().to_pybytes())


def raw_json(b: BarBatch) -> bytes:
    rows = [RawBar(*r) for r in zip(b.t.tolist(), b.o.tolist(), b.h.tolist(), b.l.tolist(), b.c.tolist(),
                                    b.v.tolist(), b.vw.tolist(), b.n.tolist(), strict=True)]
    return msgspec.json.encode(rows)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="200,000 rows (make bench)")
    args = parser.parse_args()
    rows = 200_000 if args.small else args.rows
    batch = minute_bars(rows)
    chunks = [batch.take(slice(i, i + 100_000)) for i in range(0, rows, 100_000)]  # as /v1/bars streams
    page = batch.take(slice(0, JSON_PAGE))
    plain, adjusted = BarSchema("AAPL", MINUTE), BarSchema("AAPL", MINUTE, adjust="splits")
    encoder = msgspec.json.Encoder()
    cases: dict[str, tuple[int, Callable[[], object], Callable[[], object]]] = {
        "csv": (rows, lambda: [raw_csv(c) for c in chunks],
                lambda: [plain.csv(c) for c in chunks]),
        "csv adjusted": (rows, lambda: [raw_csv(c) for c in chunks],
                         lambda: [adjusted.csv(c) for c in chunks]),
        "json page": (JSON_PAGE, lambda: raw_json(page), lambda: encoder.encode(plain.rows(page))),
        "arrow": (rows, lambda: [to_arrow(c) for c in chunks],
                  lambda: [plain.record_batch(c) for c in chunks]),
    }
    out: dict[str, object] = {"rows": rows, "host": platform.node(), "cpus": os.cpu_count(),
                              "loadavg_1m": os.getloadavg()[0]}
    for name, (n, raw, schema) in cases.items():
        raw_s, schema_s = best(raw, args.repeat), best(schema, args.repeat)
        out[name] = {"raw_rows_per_s": round(n / raw_s), "schema_rows_per_s": round(n / schema_s),
                     "schema_over_raw_speed": round(raw_s / schema_s, 3)}
        print(f"{name:13} raw {n / raw_s / 1e6:6.2f} M rows/s   schema {n / schema_s / 1e6:6.2f} M rows/s"
              f"   schema/raw {raw_s / schema_s:5.2f}x")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

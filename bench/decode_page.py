"""What decoding one aggregates page costs, this checkout against another, side by side (#14).

Two simulator pages of 1-minute bars (``mdw.simulator``'s market, seed 42, AAPL from 2024-01-02;
50,000 and 12,000 bars, encoded as the simulator serves them) are timed in CPU seconds
(``time.process_time``, best of the repeats) by each checkout's own code, alternately:

- **post-parse**: ``decode_aggs`` + ``check_bars`` with the page's msgspec parse done once and
  reused: the columns, the value screen, the batch and its checks (what #14 and #23 changed);
- **full**: ``decode_aggs`` + ``check_bars`` from the bytes (the parse dominates it and is the
  same code in both).

Run: ``.venv/bin/python bench/decode_page.py [--a /path/to/other/checkout] [--rounds 3]``. A runs
in that checkout's ``.venv`` (this one's when it has none), its ``src`` first on the path; its
client package is ``mdw.vendor`` before #14's rename. Prints JSON; not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import timeit
from datetime import date
from pathlib import Path
from typing import Any

SIZES = (50_000, 12_000)


def _bodies(folder: Path) -> None:
    from mdw.domain import NEW_YORK, Timeframe, local_midnight_ms
    from mdw.simulator.encode import bars_json
    from mdw.simulator.market import Market

    market = Market(42)
    start = local_midnight_ms(date(2024, 1, 2), NEW_YORK)
    for size in SIZES:
        page = market.page("AAPL", Timeframe(1, "m"), start, start + 400 * 86_400_000, limit=size,
                           adjusted=False)
        body = (b'{"ticker":"AAPL","adjusted":false,"resultsCount":%d,"results":' % len(page.bars)
                + bars_json(page.bars) + b',"status":"OK","request_id":"r","next_url":"https://x/next"}')
        (folder / f"page{size}.json").write_bytes(body)


def _child(folder: Path) -> dict[str, float]:
    """Timings (ms per page) by the code of the checkout this process runs in (its ``src`` first)."""
    sys.path.insert(0, str(Path.cwd() / "src"))
    try:
        dec: Any = importlib.import_module("mdw.polygon.decode")
    except ImportError:
        dec = importlib.import_module("mdw.vendor.decode")
    from mdw.domain import Timeframe

    tf = Timeframe(1, "m")
    out: dict[str, float] = {}
    for size in SIZES:
        body = (folder / f"page{size}.json").read_bytes()
        number = 10 if size == 50_000 else 40
        out[f"full_{size}_ms"] = _best(dec, body, tf, number, 5)
        real = dec._AGGS
        dec._AGGS = _Parsed(real.decode(body))
        try:
            out[f"post_{size}_ms"] = _best(dec, body, tf, number, 7)
        finally:
            dec._AGGS = real
    return {k: round(v, 3) for k, v in out.items()}


class _Parsed:
    """Stands in for the page decoder: answers the page parsed once (the post-parse timing)."""

    def __init__(self, page: object) -> None:
        self.page = page

    def decode(self, _: bytes) -> object:
        return self.page


def _best(dec: Any, body: bytes, tf: object, number: int, repeat: int) -> float:
    """ms per ``decode_aggs`` + ``check_bars`` of ``body``, best of ``repeat`` (CPU time)."""

    def run() -> None:
        batch, _ = dec.decode_aggs(body, "AAPL", tf, "u")
        dec.check_bars(batch, "u")

    return min(timeit.repeat(run, number=number, repeat=repeat, timer=time.process_time)) / number * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, help="the other checkout (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    here = Path(__file__).resolve().parent.parent
    sides = {"b": here} | ({"a": args.a.resolve()} if args.a else {})
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        _bodies(Path(tmp))
        for _ in range(args.rounds):
            for side in sorted(sides):
                own = sides[side] / ".venv" / "bin" / "python"
                python = own if own.exists() else Path(sys.executable)  # same dependencies assumed
                done = subprocess.run([str(python), __file__, "--child", tmp], check=True,
                                      capture_output=True, text=True, cwd=sides[side])
                runs[side].append(json.loads(done.stdout))
    best = {side: {k: min(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
    result: dict[str, Any] = {"best": best, "runs": runs}
    if "a" in best:
        result["b_over_a"] = {k: round(best["b"][k] / best["a"][k], 3) for k in best["b"]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""The stream path under ``AM.*`` for the simulator's whole stock universe: decoded, stored, lag.

The simulator runs in its own process (as the vendor would be remote). Three measurements, side by
side in one run:

1. **Catch-up throughput.** With the data clock frozen at 09:30 ET, mdw's stream connects and
   subscribes to ``AM.*``; then the clock jumps ``--backlog`` minutes ahead and the simulator sends
   those minutes as fast as it can. Events/s from the first frame to the last bar stored in a fresh
   SQLite warehouse (``source = 'stream'``, batches of ``MDW_STREAM_BATCH_MS``).
2. **Decode alone.** The same frames, captured by a raw WebSocket client during the catch-up, are
   decoded again with ``mdw.stream.decode`` on one core: events/s. The ratio stream/decode says
   how much of the path the store and the socket take.
3. **End-to-end lag at 60x.** The clock runs at 60x for ``--minutes`` minutes; for each minute,
   the wall time from the moment the data clock passed its end (the vendor's event) until the last
   of its bars was committed (readable), and until the first was.

Run: ``.venv/bin/python bench/stream.py`` (``--small``: 2,000 securities, 10 minutes of backlog,
4 minutes at 60x). Writes ``bench/results/stream.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from websockets.asyncio.client import connect

from common import SimProcess, write_result
from mdw.domain import MINUTE_MS, to_ms
from mdw.store import open_store
from mdw.stream.decode import decode_frame
from mdw.stream.live import LiveBars, StoredBars
from mdw.stream.runner import LiveStream

OPEN = to_ms("2024-03-05T14:30:00Z")  # 09:30 ET on a Tuesday


def _clock(base: str, **values: float) -> dict[str, Any]:
    body = json.dumps(values).encode()
    req = Request(f"{base}/_sim/clock", data=body, method="POST",
                  headers={"Content-Type": "application/json"})
    with urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


async def _capture(ws_url: str, key: str, frames: list[tuple[float, bytes]], ready: asyncio.Event,
                   stop: asyncio.Event) -> None:
    """A raw client subscribed to AM.*: keeps every frame's bytes for the decode-only replay."""
    async with connect(ws_url + "/stocks", max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"action": "auth", "params": key}))
        await ws.send(json.dumps({"action": "subscribe", "params": "AM.*"}))
        while True:
            data = await ws.recv(decode=False)
            if b"subscribed to" in data:
                ready.set()
                break
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(ws.recv(decode=False), 0.5)
                frames.append((time.perf_counter(), data))
            except TimeoutError:
                continue


async def _until(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _sink_alone(path: Path, frames: list[bytes]) -> float:
    from mdw.stream.sink import BarSink
    from mdw.stream.state import StreamState

    store = await open_store(f"sqlite:///{path}")
    try:
        sink = BarSink(store, StreamState(), LiveBars(), _wall_ms)
        t = time.perf_counter()
        for f in frames:
            sink.add(decode_frame(f).bars)
            if sink._count >= sink.max_bars:
                await sink.flush()
        await sink.flush()
        return time.perf_counter() - t
    finally:
        await store.close()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def run(stocks: int, backlog: int, minutes: int) -> dict[str, Any]:
    with SimProcess(latency_ms=0, extra=["--stocks", str(stocks)]) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        base = sim.base_url
        ws_url = base.replace("http://", "ws://")
        _clock(base, now_ms=OPEN, speed=0)
        store = await open_store(f"sqlite:///{Path(tmp) / 'stream.db'}")
        live = LiveBars()
        listener = live.listen(frozenset())
        listener.queue = asyncio.Queue()  # unbounded here: the bench reads every storage event
        stream = LiveStream(store, ws_url, sim.key, ["*"], _wall_ms, live=live)
        stop, cap_stop, cap_ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        frames: list[tuple[float, bytes]] = []
        task = asyncio.create_task(stream.run(stop), name="bench-stream")
        cap = asyncio.create_task(_capture(ws_url, sim.key, frames, cap_ready, cap_stop),
                                  name="bench-capture")
        try:
            await _until(lambda: stream.state.connected and cap_ready.is_set(), 60)
            await asyncio.sleep(0.5)
            # warm-up: the first minute builds the simulator's day tables; not measured
            _clock(base, now_ms=OPEN + MINUTE_MS)
            await _until(lambda: (stream.state.last_bar_end_ms or 0) >= OPEN + MINUTE_MS, 120)
            await asyncio.sleep(0.5)
            frames.clear()
            warm = stream.state.bars_stored
            # 1. catch-up: `backlog` minutes at once
            expected_end = OPEN + (1 + backlog) * MINUTE_MS
            t0 = time.perf_counter()
            _clock(base, now_ms=expected_end)
            done = await _until(lambda: (stream.state.last_bar_end_ms or 0) >= expected_end
                                and stream.sink._count == 0, 600)
            catchup_s = time.perf_counter() - t0
            await asyncio.sleep(0.5)
            cap_stop.set()
            await cap
            caught = stream.state.bars_stored - warm
            raw = [f for _, f in frames]
            sent_s = (frames[-1][0] - t0) if frames else 0.0  # the raw client's last frame: the sender's pace
            events = sum(len(decode_frame(f).bars) for f in raw)
            # 2. decode alone, the same frames
            t1 = time.perf_counter()
            decoded = 0
            for _ in range(3):
                for f in raw:
                    decoded += len(decode_frame(f).bars)
            decode_s = time.perf_counter() - t1
            # 2b. decode and store alone (no socket): the same frames into a fresh warehouse
            sink_s = await _sink_alone(Path(tmp) / "sink.db", raw)
            while not listener.queue.empty():
                listener.queue.get_nowait()
            # 3. lag at 60x: the wall time the data clock passes each minute's end
            start = expected_end
            anchor_wall = _wall_ms()
            _clock(base, now_ms=start, speed=60)
            end = start + minutes * MINUTE_MS
            await _until(lambda: (stream.state.last_bar_end_ms or 0) >= end, minutes * 2 + 60)
            await asyncio.sleep(0.5)
            _clock(base, speed=0)
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            while not listener.queue.empty():
                item: StoredBars = listener.queue.get_nowait()
                for t in item.batch.t.tolist():
                    e = t + MINUTE_MS
                    first[e] = min(first.get(e, item.stored_at_ms), item.stored_at_ms)
                    last[e] = max(last.get(e, 0), item.stored_at_ms)
            lags_last, lags_first = [], []
            for e in sorted(last):
                if start < e <= end:
                    event_wall = anchor_wall + (e - start) / 60
                    lags_last.append(last[e] - event_wall)
                    lags_first.append(first[e] - event_wall)
        finally:
            stop.set()
            cap_stop.set()
            await asyncio.gather(task, cap, return_exceptions=True)
            await store.close()
    stream_rate = caught / catchup_s if catchup_s else 0.0
    sent_rate = events / sent_s if sent_s else 0.0
    decode_rate = decoded / decode_s if decode_s else 0.0
    sink_rate = events / sink_s if sink_s else 0.0
    return {
        "stocks": stocks, "backlog_minutes": backlog, "lag_minutes": minutes, "caught_up": done,
        "catchup": {"bars_stored": caught, "events_captured": events, "frames": len(frames),
                    "seconds": round(catchup_s, 3), "stored_per_s": round(stream_rate),
                    "simulator_sent_per_s": round(sent_rate), "bars_per_minute": round(caught / backlog)},
        "decode": {"events": decoded, "seconds": round(decode_s, 3), "decoded_per_s": round(decode_rate)},
        "sink_alone": {"events": events, "seconds": round(sink_s, 3), "stored_per_s": round(sink_rate)},
        "stream_vs_sent_ratio": round(stream_rate / sent_rate, 4) if sent_rate else None,
        "sink_vs_decode_ratio": round(sink_rate / decode_rate, 4) if decode_rate else None,
        "lag_60x": {
            "minutes": len(lags_last),
            "last_bar_ms_p50": round(statistics.median(lags_last)) if lags_last else None,
            "last_bar_ms_max": round(max(lags_last)) if lags_last else None,
            "first_bar_ms_p50": round(statistics.median(lags_first)) if lags_first else None,
            "last_bar_ms_by_minute": [round(x) for x in lags_last],
        },
        "state": {k: v for k, v in stream.state.to_dict(time.monotonic()).items()
                  if k in ("messages", "bars_stored", "bars_invalid", "batches", "bad_frames", "max_lag_ms")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2,000 securities, 10 + 4 minutes")
    parser.add_argument("--stocks", type=int, default=None)
    parser.add_argument("--backlog", type=int, default=None, help="minutes sent at once (catch-up)")
    parser.add_argument("--minutes", type=int, default=None, help="minutes at 60x (lag)")
    args = parser.parse_args()
    stocks = args.stocks or (2000 if args.small else 8000)
    backlog = args.backlog or (10 if args.small else 30)
    minutes = args.minutes or (4 if args.small else 10)
    result = asyncio.run(run(stocks, backlog, minutes))
    cmd = "bench/stream.py" + (" --small" if args.small else "")
    result["command"] = f".venv/bin/python {cmd}"
    path = write_result("stream", result)
    c, d, k, lag = result["catchup"], result["decode"], result["sink_alone"], result["lag_60x"]
    print(f"AM.* over {stocks} securities: {c['bars_per_minute']} bars/min; catch-up of {backlog} min: "
          f"{c['stored_per_s']:,} bars/s stored end to end while the simulator sent "
          f"{c['simulator_sent_per_s']:,}/s "
          f"(ratio {result['stream_vs_sent_ratio']}); decode alone {d['decoded_per_s']:,}/s, decode + store "
          f"alone {k['stored_per_s']:,}/s; lag at 60x: last bar p50 {lag['last_bar_ms_p50']} ms, "
          f"max {lag['last_bar_ms_max']} ms; first bar p50 {lag['first_bar_ms_p50']} ms -> {path}")
    return 0 if result["caught_up"] else 1


if __name__ == "__main__":
    sys.exit(main())

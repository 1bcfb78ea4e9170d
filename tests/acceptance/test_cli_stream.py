"""``mdw stream`` as a subprocess against the simulator's WebSocket (its clock at 60x)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from tests.acceptance.conftest import cli_env, mdw, start_mdw
from tests.stream.conftest import until

from mdw.domain import MINUTE_MS, Timeframe, to_ms
from mdw.simulator.config import StreamConfig
from mdw.simulator.testing import SimFactory
from mdw.store import Dataset

OPEN = to_ms("2024-03-05T14:31:00Z")
M1 = Timeframe.parse("1m")


async def test_cli_stream_stores_bars_until_stopped(sim_factory: SimFactory, sqlite_url: str,
                                                    opened: Any) -> None:
    """Subscribed, three minutes pass: the bars are stored provisionally; SIGINT stops it with exit 0
    and its state printed as JSON."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    run = await start_mdw("stream", "--symbols", "AAPL,MSFT", "--url", sim.ws_url, "--no-reconcile",
                          "--for", "120", env=cli_env(sim, sqlite_url))
    await until(lambda: sim.hub.stats.counts["subscriptions"] >= 2, "the CLI subscribed")
    await asyncio.sleep(0.2)
    sim.clock.advance(3 * MINUTE_MS)
    store = await opened(sqlite_url)
    stored: list[int] = []

    async def count() -> None:
        stored.append(len(await store.bars("AAPL", M1, OPEN, OPEN + 3 * MINUTE_MS)))

    for _ in range(1500):
        await count()
        if stored[-1] == 3:
            break
        await asyncio.sleep(0.04)
    assert stored[-1] == 3
    await run.signal(signal.SIGINT)
    res = await run.finish()
    assert res.code == 0, res.stderr
    state = json.loads(res.stdout)
    assert state["feeds"]["stocks"]["connects"] == 1 and state["bars_stored"] == 6
    got = await store.bars("AAPL", M1, OPEN, OPEN + 3 * MINUTE_MS)
    assert not got.n.any() and not await store.coverage("AAPL", Dataset.BARS, "1m")


async def test_cli_stream_refused_key_exits_1_with_one_line(sim_factory: SimFactory, sqlite_url: str) -> None:
    """auth_failed: one line on stderr naming it, exit 1, no traceback."""
    sim = await sim_factory(now_ms=OPEN, speed=0, stream=StreamConfig(auth_fail=True))
    res = await mdw("stream", "--symbols", "AAPL", "--url", sim.ws_url, "--no-reconcile",
                    env=cli_env(sim, sqlite_url))
    assert res.code == 1
    errors = [line for line in res.stderr_lines if line.startswith("mdw: error:")]
    assert len(errors) == 1 and "auth_failed" in errors[0] and "Traceback" not in res.stderr


async def test_cli_stream_bad_input_exits_2(sim_factory: SimFactory, sqlite_url: str) -> None:
    """No key, nothing tracked to stream, or a bad URL: one line and exit 2."""
    sim = await sim_factory(now_ms=OPEN, speed=0)
    no_key = cli_env(None, sqlite_url)
    res = await mdw("stream", "--symbols", "AAPL", env=no_key)
    assert res.code == 2 and "POLYGON_API_KEY" in res.stderr
    res = await mdw("stream", "--url", sim.ws_url, env=cli_env(sim, sqlite_url))
    assert res.code == 2 and "nothing to stream" in res.stderr
    res = await mdw("stream", "--symbols", "AAPL", "--url", "http://x", env=cli_env(sim, sqlite_url))
    assert res.code == 2 and "stream_url" in res.stderr

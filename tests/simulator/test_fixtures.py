"""The pytest fixtures start real simulators on free ports."""

from __future__ import annotations

import aiohttp

from mdw.simulator import SimServer
from mdw.simulator.testing import SimFactory


async def test_sim_fixture_serves_aggregates_when_called_with_the_test_key(sim: SimServer) -> None:
    """The `sim` fixture answers an aggregates request with the unlimited test key."""
    url = f"{sim.base_url}/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05"
    headers = {"Authorization": f"Bearer {sim.key}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        body = await r.json()
    assert r.status == 200
    assert sim.key == "test-key"
    assert body["resultsCount"] == 4
    assert sim.stats()["requests_by_key"] == {"test-key": 1}


async def test_sim_factory_starts_distinct_servers_when_called_twice(sim_factory: SimFactory) -> None:
    """Each factory call gets its own port, config and counters."""
    a = await sim_factory(seed=1, keys={"k1": "free"})
    b = await sim_factory(seed=2, rate_limit="100/min")
    assert a.base_url != b.base_url
    assert a.key == "k1" and a.market.seed == 1 and b.market.seed == 2

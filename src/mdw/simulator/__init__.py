"""A Polygon/Massive-compatible market simulator: the vendor for every test, benchmark and demo.

Production code never imports this package. Quick use::

    async with start_simulator(SimConfig(seed=42)) as sim:
        client = RESTClient(api_key=sim.key, base=sim.base_url)
        expected = sim.market.aggregates("AAPL", Timeframe(1, "d"), start_ms, end_ms)
"""

from __future__ import annotations

from mdw.simulator.config import FaultConfig, SimConfig
from mdw.simulator.market import Market, Page
from mdw.simulator.server import SimServer, make_app, start_simulator

__all__ = ["FaultConfig", "Market", "Page", "SimConfig", "SimServer", "make_app", "start_simulator"]

"""pytest fixtures: ``sim`` (a fresh simulator per test) and ``sim_factory`` (one per config).

Registered for the whole suite from tests/conftest.py with
``pytest_plugins = ["mdw.simulator.testing"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from mdw.simulator.config import SimConfig
from mdw.simulator.server import SimServer

SimFactory = Callable[..., Awaitable[SimServer]]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulator on a free port: seed 42, one unlimited key ``test-key``, no faults, no latency."""
    server = SimServer(SimConfig(seed=42, keys={"test-key": "unlimited"}))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    """``await sim_factory(**SimConfig kwargs)`` starts a simulator; all are stopped at teardown."""
    started: list[SimServer] = []

    async def make(**kwargs: Any) -> SimServer:
        host = kwargs.pop("host", "127.0.0.1")
        server = SimServer(SimConfig(**kwargs), host=host)
        await server.start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            await server.stop()

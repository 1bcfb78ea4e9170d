"""Fixtures: the service served by uvicorn on a free port, on SQLite and PostgreSQL, with the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from mdw.config import load_settings
from mdw.service.app import create_app
from mdw.service.auth import new_key
from mdw.service.state import ServiceState
from mdw.simulator.server import SimServer


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mdw.db'}"
    return str(request.getfixturevalue("pg_schema"))


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on a free loopback port (lifespan included); yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(), name="uvicorn")
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Service:
    """A served app: its base URL, its state, an HTTP session, and an admin and a read key."""

    base: str
    app: FastAPI
    http: aiohttp.ClientSession
    admin_key: str
    read_key: str
    read_key_id: str

    @property
    def state(self) -> ServiceState:
        state = self.app.state.mdw
        assert isinstance(state, ServiceState)
        return state

    @property
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with self.http.get(self.base + path, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.read()
            return resp.status, body, resp.headers

    async def send(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, **kwargs) as resp:
            return resp.status, await resp.json()

    async def backfill(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a backfill, wait for it to end, return its record."""
        status, started = await self.send("POST", "/v1/backfills", json=body, headers=self.admin)
        assert status == 202, started
        await self.state.runs.wait_idle()
        status, run, _ = await self.get(f"/v1/backfills/{started['run_id']}")
        assert status == 200
        return dict(run)


ServiceFactory = Callable[..., Awaitable[Service]]


@pytest_asyncio.fixture
async def service_factory(store_url: str) -> AsyncIterator[ServiceFactory]:
    """``await service_factory(sim, **settings, clock=..., scheduler=...)`` serves a fresh app."""
    stack: list[Any] = []

    async def make(sim: SimServer | None, **kwargs: Any) -> Service:
        app_kwargs = {k: kwargs.pop(k) for k in ("clock", "scheduler", "lock", "tick_ms", "distributed")
                      if k in kwargs}
        values = {"database_url": store_url, "polygon_api_key": sim.key if sim else None,
                  "polygon_base_url": sim.base_url if sim else None, "rate_limit": "unlimited",
                  "scheduler": False, **kwargs}
        settings = load_settings(None, **values)
        app = create_app(settings, **app_kwargs)
        ctx = serve(app)
        base = await ctx.__aenter__()
        stack.append(ctx)
        http = aiohttp.ClientSession()
        stack.append(http)
        state = app.state.mdw
        admin, admin_rec = new_key("admin", "test admin", 0)
        read, read_rec = new_key("read", "test reader", 0)
        await state.store.keys.add(admin_rec)
        await state.store.keys.add(read_rec)
        return Service(base, app, http, admin, read, read_rec.id)

    try:
        yield make
    finally:
        for item in reversed(stack):
            if isinstance(item, aiohttp.ClientSession):
                await item.close()
            else:
                await item.__aexit__(None, None, None)

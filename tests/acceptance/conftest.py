"""Running the real ``mdw`` console script as a subprocess against an in-process simulator.

The simulator runs on the test's event loop, so the CLI is started with asyncio's subprocess
API (a blocking ``subprocess.run`` would starve the simulator).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mdw.simulator import SimServer
from mdw.store import Store, open_store

MDW = str(Path(sys.executable).with_name("mdw"))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_lines:
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def cli_env(sim: SimServer | None, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDW_", "POLYGON_"))}
    env.update(
        {
            "MDW_DATABASE_URL": db_url,
            "MDW_RATE_LIMIT": "unlimited",
            "MDW_LOG_FORMAT": "json",
            "MDW_RETRY_ATTEMPTS": "2",
        }
    )
    if sim is not None:
        env.update({"POLYGON_API_KEY": sim.key, "POLYGON_BASE_URL": sim.base_url})
    env.update(extra)
    return env


async def mdw(*args: str, env: dict[str, str], limit_s: float = 90.0, cwd: str | None = None) -> Result:
    """Run ``mdw ARGS`` to completion (in ``cwd`` when given)."""
    proc = await asyncio.create_subprocess_exec(
        MDW, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    return Result(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


@dataclass
class Running:
    """A CLI process in flight, with its stderr lines collected as they arrive."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    planned: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode()
            self.lines.append(line)
            if '"backfill.planned"' in line:
                self.planned.set()

    async def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def finish(self, limit_s: float = 60.0) -> Result:
        out = await asyncio.wait_for(self.proc.stdout.read(), limit_s) if self.proc.stdout else b""
        code = await asyncio.wait_for(self.proc.wait(), limit_s)
        if self.reader:
            await self.reader
        return Result(code, out.decode(), "".join(self.lines))


async def start_mdw(*args: str, env: dict[str, str]) -> Running:
    proc = await asyncio.create_subprocess_exec(
        MDW, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    running = Running(proc)
    running.reader = asyncio.create_task(running._read(), name="mdw-stderr")
    return running


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for the CLI: a SQLite file, or a fresh schema in the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return str(request.getfixturevalue("pg_schema"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest_asyncio.fixture
async def opened() -> AsyncIterator[Any]:
    """``await opened(url)`` opens a store for assertions; all are closed at teardown."""
    stores: list[Store] = []

    async def open_(url: str) -> Store:
        store = await open_store(url)
        stores.append(store)
        return store

    try:
        yield open_
    finally:
        for s in stores:
            await s.close()

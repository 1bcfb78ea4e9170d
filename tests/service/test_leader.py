"""Two ``mdw serve`` processes on one PostgreSQL database: exactly one scheduler leader, and failover."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mdw.service.leader import FileLock
from mdw.simulator.server import SimServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        body: dict[str, Any] = await resp.json()
                        return body
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)


async def _leaders(http: aiohttp.ClientSession, ports: list[int]) -> list[bool]:
    return [(await _ready(http, p))["checks"]["scheduler"]["leader"] for p in ports]


@pytest.mark.postgres
async def test_two_serve_processes_elect_one_leader_and_fail_over(
    sim: SimServer, fresh_pg_url: str, tmp_path: Path
) -> None:
    """Both processes serve; one leads; after SIGTERM of the leader the other takes over."""
    env = {**os.environ, "MDW_DATABASE_URL": fresh_pg_url, "POLYGON_API_KEY": sim.key,
           "POLYGON_BASE_URL": sim.base_url, "MDW_RATE_LIMIT": "unlimited", "MDW_LOG_LEVEL": "WARNING"}
    ports = [_free_port(), _free_port()]
    procs = []
    for port in ports:
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from mdw.cli import main; main()", "serve", "--port", str(port),
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE))
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(30):
                leaders = await _leaders(http, ports)
                while sum(leaders) == 0:  # both start at once; one of them wins the lock
                    await asyncio.sleep(0.2)
                    leaders = await _leaders(http, ports)
            assert sorted(leaders) == [False, True]
            leader = leaders.index(True)
            procs[leader].send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal, so the exit status is -SIGTERM.
            assert await asyncio.wait_for(procs[leader].wait(), 30) == -signal.SIGTERM
            assert procs[leader].stderr is not None
            assert b"Traceback" not in await procs[leader].stderr.read()
            other = ports[1 - leader]
            async with asyncio.timeout(30):  # the follower retries the lock every 5 s
                while not (await _ready(http, other))["checks"]["scheduler"]["leader"]:
                    await asyncio.sleep(0.2)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()


async def test_file_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    """For SQLite the flock next to the database admits one leader; release lets the next one in."""
    first, second = FileLock(str(tmp_path / "db.lock")), FileLock(str(tmp_path / "db.lock"))
    assert await first.try_acquire() is True
    assert await second.try_acquire() is False
    await first.release()
    assert await second.try_acquire() is True and await second.held()
    await second.release()

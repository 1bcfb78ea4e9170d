"""A simulator in its own process for the flat-file benchmarks, with a pinned data clock.

Files are generated before anything is measured (``warm``), so the benchmarks time the client and
the ingest, not the simulator's synthesis: the vendor serves its files ready-made.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mdw.flatfiles.keys import dataset_named


@dataclass(frozen=True)
class SimFiles:
    """The running simulator's flat files, through its ``/_sim/flatfiles`` control route."""

    base: str

    def keys_for(self, prefix: str, first: date, days: int) -> list[str]:
        """The keys of the first ``days`` files of ``prefix`` from ``first`` on."""
        ds = dataset_named(prefix)
        found = ds.days(first, first + timedelta(days=days * 2 + 14))
        return [ds.key(d) for d in found[:days]]

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.post(f"{self.base}/_sim/flatfiles", json=body) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    async def warm(self, keys: list[str]) -> dict[str, int]:
        """Generate the files now (one request per file); returns their sizes."""
        sizes: dict[str, int] = {}
        for key in keys:
            sizes.update((await self._post({"warm": [key]}))["sizes"])
        return sizes

    async def sizes(self, keys: list[str]) -> list[int]:
        got = await self.warm(keys)  # cached: answered without generating again
        return [got[k] for k in keys]

    async def stats(self) -> dict[str, Any]:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/_sim/stats") as resp:
            data: dict[str, Any] = await resp.json()
            return data


@contextlib.asynccontextmanager
async def flatfile_simulator(
    stocks: int | None, now: date, *flags: str,
) -> AsyncIterator[tuple[str, SimFiles]]:
    """``mdw simulate`` with ``stocks`` stocks (None: its default universe) and the data clock at
    ``now``; yields its base URL."""
    mdw = str(Path(sys.executable).with_name("mdw"))
    size = ["--stocks", str(stocks)] if stocks else []
    proc = await asyncio.create_subprocess_exec(
        mdw, "simulate", "--port", "0", "--seed", "42", *size, "--now", now.isoformat(),
        "--flatfile-cache-mb", "8192", *flags, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        base = line.split("listening on ", 1)[1].strip()
        yield base, SimFiles(base)
    finally:
        proc.terminate()
        await proc.wait()

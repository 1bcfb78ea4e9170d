"""Fuzzing: schemathesis cases generated from the OpenAPI spec never get a 5xx (bounded: a few per route)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdw.config import load_settings
from mdw.service.app import create_app
from mdw.service.auth import new_key
from mdw.simulator.config import SimConfig
from mdw.simulator.server import start_simulator

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The service (SQLite) and a simulator, served from a thread; yields (base URL, admin key)."""
    import uvicorn

    ready = threading.Event()
    out: dict[str, str] = {}
    stop: dict[str, uvicorn.Server] = {}

    async def main() -> None:
        async with start_simulator(SimConfig(seed=42, keys={"test-key": "unlimited"})) as sim:
            config = load_settings(None, database_url=f"sqlite:///{tmp_path / 'fuzz.db'}",
                                   polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                                   rate_limit="unlimited", scheduler=False)
            app = create_app(config)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            task = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            key, record = new_key("admin", "fuzz", 0)
            await app.state.mdw.store.keys.add(record)
            out["base"] = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            out["key"] = key
            stop["server"] = server
            ready.set()
            await task

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        yield out["base"], out["key"]
    finally:
        stop["server"].should_exit = True
        thread.join(60)


def test_fuzzed_requests_never_get_a_server_error(live: tuple[str, str]) -> None:
    """Every operation, with and without an admin key, answers generated input with a non-5xx status."""
    base, key = live
    spec = requests.get(base + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), admin=st.booleans())
        def check(case: schemathesis.Case, admin: bool) -> None:
            headers = {"X-API-Key": key} if admin else {}
            response = case.call(base_url=base, session=session, headers=headers, timeout=30)
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                                 response.text[:300])
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"code", "message"}

        check()

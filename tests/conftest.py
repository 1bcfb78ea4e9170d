"""Shared fixtures: a fresh PostgreSQL database per test session, a schema per test, quiet retries."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

pytest_plugins = ["mdw.simulator.testing"]  # the `sim` and `sim_factory` fixtures

PG_ADMIN_URL = os.environ.get("MDW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_base() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0]


async def _pg_exec(sql: str, url: str = PG_ADMIN_URL) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_available() -> str | None:
    try:
        asyncio.run(_pg_exec("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the real PostgreSQL server; under CI an unreachable server fails."""
    problem = _pg_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI and is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh database created for this test session and dropped after it."""
    name = f"mdw_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{_pg_base()}/{name}"
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_pg_url(pg_server: str) -> Iterator[str]:
    """A database of its own for one test (for tests that need an empty schema)."""
    name = f"mdw_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{_pg_base()}/{name}"
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_schema(pg_database: str) -> str:
    """An empty schema of its own in the session database; the URL makes it the search path.

    Backend-parametrised fixtures ask for it with ``request.getfixturevalue`` only on their
    PostgreSQL leg, so their SQLite leg never needs the server.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(f'CREATE SCHEMA "{schema}"', pg_database))
    return f"{pg_database}?search_path={schema}"


@pytest.fixture(autouse=True, scope="session")
def _no_retry_waits() -> Iterator[None]:
    """Retries never sleep in tests (stamina's testing switch); each keeps its own attempts (capped)."""
    import stamina

    stamina.set_testing(True, attempts=1000, cap=True)
    try:
        yield
    finally:
        stamina.set_testing(False)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test leaves structlog and the root logger as it found them.

    A test that runs the CLI in-process configures logging onto pytest's captured stream for that
    test; left in place, the next test to log writes to a closed file and fails, depending on order.
    """
    import logging

    import structlog

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)

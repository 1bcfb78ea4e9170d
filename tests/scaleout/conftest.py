"""Scale-out fixtures: one fresh PostgreSQL database per test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest


def _admin(pg_server: str, sql: str) -> None:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="module")
def module_pg_url(pg_server: str) -> Iterator[str]:
    """A database created for this test module and dropped (with its connections) after it."""
    name = f"mdw_so_{uuid.uuid4().hex[:10]}"
    _admin(pg_server, f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server.rsplit('/', 1)[0]}/{name}"
    finally:
        _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""The parametrised ``store`` fixture: every conformance test runs against SQLite and PostgreSQL.

PostgreSQL tests share the session database and get a schema of their own (via ``search_path``
in the URL), which is much cheaper than a database per test and just as isolated.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdw.store import Store, open_store


@dataclass(frozen=True)
class Backend:
    """An empty database of one backend, plus raw SQL access for fixtures (never for assertions
    that the Store API could make)."""

    name: str
    url: str

    @property
    def sql_url(self) -> str:
        """The database's own URL (the columnar store's URL names its database after ``iceberg+``)."""
        return self.url.removeprefix("iceberg+").split("?warehouse=", 1)[0].split("&warehouse=", 1)[0]

    @property
    def sqlite(self) -> bool:
        return self.sql_url.startswith("sqlite:")

    async def execute(self, sql: str) -> None:
        if self.sqlite:
            conn = sqlite3.connect(self.sql_url.removeprefix("sqlite:///"))
            try:
                conn.executescript(sql)
            finally:
                conn.close()
            return
        import asyncpg

        conn2 = await asyncpg.connect(self.sql_url)
        try:
            await conn2.execute(sql)
        finally:
            await conn2.close()

    async def fetch(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of a raw query, for what only the database itself can show (how a value is spelt)."""
        if self.sqlite:
            conn = sqlite3.connect(self.sql_url.removeprefix("sqlite:///"))
            try:
                return [tuple(r) for r in conn.execute(sql).fetchall()]
            finally:
                conn.close()
        import asyncpg

        conn2 = await asyncpg.connect(self.sql_url)
        try:
            return [tuple(r) for r in await conn2.fetch(sql)]
        finally:
            await conn2.close()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("iceberg", id="iceberg"),
    pytest.param("iceberg-pg", id="iceberg-pg", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty database (not yet opened) on each backend."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'mdw.db'}")
    if request.param == "iceberg":
        return Backend("iceberg", f"iceberg+sqlite:///{tmp_path / 'mdw.db'}?warehouse={tmp_path / 'lake'}")
    if request.param == "iceberg-pg":
        schema_url = request.getfixturevalue("pg_schema")
        return Backend("iceberg-pg", f"iceberg+{schema_url}&warehouse={tmp_path / 'lake'}")
    return Backend("postgres", request.getfixturevalue("pg_schema"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open, migrated store on each backend."""
    opened = await open_store(backend.url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def fail_when(backend: Backend, store: Store) -> Callable[[str], Awaitable[None]]:
    """Install a real trigger that aborts any bar insert matching a SQL condition on ``NEW``.

    This injects a failure inside the database, partway through a write's transaction.
    """

    async def install(condition: str) -> None:
        if backend.name.startswith("iceberg"):
            # The columnar store writes no bars rows; its per-series counts row is written in the
            # same transaction, after the table's pointer moved: fail there, on the same condition.
            condition = re.sub(r"NEW\.t = (\d+)", r"(NEW.first_t <= \1 AND NEW.last_t >= \1)", condition)
            await backend.execute(_trigger(backend.sqlite, "lake_series", condition, "INSERT"))
            await backend.execute(_trigger(backend.sqlite, "lake_series", condition, "UPDATE", "2"))
            return
        if backend.name == "sqlite":
            await backend.execute(
                f"CREATE TRIGGER mdw_test_fail BEFORE INSERT ON bars WHEN {condition}"
                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            )
            return
        await backend.execute(
            "CREATE FUNCTION mdw_test_fail() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;"
            f" CREATE TRIGGER mdw_test_fail BEFORE INSERT ON bars FOR EACH ROW WHEN ({condition})"
            " EXECUTE FUNCTION mdw_test_fail();"
        )

    return install


def _trigger(sqlite: bool, table: str, condition: str, event: str, suffix: str = "") -> str:
    """A trigger that aborts ``event`` on ``table`` when ``condition`` holds for ``NEW``."""
    if sqlite:
        return (f"CREATE TRIGGER mdw_test_fail{suffix} BEFORE {event} ON {table} WHEN {condition}"
                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END;")  # fmt: skip
    function = "" if suffix else (
        "CREATE FUNCTION mdw_test_fail() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;"
    )  # fmt: skip
    return (f"{function} CREATE TRIGGER mdw_test_fail{suffix} BEFORE {event} ON {table} FOR EACH ROW"
            f" WHEN ({condition}) EXECUTE FUNCTION mdw_test_fail();")  # fmt: skip

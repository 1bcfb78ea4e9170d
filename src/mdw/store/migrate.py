"""Versioned SQL migrations shipped as package data, and the one loop that applies them.

Files are ``migrations/<dialect>/NNNN_name.sql``. A file ``NNNN_name@variant.sql`` replaces the
plain file of the same version when the database reports that variant (PostgreSQL uses
``timescaledb`` when the extension can be loaded). :func:`migrate` applies the pending ones in one
transaction, under a lock, and records each version in ``schema_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

import structlog

from mdw.clock import now_ms
from mdw.errors import SchemaVersionError
from mdw.store.base import SchemaVersion
from mdw.store.primitives import Database, Tx
from mdw.store.rows import as_int

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:@([a-z0-9_]+))?\.sql$")

SCHEMA_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: str


def migrations(dialect: str, variants: frozenset[str] = frozenset()) -> list[Migration]:
    """The migrations of ``dialect`` in version order, with variant files substituted.

    Raises:
        SchemaVersionError: two plain files claim one version (one of them would be skipped
            silently, so a database would lack its tables).
    """
    chosen: dict[int, tuple[bool, Migration]] = {}
    plain: dict[int, str] = {}
    for entry in sorted(files("mdw.store").joinpath("migrations", dialect).iterdir(), key=lambda e: e.name):
        m = _NAME.fullmatch(entry.name)
        if not m:
            continue
        version, name, variant = int(m[1]), m[2], m[3]
        if variant is None:
            if version in plain:
                raise SchemaVersionError(
                    f"two {dialect} migrations claim version {version}: {plain[version]} and {entry.name}"
                )
            plain[version] = entry.name
        if variant is not None and variant not in variants:
            continue
        current = chosen.get(version)
        if current is not None and current[0] and variant is None:
            continue
        chosen[version] = (variant is not None, Migration(version, name, entry.read_text(encoding="utf-8")))
    return [chosen[v][1] for v in sorted(chosen)]


def latest(dialect: str) -> int:
    """The schema version this code expects."""
    found = migrations(dialect)
    return found[-1].version if found else 0


def pending(dialect: str, current: int, variants: frozenset[str] = frozenset()) -> list[Migration]:
    """Migrations newer than ``current``.

    Raises:
        SchemaVersionError: the database is newer than this code.
    """
    known = migrations(dialect, variants)
    top = known[-1].version if known else 0
    if current > top:
        raise SchemaVersionError(
            f"the database schema is version {current}, newer than this mdw understands ({top}); "
            "upgrade mdw to use this database"
        )
    return [m for m in known if m.version > current]


_CURRENT = "SELECT coalesce(max(version), 0) FROM schema_version"


async def migrate(db: Database[Tx]) -> None:
    """Apply the pending migrations of ``db``'s dialect in one transaction.

    The lock (and SQLite's one writer) makes a second process opening the same empty database
    wait, then find the schema current.

    Raises:
        SchemaVersionError: the database is newer than this code.
    """
    dialect = db.dialect
    async with db.transaction("migrate") as tx:
        await tx.lock(":mdw-migrate")
        await tx.execute(SCHEMA_TABLE_SQL)
        current = as_int((await tx.fetch(_CURRENT))[0][0])
        variants = await dialect.variants(tx)
        for step in pending(dialect.name, current, variants):
            log.info("store.migrate", backend=dialect.name, version=step.version, migration=step.name,
                     variants=sorted(variants))
            await tx.script(step.sql)
            await tx.execute(
                "INSERT INTO schema_version (version, name, applied_at_ms) VALUES (?, ?, ?)",
                step.version, step.name, now_ms(),
            )


async def schema_version(db: Database[Tx]) -> SchemaVersion:
    """The version in the database and the one this code expects (one round trip)."""
    found = await db.fetch("schema_version", _CURRENT)
    return SchemaVersion(as_int(found[0][0]), latest(db.dialect.name))


def split_sqlite(script: str) -> list[str]:
    """Split a SQLite script into statements (so they can run inside one explicit transaction)."""
    import sqlite3

    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            if stmt and not all(ln.strip().startswith("--") or not ln.strip() for ln in stmt.splitlines()):
                out.append(stmt)
            buf = ""
    if buf.strip() and any(ln.strip() and not ln.strip().startswith("--") for ln in buf.splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buf.strip()[:80]!r}")
    return out

"""Versioned SQL migrations shipped as package data, shared by both backends.

Files are ``migrations/<dialect>/NNNN_name.sql``. A file ``NNNN_name@variant.sql`` replaces the
plain file of the same version when the backend reports that variant (PostgreSQL uses
``timescaledb`` when the extension can be loaded). The backend applies the pending ones in one
transaction and records each version in ``schema_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

from mdw.errors import SchemaVersionError

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
    """The migrations of ``dialect`` in version order, with variant files substituted."""
    chosen: dict[int, tuple[bool, Migration]] = {}
    for entry in files("mdw.store").joinpath("migrations", dialect).iterdir():
        m = _NAME.fullmatch(entry.name)
        if not m:
            continue
        version, name, variant = int(m[1]), m[2], m[3]
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

"""The migration files themselves: one file per version and dialect (variants aside)."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migration_files_number_each_version_once(dialect: str) -> None:
    """Two plain files of one version would hide one of them (two branches that both took it)."""
    seen: dict[int, list[str]] = {}
    for entry in files("mdw.store").joinpath("migrations", dialect).iterdir():
        m = _NAME.fullmatch(entry.name)
        if m:
            seen.setdefault(int(m[1]), []).append(entry.name)
    assert {v: names for v, names in seen.items() if len(names) > 1} == {}


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migrations_load_every_shipped_version_once(dialect: str) -> None:
    """The loader raises on a duplicate version instead of skipping one file, so loading succeeds here."""
    from mdw.store.migrate import migrations

    versions = [m.version for m in migrations(dialect)]
    assert versions == sorted(set(versions))

"""Columnar store URLs: the database and the lake split apart, secrets refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdw.errors import UsageError
from mdw.store import open_store
from mdw.store.lake.url import split_url


def test_split_url_puts_the_lake_beside_a_sqlite_file_by_default(tmp_path: Path) -> None:
    """``iceberg+sqlite:///x/mdw.db`` keeps the table's files in ``x/lake``."""
    database, config = split_url(f"iceberg+sqlite:///{tmp_path}/mdw.db")
    assert database == f"sqlite:///{tmp_path}/mdw.db"
    assert config.warehouse == f"file://{tmp_path}/lake"


def test_split_url_keeps_database_parameters_and_takes_the_lake_ones() -> None:
    """PostgreSQL's own query parameters stay on its URL; warehouse and s3.* go to the lake."""
    database, config = split_url(
        "iceberg+postgresql://mdw@db:5432/mdw?search_path=s1&warehouse=s3://bars/p&s3.endpoint=http://m:9000"
        "&maintain_every=5"
    )
    assert database == "postgresql://mdw@db:5432/mdw?search_path=s1"
    assert config.warehouse == "s3://bars/p" and config.io_properties == {"s3.endpoint": "http://m:9000"}
    assert config.maintain_every == 5


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("iceberg+sqlite:///x.db?warehouse=s3://b/p&s3.secret-access-key=shh", "environment"),
        ("iceberg+postgresql://mdw@db/mdw", "warehouse"),
        ("iceberg+mysql://x/y", "expected"),
        ("iceberg+sqlite://", "database file"),
        ("iceberg+sqlite:///x.db?maintain_every=often", "whole number"),
    ],
)
def test_split_url_refuses_what_it_cannot_use_saying_why(url: str, why: str) -> None:
    """A secret in the URL, a PostgreSQL lake without a warehouse, or a bad number is a UsageError."""
    with pytest.raises(UsageError, match=why) as info:
        split_url(url)
    assert "shh" not in str(info.value)


async def test_open_store_refuses_a_secret_in_the_url_without_echoing_it() -> None:
    """The store URL is stored and logged, so a secret in it is refused before anything opens."""
    with pytest.raises(UsageError) as info:
        await open_store("iceberg+sqlite:///x.db?warehouse=s3://b/p&s3.secret-access-key=topsecret")
    assert "topsecret" not in str(info.value)

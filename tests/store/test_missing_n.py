"""A trade count the vendor left out is NULL in the database (not 0), and reads back as missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mdw.domain import MISSING_N
from mdw.store import WriteResult, open_store

from .conftest import Backend
from .helpers import M1, T0, make_batch, write


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def row_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty database of each row store (the columnar store has no rows to look at)."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'mdw.db'}")
    return Backend("postgres", request.getfixturevalue("pg_schema"))


async def test_missing_n_is_stored_as_null_when_vendor_omits_it(row_backend: Backend) -> None:
    """NULL in the row, missing after a read, a replay changes nothing; a real 0 stays 0."""
    url, kind = row_backend.url, row_backend.name
    batch = make_batch(n=20)
    async with await open_store(url) as store:
        await store.write_bars([write(batch)])
        got = await store.bars("AAPL", M1, T0, T0 + 10**12)
        assert got.equals(batch)
        assert (await store.write_bars([write(batch)])) == WriteResult(unchanged=20)
    rows = await Backend(kind, url).fetch("SELECT t, n FROM bars ORDER BY t")
    stored = [n for _, n in rows]
    want = [None if x == MISSING_N else int(x) for x in batch.n.tolist()]
    assert stored == want and stored.count(None) == 3 and 0 in stored
    assert np.array_equal(got.n < 0, batch.n < 0)

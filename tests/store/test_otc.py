"""The vendor's per-bar OTC flag is stored as sent: true, false, or NULL where a bar carried none."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mdw.domain import MISSING_OTC, BarBatch
from mdw.store import Store, WriteResult, open_store

from .conftest import Backend
from .helpers import M1, T0, make_batch, write


def _flagged(batch: BarBatch, flags: list[int]) -> BarBatch:
    return replace(batch, otc=np.asarray(flags, dtype=np.int8))


FLAGS = [1, 1, MISSING_OTC, 0, 1, MISSING_OTC, 1, 1, 0, 1, MISSING_OTC, 1]


async def test_otc_flags_are_stored_and_read_back_exactly(store: Store, backend: Backend) -> None:
    """Flags of one series round-trip per bar on every backend, a replay changes nothing, a flag the
    vendor changes (or drops) is a correction; a series without flags reads back without any."""
    batch = _flagged(make_batch(n=len(FLAGS)), FLAGS)
    plain = make_batch("MSFT", n=7)
    assert (await store.write_bars([write(batch), write(plain)])) == WriteResult(inserted=len(FLAGS) + 7)
    got = await store.bars("AAPL", M1, T0, T0 + 10**12)
    assert got.equals(batch) and got.otc.tolist() == FLAGS
    assert (await store.bars("MSFT", M1, T0, T0 + 10**12)).otc.tolist() == [MISSING_OTC] * 7
    assert (await store.write_bars([write(batch)])) == WriteResult(unchanged=len(FLAGS))
    revised = FLAGS.copy()
    revised[2], revised[3], revised[4] = 1, MISSING_OTC, 0
    assert (await store.write_bars([write(_flagged(batch, revised))])) == WriteResult(
        updated=3, unchanged=len(FLAGS) - 3)
    assert (await store.bars("AAPL", M1, T0, T0 + 10**12)).otc.tolist() == revised
    table = await store.bars_arrow("AAPL", M1, T0, T0 + 10**12)
    want = [None if f < 0 else bool(f) for f in revised]
    assert table.column("otc").to_pylist() == want


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def row_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty database of each row store (the columnar store has no rows to look at)."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'mdw.db'}")
    return Backend("postgres", request.getfixturevalue("pg_schema"))


async def test_otc_is_a_nullable_boolean_row_value(row_backend: Backend) -> None:
    """In the row stores the flag is a column of its own: true/false (1/0 in SQLite) or NULL."""
    async with await open_store(row_backend.url) as store:
        await store.write_bars([write(_flagged(make_batch(n=3), [1, 0, MISSING_OTC]))])
    rows = await row_backend.fetch("SELECT t, otc FROM bars ORDER BY t")
    assert [r[1] for r in rows] == [True, False, None]

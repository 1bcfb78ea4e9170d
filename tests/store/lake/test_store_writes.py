"""The columnar store's write path as the backfill drives it: housekeeping by small-file count."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdw.domain import RangeSet
from mdw.store import BarWrite, open_store
from mdw.store.lake.bars import IcebergBars
from mdw.store.sqlstore import SqlStore

from ..helpers import M1, T0, make_batch

FAR = T0 + 10**12


@pytest.mark.parametrize(("compact_files", "files_after"), [(4, 2), (0, 5)])
async def test_housekeeping_runs_once_a_timeframe_holds_compact_files_small_files(
    tmp_path: Path, compact_files: int, files_after: int
) -> None:
    """Four one-series commits leave four small files in 1m; with ``compact_files=4`` the fifth write
    compacts them first (one file, then the fifth's own), with 0 they stay; the bars are exact."""
    url = (f"iceberg+sqlite:///{tmp_path / 'mdw.db'}?warehouse={tmp_path / 'lake'}"
           f"&maintain_every=1000&compact_files={compact_files}")  # fmt: skip
    batches = [make_batch(ticker, 50) for ticker in ("AAPL", "MSFT", "NVDA", "SPY", "TSLA")]
    async with await open_store(url) as store:
        assert isinstance(store, SqlStore)
        bars = store._bars
        assert isinstance(bars, IcebergBars)
        for batch in batches:
            await store.write_bars([BarWrite(batch, RangeSet.of([(int(batch.t[0]), int(batch.t[-1]) + 1)]))])
        files = bars.lake.files(await bars.current())
        assert len(files) == files_after
        for batch in batches:
            assert (await store.bars(batch.ticker, M1, T0, FAR)).equals(batch)

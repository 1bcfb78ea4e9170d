"""Two writers on one store at once: nothing lost, nothing doubled, bars and coverage agree."""

from __future__ import annotations

import asyncio

from mdw.store import Dataset, open_store

from ..conftest import Backend
from ..helpers import M1, MIN, T0, make_batch, write


async def test_two_stores_writing_overlapping_pages_concurrently_end_exact(backend: Backend) -> None:
    """Two stores on one database write interleaved, overlapping pages of two series at once; the
    result is every bar once, the counts add up, and the coverage is the union."""
    first, second = await open_store(backend.url), await open_store(backend.url)
    try:
        pages = [make_batch(tk, n=60, t0=T0 + i * 40 * MIN) for i in range(4) for tk in ("AAA", "BBB")]

        async def writer(store: object, mine: list[int]) -> int:
            inserted = 0
            for i in mine:
                result = await store.write_bars([write(pages[i])])  # type: ignore[attr-defined]
                inserted += result.inserted
            return inserted

        counts = await asyncio.gather(writer(first, [0, 1, 4, 5]), writer(second, [2, 3, 6, 7]))
        span = (T0, T0 + 180 * MIN)  # pages overlap by 20 bars: 3 x 40 + 60 bars per series
        for tk in ("AAA", "BBB"):
            got = await first.bars(tk, M1, *span)
            assert len(got) == 180 and bool((got.t[1:] > got.t[:-1]).all())
            cov = await second.coverage(tk, Dataset.BARS, "1m")
            assert cov.total_ms == 180 * MIN
        assert sum(counts) == 2 * 180
    finally:
        await first.close()
        await second.close()

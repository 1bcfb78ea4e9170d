"""MarketBars: many tickers' bars as columns, grouped, checked as a whole exactly as BarBatch checks one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdw.domain import BarBatch, MarketBars, Timeframe
from mdw.errors import UsageError

M1 = Timeframe.parse("1m")
T0 = 1_709_546_400_000  # a whole minute


def bars(rows: list[tuple[str, int, float]]) -> MarketBars:
    """One row per (ticker, minute offset, close), in the given order; o = l = close / 2, h = close + 1."""
    names: dict[str, int] = {}
    code = np.array([names.setdefault(r[0], len(names)) for r in rows], dtype=np.int64)
    t = np.array([T0 + r[1] * 60_000 for r in rows], dtype=np.int64)
    c = np.array([r[2] for r in rows], dtype=np.float64)
    n = len(rows)
    return MarketBars(tuple(names), M1, code, t, c / 2, c + 1, c / 2, c, np.ones(n), np.full(n, np.nan),
                      np.arange(n, dtype=np.int64))


def per_ticker(m: MarketBars) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for b in m.batches():
        out.setdefault(b.ticker, []).extend(zip(b.t.tolist(), b.c.tolist(), strict=True))
    return out


def test_normalised_groups_rows_by_ticker_name_and_time_keeping_every_row() -> None:
    m = bars([("MSFT", 2, 3.0), ("AAPL", 1, 2.0), ("MSFT", 0, 1.0), ("AAPL", 0, 4.0), ("IBM", 5, 5.0)])
    got = m.normalised()
    assert got.tickers == ("AAPL", "IBM", "MSFT") and got.grouped() and not m.grouped()
    assert [b.ticker for b in got.batches()] == ["AAPL", "IBM", "MSFT"]
    assert per_ticker(got) == {"AAPL": [(T0, 4.0), (T0 + 60_000, 2.0)], "IBM": [(T0 + 300_000, 5.0)],
                               "MSFT": [(T0, 1.0), (T0 + 120_000, 3.0)]}


def test_normalised_returns_sorted_grouped_bars_as_they_are() -> None:
    m = bars([("AAPL", 0, 1.0), ("AAPL", 1, 1.0), ("MSFT", 0, 2.0)])
    assert m.normalised() is m


def test_concat_merges_names_so_a_ticker_continuing_in_the_next_part_stays_one_run() -> None:
    a = bars([("AAPL", 0, 1.0), ("MSFT", 0, 2.0)])
    b = bars([("MSFT", 1, 3.0), ("ZION", 0, 4.0)])
    joined = MarketBars.concat([a, MarketBars.empty(M1), b])
    assert joined.tickers == ("AAPL", "MSFT", "ZION") and joined.grouped()
    assert per_ticker(joined)["MSFT"] == [(T0, 2.0), (T0 + 60_000, 3.0)]
    with pytest.raises(UsageError):
        MarketBars.concat([MarketBars.empty(M1)])


def test_problems_name_rows_of_the_whole_bars_with_the_reasons_barbatch_gives() -> None:
    m = bars([("AAPL", 0, 1.0), ("AAPL", 1, 1.0), ("AAPL", 1, 1.0), ("MSFT", 0, 2.0), ("MSFT", 1, 2.0)])
    h = m.h.copy()
    h[4] = m.l[4] / 2  # MSFT's second bar: high below low (and still above zero)
    broken = MarketBars(m.tickers, M1, m.code, m.t, m.o, h, m.l, m.c, m.v, m.vw, m.n)
    found = broken.problems()
    assert {k: [(p.row, p.reason) for p in v] for k, v in found.items()} == {
        "AAPL": [(2, "duplicate timestamp")], "MSFT": [(4, "high is below low")]}
    assert not m.take(np.array([0, 1, 3])).problems()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 5),
                          st.sampled_from([1.0, 2.0, float("nan"), -1.0])), min_size=1, max_size=25))
def test_suspect_flags_every_row_barbatch_problems_would(rows: list[tuple[str, int, float]]) -> None:
    """The vectorised pass is a superset of the per-ticker check, so no invalid row slips past it."""
    m = bars(rows).normalised()
    suspect = m.suspect()
    starts, ends = m.runs()
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        batch: BarBatch = m.batch(lo, hi)
        for p in batch.problems():
            assert suspect[lo + p.row], (batch.ticker, p)
    flagged = {(k, p.row) for k, v in m.problems().items() for p in v}
    expected = {(b.ticker, lo + p.row) for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True)
                for b in [m.batch(lo, hi)] for p in b.problems()}
    assert flagged == expected

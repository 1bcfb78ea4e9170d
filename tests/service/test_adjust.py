"""Read-time adjustment: splits like the vendor's adjusted=true, dividends by the backward ratio."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from mdw.adjust import adjust_bars, boundary_ms
from mdw.domain import BarBatch, Dividend, Split, Timeframe
from mdw.errors import UsageError

DAY = Timeframe(1, "d")


def _daily(closes: list[float], first: date) -> BarBatch:
    t = [boundary_ms("AAPL", date.fromordinal(first.toordinal() + i)) for i in range(len(closes))]
    c = np.array(closes)
    return BarBatch("AAPL", DAY, t=t, o=c, h=c + 1, l=c - 1, c=c, v=np.full(len(c), 100.0),
                    vw=c, n=np.full(len(c), 10))


def test_adjust_splits_divides_prices_before_execution_date() -> None:
    """A 2-for-1 then a 3-for-1 divide earlier prices by the cumulative ratio and multiply volume."""
    batch = _daily([600.0, 600.0, 300.0, 300.0, 100.0], date(2024, 1, 1))
    splits = [Split("s2", "AAPL", date(2024, 1, 5), 1, 3), Split("s1", "AAPL", date(2024, 1, 3), 1, 2)]
    out = adjust_bars(batch, splits, [], "splits")
    assert out.c.tolist() == [100.0, 100.0, 100.0, 100.0, 100.0]
    assert out.v.tolist() == [600.0, 600.0, 300.0, 300.0, 100.0]
    assert out.n.tolist() == batch.n.tolist()


def test_adjust_all_applies_backward_dividend_ratio_before_ex_date() -> None:
    """A $1 dividend on a $100 close scales every earlier price by 0.99 and leaves volume alone."""
    batch = _daily([50.0, 100.0, 99.0], date(2024, 1, 1))
    divs = [Dividend("d1", "AAPL", date(2024, 1, 3), 1.0)]
    out = adjust_bars(batch, [], divs, "all")
    assert out.c.tolist() == pytest.approx([49.5, 99.0, 99.0], abs=1e-12)
    assert out.v.tolist() == [100.0, 100.0, 100.0]


def test_adjust_all_uses_given_close_when_it_is_outside_the_batch() -> None:
    """A page that ends before the ex-date takes close_prev from the closes mapping."""
    batch = _daily([50.0, 50.0], date(2024, 1, 1))
    divs = [Dividend("d1", "AAPL", date(2024, 2, 1), 2.0)]
    out = adjust_bars(batch, [], divs, "all", closes={"d1": 40.0})
    assert out.c.tolist() == pytest.approx([47.5, 47.5], abs=1e-12)


def test_adjust_none_returns_raw_and_bad_mode_is_a_usage_error() -> None:
    """Mode none is the identity; an unknown mode is refused."""
    batch = _daily([10.0], date(2024, 1, 1))
    assert adjust_bars(batch, [Split("s", "AAPL", date(2024, 2, 1), 1, 2)], [], "none") is batch
    with pytest.raises(UsageError):
        adjust_bars(batch, [], [], "both")

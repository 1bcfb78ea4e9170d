"""NYSE sessions of the simulated domain as one sorted array of day ordinals, for vectorised look-ups."""

from __future__ import annotations

import functools
from datetime import date

import numpy as np
import numpy.typing as npt

from mdw.calendar import nyse_sessions

I64 = npt.NDArray[np.int64]
FIRST = date(2000, 1, 1)
LAST = date(2040, 12, 31)


@functools.cache
def ordinals() -> I64:
    """Every NYSE session from 2000 to 2040, as ``date.toordinal()``, ascending."""
    days = np.asarray([s.day.toordinal() for s in nyse_sessions(FIRST, LAST)], dtype=np.int64)
    days.flags.writeable = False
    return days


def on_or_after(days: I64) -> I64:
    """The first session on or after each ordinal (the last session for days past 2040)."""
    table = ordinals()
    idx = np.minimum(np.searchsorted(table, days, side="left"), len(table) - 1)
    return np.asarray(table[idx], dtype=np.int64)


def before(days: I64) -> I64:
    """The last session strictly before each ordinal (the first session for days before 2000)."""
    table = ordinals()
    idx = np.maximum(np.searchsorted(table, days, side="left") - 1, 0)
    return np.asarray(table[idx], dtype=np.int64)


def session_on_or_after(day: date) -> date:
    return date.fromordinal(int(on_or_after(np.asarray([day.toordinal()]))[0]))


def last_session_before(day: date) -> date:
    return date.fromordinal(int(before(np.asarray([day.toordinal()]))[0]))

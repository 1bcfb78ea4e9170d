"""Epoch-ms time and the half-open range algebra the ledger and the planner are built on.

Times are UTC epoch milliseconds; ranges are half-open ``[start_ms, end_ms)``. Every name here is
re-exported by :mod:`mdw.domain`, the shared vocabulary. This module does no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from mdw.errors import UsageError

# --------------------------------------------------------------------------------------------
# Time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: date | datetime | int | str) -> int:
    """UTC epoch ms of a datetime (naive = UTC), a date (its UTC midnight), an int, or an ISO string."""
    if isinstance(value, bool):
        raise UsageError(f"invalid time {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = parse_when(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # Integer arithmetic: going through a float timestamp loses a millisecond now and then.
    return (value - _EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of an epoch-ms value (exact: ``to_ms(from_ms(x)) == x``)."""
    return _EPOCH + timedelta(milliseconds=int(ms))


def parse_when(text: str) -> date | datetime:
    """Parse a user date: ``YYYY-MM-DD``, an ISO datetime, ``today`` or ``now``.

    Raises:
        UsageError: the text is not a date; the message says which forms are accepted.
    """
    raw = text.strip()
    low = raw.lower()
    if low == "today":
        return datetime.now(UTC).date()
    if low == "now":
        return datetime.now(UTC)
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            _check_bounds(raw, day)
            return day
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid date {raw!r}; expected YYYY-MM-DD, an ISO datetime, 'today' or 'now'"
        ) from None
    _check_bounds(raw, dt.date())
    return dt


FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2099, 12, 31)


def _check_bounds(raw: str, day: date) -> None:
    # Epoch milliseconds and the day arithmetic around a range (the day after the end, the zone's
    # midnight) overflow near year 1 and 9999; no market data lies outside these bounds anyway.
    if not FIRST_DAY <= day <= LAST_DAY:
        raise UsageError(f"date {raw!r} is out of range; mdw holds days from {FIRST_DAY} to {LAST_DAY}")


@lru_cache(maxsize=1 << 16)
def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    """Epoch ms of 00:00 on ``day`` in ``tz`` (where stock daily bars start: 00:00 ET).

    Cached: planning a universe asks for the same few hundred midnights once per member.
    """
    return int(datetime.combine(day, time(), tzinfo=tz).timestamp() * 1000)


def day_range_ms(start: date, end: date, tz: ZoneInfo) -> TimeRange:
    """The half-open range from 00:00 of ``start`` to 00:00 after ``end`` in ``tz`` (inclusive days)."""
    return TimeRange(local_midnight_ms(start, tz), local_midnight_ms(end + timedelta(days=1), tz))


# --------------------------------------------------------------------------------------------
# Ranges


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """A half-open interval ``[start_ms, end_ms)`` in UTC epoch ms."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise UsageError(
                f"range end {from_ms(self.end_ms).isoformat()} is before its start "
                f"{from_ms(self.start_ms).isoformat()}"
            )

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def empty(self) -> bool:
        return self.end_ms == self.start_ms

    def __contains__(self, ms: object) -> bool:
        return isinstance(ms, int) and self.start_ms <= ms < self.end_ms

    def __str__(self) -> str:
        return f"[{from_ms(self.start_ms).isoformat()}, {from_ms(self.end_ms).isoformat()})"


@dataclass(frozen=True, slots=True)
class RangeSet:
    """A normalised set of disjoint, non-touching, sorted half-open ranges.

    The coverage ledger and the planner are built on this algebra: gaps are ``wanted - held``.
    """

    ranges: tuple[TimeRange, ...] = ()

    @classmethod
    def of(cls, ranges: Iterable[TimeRange | tuple[int, int]]) -> RangeSet:
        """Normalise arbitrary (possibly overlapping, unsorted, empty) ranges."""
        items = sorted(
            (r if isinstance(r, TimeRange) else TimeRange(int(r[0]), int(r[1])) for r in ranges),
        )
        merged: list[list[int]] = []
        for r in items:
            if r.empty:
                continue
            if merged and r.start_ms <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], r.end_ms)
            else:
                merged.append([r.start_ms, r.end_ms])
        return cls(tuple(TimeRange(a, b) for a, b in merged))

    def __iter__(self) -> Iterator[TimeRange]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @property
    def total_ms(self) -> int:
        return sum(r.duration_ms for r in self.ranges)

    def union(self, other: RangeSet | Iterable[TimeRange]) -> RangeSet:
        return RangeSet.of([*self.ranges, *other])

    __or__ = union

    def intersection(self, other: RangeSet | Iterable[TimeRange]) -> RangeSet:
        b = other if isinstance(other, RangeSet) else RangeSet.of(other)
        out: list[TimeRange] = []
        i = j = 0
        a_r, b_r = self.ranges, b.ranges
        while i < len(a_r) and j < len(b_r):
            lo = max(a_r[i].start_ms, b_r[j].start_ms)
            hi = min(a_r[i].end_ms, b_r[j].end_ms)
            if lo < hi:
                out.append(TimeRange(lo, hi))
            if a_r[i].end_ms < b_r[j].end_ms:
                i += 1
            else:
                j += 1
        return RangeSet(tuple(out))

    __and__ = intersection

    def difference(self, other: RangeSet | Iterable[TimeRange]) -> RangeSet:
        b = other if isinstance(other, RangeSet) else RangeSet.of(other)
        out: list[TimeRange] = []
        j = 0
        for r in self.ranges:
            cur = r.start_ms
            while j < len(b.ranges) and b.ranges[j].end_ms <= cur:
                j += 1
            k = j
            while k < len(b.ranges) and b.ranges[k].start_ms < r.end_ms:
                if b.ranges[k].start_ms > cur:
                    out.append(TimeRange(cur, b.ranges[k].start_ms))
                cur = max(cur, b.ranges[k].end_ms)
                k += 1
            if cur < r.end_ms:
                out.append(TimeRange(cur, r.end_ms))
        return RangeSet(tuple(out))

    __sub__ = difference

    def contains(self, ms: int) -> bool:
        starts = [r.start_ms for r in self.ranges]
        i = bisect.bisect_right(starts, ms) - 1
        return i >= 0 and ms < self.ranges[i].end_ms

    def covers(self, r: TimeRange) -> bool:
        return not RangeSet.of([r]).difference(self)

    def clip(self, r: TimeRange) -> RangeSet:
        return self.intersection([r])

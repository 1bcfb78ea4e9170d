"""TimeRange, RangeSet algebra (hypothesis against a brute-force model) and epoch-ms helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdw.domain import (
    RangeSet,
    TimeRange,
    day_range_ms,
    from_ms,
    local_midnight_ms,
    parse_when,
    to_ms,
)
from mdw.errors import UsageError

GRID = 24  # small integer grid: every half-open range is a set of unit cells [x, x + 1)

bounds = st.tuples(st.integers(0, GRID), st.integers(0, GRID)).map(lambda p: (min(p), max(p)))
range_lists = st.lists(bounds, max_size=6)
fast = settings(deadline=None, max_examples=100)


def cells(ranges: list[tuple[int, int]] | RangeSet) -> set[int]:
    """The brute-force model: the set of unit cells a collection of ranges covers."""
    pairs = [(r.start_ms, r.end_ms) for r in ranges] if isinstance(ranges, RangeSet) else ranges
    return {x for a, b in pairs for x in range(a, b)}


def assert_normalised(rs: RangeSet) -> None:
    """Sorted, non-empty, disjoint and non-touching: the only spelling of a given set."""
    for r in rs:
        assert r.start_ms < r.end_ms
    for left, right in zip(rs.ranges, rs.ranges[1:], strict=False):
        assert left.end_ms < right.start_ms


@fast
@given(range_lists)
def test_rangeset_of_normalises_any_input(raw: list[tuple[int, int]]) -> None:
    """RangeSet.of merges overlapping and touching ranges, drops empty ones, keeps the cells."""
    rs = RangeSet.of(raw)
    assert_normalised(rs)
    assert cells(rs) == cells(raw)
    assert rs.total_ms == len(cells(raw))
    assert RangeSet.of(rs) == rs
    assert RangeSet.of(reversed(raw)) == rs


@fast
@given(range_lists, range_lists)
def test_rangeset_union_matches_the_model(a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]]) -> None:
    """Union covers exactly the cells of either side, normalised, in either order."""
    a, b = RangeSet.of(a_raw), RangeSet.of(b_raw)
    u = a | b
    assert_normalised(u)
    assert cells(u) == cells(a_raw) | cells(b_raw)
    assert u == b.union(a)
    assert a.union(b_raw) == u


@fast
@given(range_lists, range_lists)
def test_rangeset_intersection_matches_the_model(
    a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]]
) -> None:
    """Intersection covers exactly the shared cells, normalised, in either order."""
    a, b = RangeSet.of(a_raw), RangeSet.of(b_raw)
    i = a & b
    assert_normalised(i)
    assert cells(i) == cells(a_raw) & cells(b_raw)
    assert i == b.intersection(a)
    assert a.intersection(b_raw) == i


@fast
@given(range_lists, range_lists)
def test_rangeset_difference_matches_the_model(
    a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]]
) -> None:
    """Difference covers exactly the cells of A not in B, and A - B never touches B."""
    a, b = RangeSet.of(a_raw), RangeSet.of(b_raw)
    d = a - b
    assert_normalised(d)
    assert cells(d) == cells(a_raw) - cells(b_raw)
    assert not (d & b)
    assert (d | (a & b)) == a
    assert a.difference(b_raw) == d


@fast
@given(range_lists, range_lists, range_lists)
def test_rangeset_algebra_laws_hold(
    a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]], c_raw: list[tuple[int, int]]
) -> None:
    """Associativity, distributivity and De Morgan-style laws the planner leans on."""
    a, b, c = RangeSet.of(a_raw), RangeSet.of(b_raw), RangeSet.of(c_raw)
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)
    assert a & (b | c) == (a & b) | (a & c)
    assert a - (b | c) == (a - b) - c
    assert a - (b & c) == (a - b) | (a - c)
    assert a - a == RangeSet()
    assert a | a == a and a & a == a


@fast
@given(range_lists, st.integers(-2, GRID + 2), bounds)
def test_rangeset_contains_covers_and_clip_match_the_model(
    raw: list[tuple[int, int]], point: int, probe: tuple[int, int]
) -> None:
    """contains() is cell membership, covers() is cell inclusion, clip() is intersection."""
    rs = RangeSet.of(raw)
    assert rs.contains(point) is (point in cells(raw))
    probe_range = TimeRange(*probe)
    assert rs.covers(probe_range) is (cells([probe]) <= cells(raw))
    assert cells(rs.clip(probe_range)) == cells(raw) & cells([probe])


def test_rangeset_merges_touching_ranges_and_drops_empty_ones() -> None:
    """Half-open ranges that meet end-to-start become one; zero-length ranges vanish."""
    rs = RangeSet.of([(10, 20), (0, 10), (30, 30), (25, 27), TimeRange(26, 29)])
    assert rs.ranges == (TimeRange(0, 20), TimeRange(25, 29))
    assert len(rs) == 2 and bool(rs) and list(rs) == list(rs.ranges)
    assert not RangeSet() and RangeSet.of([(5, 5)]) == RangeSet()


def test_timerange_rejects_an_end_before_its_start_with_both_times() -> None:
    """A reversed range is a usage error that shows both ends as ISO times."""
    with pytest.raises(UsageError, match=r"range end 1970-01-01T00:00:00\+00:00 is before its start"):
        TimeRange(1000, 0)


def test_timerange_is_half_open() -> None:
    """The start is inside, the end is not, and an empty range holds nothing."""
    r = TimeRange(10, 20)
    assert 10 in r and 19 in r and 20 not in r and 9 not in r
    assert "10" not in r  # only ints are instants
    assert r.duration_ms == 10 and not r.empty and TimeRange(5, 5).empty
    assert str(TimeRange(0, 60_000)) == "[1970-01-01T00:00:00+00:00, 1970-01-01T00:01:00+00:00)"


@fast
@given(st.integers(-(10**12), 4_102_444_800_000))
def test_to_ms_and_from_ms_round_trip_exactly(ms: int) -> None:
    """Epoch-ms survives a trip through datetime without losing a millisecond."""
    assert to_ms(from_ms(ms)) == ms
    assert from_ms(ms).tzinfo is UTC


def test_to_ms_accepts_dates_datetimes_ints_and_iso_strings() -> None:
    """Naive datetimes and dates are UTC; aware datetimes keep their offset."""
    jan1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    assert to_ms(date(2024, 1, 1)) == jan1
    assert to_ms(datetime(2024, 1, 1)) == jan1
    assert to_ms(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == jan1
    assert to_ms("2024-01-01") == jan1
    assert to_ms("2024-01-01T00:00:00.001Z") == jan1 + 1
    assert to_ms(jan1) == jan1
    with pytest.raises(UsageError):
        to_ms(True)


def test_parse_when_rejects_garbage_with_the_accepted_forms() -> None:
    """A bad date names itself and the accepted forms."""
    with pytest.raises(UsageError, match=r"invalid date '2024-13-01'; expected YYYY-MM-DD"):
        parse_when("2024-13-01")
    assert parse_when("today") == datetime.now(UTC).date()


def test_local_midnight_and_day_range_follow_the_zone_across_dst() -> None:
    """00:00 ET is 05:00 UTC in winter and 04:00 UTC in summer; day ranges are inclusive of days."""
    ny = ZoneInfo("America/New_York")
    assert local_midnight_ms(date(2024, 3, 10), ny) == 1_710_046_800_000  # 05:00Z, still EST
    assert local_midnight_ms(date(2024, 3, 11), ny) == 1_710_129_600_000  # 04:00Z, EDT
    r = day_range_ms(date(2024, 3, 10), date(2024, 3, 10), ny)
    assert r.duration_ms == 23 * 3_600_000  # the spring-forward day has 23 hours


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31", "1969-12-31", "2100-01-01",
                                  "9999-12-31T00:00:00"])
def test_parse_when_refuses_with_the_bounds_when_a_day_is_out_of_range(text: str) -> None:
    """Days before 1970 or after 2099 are a usage error naming the bounds, never an OverflowError."""
    with pytest.raises(UsageError, match="out of range; mdw holds days from 1970-01-01 to 2099-12-31"):
        parse_when(text)

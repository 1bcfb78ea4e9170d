"""The circuit breaker on a fake clock."""

from __future__ import annotations

import pytest
from vendor_helpers import FakeClock

from mdw.errors import VendorUnavailable
from mdw.polygon import BreakerPolicy, BreakerState, BreakerTransitionEvent, CircuitBreaker


def _breaker(clock: FakeClock, events: list[BreakerTransitionEvent] | None = None, probes: int = 1
             ) -> CircuitBreaker:
    policy = BreakerPolicy(threshold=3, cooldown_s=10.0, cooldown_cap_s=35.0, probes=probes, probe_gap_s=2.0)
    return CircuitBreaker(policy, clock=clock, on_transition=None if events is None else events.append)


def _fail(b: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        b.record_failure(b.before_call())


def test_breaker_opens_when_failures_reach_the_threshold_in_a_row(clock: FakeClock) -> None:
    """Three consecutive transient failures open it; a success in between resets the count."""
    b = _breaker(clock)
    _fail(b, 2)
    b.record_success(b.before_call())
    _fail(b, 2)
    assert b.state is BreakerState.CLOSED
    _fail(b, 1)
    assert b.state is BreakerState.OPEN


def test_breaker_fails_fast_with_retry_hint_when_open(clock: FakeClock) -> None:
    """While open, calls raise VendorUnavailable naming the circuit and the seconds to the probe."""
    b = _breaker(clock)
    _fail(b, 3)
    clock.advance(4)
    with pytest.raises(VendorUnavailable, match="circuit open") as info:
        b.before_call("http://x/v2")
    assert info.value.retry_after == pytest.approx(6.0)
    assert info.value.url == "http://x/v2"


def test_breaker_lets_exactly_one_probe_through_when_cooldown_ends(clock: FakeClock) -> None:
    """After the cool-down one caller probes (half-open) and concurrent callers still fail fast."""
    b = _breaker(clock)
    _fail(b, 3)
    clock.advance(10)
    assert b.before_call() is True
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(VendorUnavailable, match="probe"):
        b.before_call()


def test_breaker_closes_and_resets_cooldown_when_probe_succeeds(clock: FakeClock) -> None:
    """A successful probe closes the breaker and restores the base cool-down."""
    b = _breaker(clock)
    _fail(b, 3)
    clock.advance(10)
    b.record_failure(b.before_call())
    clock.advance(20)
    b.record_success(b.before_call())
    assert b.state is BreakerState.CLOSED
    assert b.cooldown_s == 10.0
    assert b.before_call() is False


def test_breaker_doubles_cooldown_up_to_cap_when_probes_fail(clock: FakeClock) -> None:
    """Each failed probe re-opens with twice the cool-down, never above the cap."""
    b = _breaker(clock)
    _fail(b, 3)
    seen = []
    for _ in range(4):
        clock.advance(b.retry_in())
        b.record_failure(b.before_call())
        seen.append(b.cooldown_s)
        assert b.state is BreakerState.OPEN
    assert seen == [20.0, 35.0, 35.0, 35.0]


def test_breaker_frees_the_probe_slot_when_probe_ends_neutral(clock: FakeClock) -> None:
    """A probe cancelled or answered 429 tells nothing; the next caller may probe instead."""
    b = _breaker(clock)
    _fail(b, 3)
    clock.advance(10)
    b.record_neutral(b.before_call())
    assert b.before_call() is True


def test_breaker_records_and_emits_every_transition(clock: FakeClock) -> None:
    """Transitions are kept as (ms, from, to) and emitted as frozen events."""
    events: list[BreakerTransitionEvent] = []
    b = _breaker(clock, events)
    _fail(b, 3)
    clock.advance(10)
    b.record_success(b.before_call())
    expected = [(BreakerState.CLOSED, BreakerState.OPEN), (BreakerState.OPEN, BreakerState.HALF_OPEN),
                (BreakerState.HALF_OPEN, BreakerState.CLOSED)]
    assert [(f, t) for _, f, t in b.transitions] == expected
    assert [(e.from_state, e.to_state) for e in events] == expected
    assert b.transitions[1][0] == 1_010_000


def test_breaker_half_open_spell_tries_several_probes_apart_before_it_reopens(clock: FakeClock) -> None:
    """With three probes a spell, a failed probe keeps it half-open for the next one 2 s later
    (callers in between are told when); only the third failure re-opens it, cool-down doubled."""
    b = _breaker(clock, probes=3)
    _fail(b, 3)
    clock.advance(10)
    b.record_failure(b.before_call())
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(VendorUnavailable, match="probe 2 of 3") as info:
        b.before_call()
    assert info.value.retry_after == pytest.approx(2.0)
    clock.advance(2)
    b.record_failure(b.before_call())
    clock.advance(2)
    b.record_failure(b.before_call())
    assert b.state is BreakerState.OPEN and b.cooldown_s == 20.0 and b.retry_in() == pytest.approx(20.0)


def test_breaker_one_5xx_as_the_vendor_returns_costs_a_probe_gap_not_a_cooldown(clock: FakeClock) -> None:
    """#23: a 5xx on the first probe after recovery no longer doubles the wait: the next probe,
    2 s later, closes the breaker with the base cool-down kept."""
    b = _breaker(clock, probes=3)
    _fail(b, 3)
    clock.advance(10)
    b.record_failure(b.before_call())
    clock.advance(b.retry_in())
    b.record_success(b.before_call())
    assert b.state is BreakerState.CLOSED and b.cooldown_s == 10.0
    moves = [t for _, _, t in b.transitions]
    assert moves == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]

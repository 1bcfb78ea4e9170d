"""The shared budget's rules on explicit times: arrivals counted until answered, pauses, leases, AIMD."""

from __future__ import annotations

from mdw.budget.policy import Rules, in_flight, reserve, throttle
from mdw.polygon.limiter import Aimd


def _rules(**kw: float) -> Rules:
    return Rules(2.0, 1.0, Aimd(), **{"lease_s": 30.0, "horizon_s": 1.0, "spacing_cap_s": 0.0, **kw})


def test_budget_reserve_counts_a_request_until_answered_when_its_answer_is_late() -> None:
    """Two grants in flight hold a 2-per-second budget past their window until they are answered."""
    rules = _rules()
    st, res = reserve({}, 0.0, rules, want=3, answered=[], successes=0)
    assert [g for _, g in res.grants] == [0.0, 0.0] and res.retry_in > 0
    st, res = reserve(st, 5.0, rules, want=1, answered=[], successes=0)
    assert res.grants == [] and in_flight(st, 5.0) == 2  # still unanswered: still counted
    first = int(st["slots"][0][0])
    st, res = reserve(st, 5.0, rules, want=1, answered=[first], successes=0)
    # Answered at 5.0: it may have reached the vendor as late as 5.0, so its slot frees at 6.0.
    assert res.grants and res.grants[0][1] == 6.0


def test_budget_reserve_counts_a_timed_out_request_until_the_late_bound_when_given_up_on() -> None:
    """A slot reported with a late bound (sent, then timed out) counts until the report plus late_s."""
    rules = _rules()
    st, res = reserve({}, 0.0, rules, want=2, answered=[], successes=0)
    timed_out, answered = (slot for slot, _ in res.grants)
    st, res = reserve(st, 0.5, rules, want=2, answered=[timed_out, answered], successes=0,
                      late={timed_out: 3.0})
    # The plain answer frees its slot one window after 0.5; the timed-out one after 0.5 + 3.0.
    assert [g for _, g in res.grants] == [1.5]
    st, res = reserve(st, 1.5, rules, want=1, answered=[], successes=0)
    assert res.grants == [] and res.retry_in > 0
    st, res = reserve(st, 4.5, rules, want=1, answered=[], successes=0)
    assert [g for _, g in res.grants] == [4.5]


def test_budget_reserve_never_puts_more_than_n_in_a_window_when_grants_are_answered_at_once() -> None:
    """Starts granted on a busy budget, each answered right away, never exceed n per window."""
    rules = _rules()
    st: dict[str, object] = {}
    starts: list[float] = []
    now = 0.0
    for _ in range(40):
        st, res = reserve(st, now, rules, want=4, answered=[], successes=0)
        ids = [i for i, _ in res.grants]
        starts.extend(g for _, g in res.grants)
        now = max([now, *(g for _, g in res.grants)]) + 0.01
        st, _ = reserve(st, now, rules, want=0, answered=ids, successes=0)
        now += res.retry_in
    assert len(starts) > 20
    for t in starts:
        assert sum(1 for s in starts if t - rules.window_s < s <= t) <= 2


def test_budget_throttle_pauses_every_process_when_a_429_carries_retry_after() -> None:
    """A 429 at t=10 with Retry-After 3 halves the rate and grants nothing before t=13."""
    rules = Rules(8.0, 1.0, Aimd(), horizon_s=5.0, spacing_cap_s=0.0)
    st, rate = throttle({}, 10.0, rules, 3.0)
    assert rate == 4.0 and st["paused_until"] == 13.0
    st, res = reserve(st, 10.0, rules, want=1, answered=[], successes=0)
    assert res.grants and res.grants[0][1] == 13.0
    st, again = throttle(st, 10.5, rules, 0.0)  # a second 429 within the cut interval counts once
    assert again == 4.0


def test_budget_reserve_frees_a_dead_process_slot_when_its_lease_ends() -> None:
    """A slot never answered (its process died) stops counting once its lease has run out."""
    rules = _rules(lease_s=4.0)
    st, _ = reserve({}, 0.0, rules, want=2, answered=[], successes=0)
    st, res = reserve(st, 3.0, rules, want=1, answered=[], successes=0)
    assert res.grants == []
    st, res = reserve(st, 5.0, rules, want=1, answered=[], successes=0)
    assert res.grants and res.grants[0][1] == 5.0  # expired at 4.0, counted until then: 4 < 5 - 1 is false
    assert in_flight(st, 5.0) == 1


def test_budget_reserve_regrows_the_rate_when_successes_are_reported() -> None:
    """After a cut, one plan's worth of successes adds back a step of the configured rate."""
    rules = Rules(10.0, 1.0, Aimd(), spacing_cap_s=0.0)
    st, rate = throttle({}, 0.0, rules, 0.0)
    assert rate == 5.0
    st, res = reserve(st, 1.0, rules, want=0, answered=[], successes=10)
    assert res.rate == 6.0

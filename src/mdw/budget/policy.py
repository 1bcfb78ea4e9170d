"""The shared budget's rules as pure functions of (state, now): what a reservation grants, what a 429 does.

State is the JSON kept in the ``rate_budget`` row. Each request is one slot ``[id, bound, expires]``:
``bound`` is the latest moment the vendor can have counted it (None while it is in flight, set
to the time its answer was reported, plus the ``late_s`` of a request that timed out after it
was sent: the vendor may still read that one), ``expires`` its lease (a process that died mid-request
cannot hold its slots for ever). A new start at ``g`` is granted only while fewer than
``floor(rate)`` slots have ``bound > g - window``, so every request is counted from its grant
until it was answered: whatever the delay between a grant and the vendor's stamp (a CPU-busy
worker, the network, the vendor's queue), the vendor never sees more than ``floor(rate)`` in any
window. The same rule as the in-process :class:`mdw.polygon.limiter.RateLimiter`, on one clock
shared by every process (PostgreSQL's, or the host's for SQLite).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdw.polygon.limiter import Aimd

State = dict[str, Any]
INF = math.inf


@dataclass(frozen=True, slots=True)
class Rules:
    """The fixed parameters of one budget (every process sharing it uses the same)."""

    configured: float
    period_s: float
    aimd: Aimd = field(default_factory=Aimd)
    margin_s: float = 0.0
    lease_s: float = 65.0
    lead_s: float = 0.0
    horizon_s: float = 1.0
    spacing_cap_s: float = 0.05

    @property
    def window_s(self) -> float:
        return self.period_s + self.margin_s

    def poll_s(self, rate: float) -> float:
        """How soon to look again when the budget is held by requests still in flight elsewhere."""
        return min(0.2, max(0.02, self.window_s / max(rate, 1.0) / 4))


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one reservation returned: ``(slot id, start time)`` pairs and when to ask again."""

    grants: list[tuple[int, float]]
    retry_in: float
    rate: float
    now: float


def _rate(state: State, rules: Rules) -> float:
    return float(state.get("rate", rules.configured))


def _effective(slot: list[Any], now: float) -> float:
    bound, expires = slot[1], float(slot[2])
    if bound is not None:
        return float(bound)
    return expires if expires <= now else INF


def reserve(state: State, now: float, rules: Rules, *, want: int, answered: list[int],
            successes: int, late: Mapping[int, float] | None = None) -> tuple[State, Reservation]:
    """Record answers and successes, then grant up to ``want`` starts no later than ``now + horizon``.

    ``late``: answered slots that timed out after they were sent, and how long after ``now`` the
    vendor may still count each (it stays counted until then).
    """
    st = dict(state)
    slots: list[list[Any]] = [list(s) for s in st.get("slots", [])]
    done = set(answered)
    late = late or {}
    for slot in slots:
        if slot[1] is None and int(slot[0]) in done:
            # reported after the answer arrived: an upper bound of the vendor's stamp
            slot[1] = now + max(0.0, late.get(int(slot[0]), 0.0))
    window = rules.window_s
    slots = [s for s in slots if _effective(s, now) > now - window]
    rate = _rate(st, rules)
    if successes > 0 and rate < rules.configured:
        count = int(st.get("successes", 0)) + successes
        run = rules.aimd.run_length(rules.configured)
        while count >= run and rate < rules.configured:
            count -= run
            rate = rules.aimd.grow(rate, rules.configured)
        st["successes"] = 0 if rate >= rules.configured else count
    n = max(1, math.floor(rate + 1e-9))
    spacing = min(window / n, rules.spacing_cap_s)
    bounds = sorted(_effective(s, now) for s in slots)
    next_id = int(st.get("next_id", 1))
    last = st.get("last_grant")
    paused = float(st.get("paused_until", 0.0))
    grants: list[tuple[int, float]] = []
    retry_in = 0.0
    for _ in range(max(0, want)):
        g = max(now + rules.lead_s, paused)
        if last is not None:
            g = max(g, float(last) + spacing)
        live = bounds[bisect.bisect_right(bounds, g - window):]
        excess = len(live) - n + 1
        if excess > 0:
            finite = [b for b in live if b != INF]
            if len(finite) < excess:
                retry_in = rules.poll_s(rate)  # held by requests in flight: wait for their answers
                break
            g = max(g, finite[excess - 1] + window)
        if g > now + rules.horizon_s:
            retry_in = g - now - rules.horizon_s
            break
        slots.append([next_id, None, g + rules.lease_s])
        bisect.insort(bounds, INF)
        grants.append((next_id, g))
        next_id += 1
        last = g
    st.update(slots=slots, rate=rate, next_id=next_id, last_grant=last)
    return st, Reservation(grants, retry_in, rate, now)


def throttle(state: State, now: float, rules: Rules, retry_after_s: float) -> tuple[State, float]:
    """A 429 seen by any process: cut the shared rate (once per cut interval) and pause everyone."""
    st = dict(state)
    rate = _rate(st, rules)
    interval = max(rules.aimd.cut_interval_s, rules.period_s)
    if "last_cut" not in st or now - float(st["last_cut"]) >= interval:
        rate = rules.aimd.cut(rate, rules.configured)
        st["last_cut"] = now
    if retry_after_s > 0:
        st["paused_until"] = max(float(st.get("paused_until", 0.0)), now + retry_after_s)
    st["rate"] = rate
    st["successes"] = 0
    st["limited_total"] = int(st.get("limited_total", 0)) + 1
    return st, rate


def in_flight(state: State, now: float) -> int:
    """Slots still counted as in flight (for stats and tests)."""
    return sum(1 for s in state.get("slots", []) if _effective(list(s), now) == INF)

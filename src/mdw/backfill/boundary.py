"""The plan's history boundary: the first instant the key may ask for, known up front or learned.

With the plan known (``MDW_PLAN``/``MDW_HISTORY``) the planner never asks before its first day.
Without it, the vendor's ``outside_plan`` 403 is the only word: the refused request starts before
the boundary, and its end may lie after it. The vendor does not say where the boundary is, so
mdw retries from the deepest history the vendor sells (20, 15, 10, 5, 2, 1 years) that starts after
the refused start (so learning a free key's two years from 2015 costs three refusals in all), and,
past those, halves the refused stretch to the day. What answered is kept
in the store as a depth under the plan setting (the first day moves with the calendar, the depth
does not), so a later run plans within it and asks nothing refused again until the setting
changes. One :class:`Boundary` is shared by a run's workers: once one learns, the others clip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from mdw.backfill.plan import PlannedRequest
from mdw.domain import AssetClass, TimeRange, local_midnight_ms
from mdw.errors import ConfigError, OutsidePlan
from mdw.logs import get_logger
from mdw.plans import History, Limits
from mdw.store.base import PlanFact, Store

log = get_logger(__name__)
DEPTHS = tuple(History(years=n) for n in (20, 15, 10, 5, 2, 1))
_TZ = AssetClass.STOCKS.tz


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=_TZ).date()


def _ms(day: date) -> int:
    return local_midnight_ms(day, _TZ)


class Boundary:
    """The first instant this run may ask for (None: no bound known), learned from refusals."""

    def __init__(self, store: Store, plan_key: str, today: date, first_ms: int | None = None,
                 *, probe: bool = False) -> None:
        self.store = store
        self.plan_key = plan_key
        self.today = today
        self.first_ms = first_ms
        self.probe = probe
        self.proven_ms: int | None = None  # the earliest start the vendor has answered in this run
        self.reach_ms: int | None = None  # the earliest start a probe proved (this run or before)
        self._lock = asyncio.Lock()
        self._probing = asyncio.Lock()

    @asynccontextmanager
    async def gate(self, start_ms: int) -> AsyncIterator[None]:
        """Hold a request that may be refused until the one before it has answered.

        With the plan unknown and nothing learned, requests starting before anything answered so
        far go one at a time, so a refusal is learned once for the run rather than by every worker
        at once; requests from an answered start on run freely.
        """
        if not self.probe or (self.proven_ms is not None and start_ms >= self.proven_ms):
            yield
            return
        async with self._probing:
            yield

    def unproven(self, start_ms: int) -> bool:
        """Whether a request from ``start_ms`` may reach before the plan's history, unnoticed.

        With the plan unknown, a vendor that clips a request straddling its boundary (rather than
        refusing it) answers without a word; only a request wholly before the boundary is refused.
        """
        return self.probe and (self.reach_ms is None or start_ms < self.reach_ms)

    async def reached(self, start_ms: int) -> None:
        """A probe from ``start_ms`` was answered: the history reaches it; kept for later runs as a
        depth (the plan's first day moves with the calendar, its depth does not)."""
        before = self.reach_ms
        self.answered(start_ms)
        if before is not None and before <= start_ms:
            return
        self.reach_ms = start_ms
        depth = str(History(days=max(1, (self.today - _day(start_ms)).days)))
        now = int(datetime.now().timestamp() * 1000)
        await self.store.plan_facts.learn(PlanFact(self.plan_key, "reach", depth, "", "", now))

    def answered(self, start_ms: int) -> None:
        """The vendor answered a request starting at ``start_ms``: later starts are within the plan."""
        self.proven_ms = start_ms if self.proven_ms is None else min(self.proven_ms, start_ms)

    @classmethod
    async def load(cls, store: Store, limits: Limits | None, now_ms: int) -> Boundary:
        """The plan's own first day, or the depth learned under this plan setting if it is later."""
        today = _day(now_ms)
        plan_key = str(limits.plan) if limits is not None else "unset"
        first = limits.first_day(now_ms) if limits is not None else None
        learned = await learned_first_day(store, plan_key, today)
        days = [d for d in (first, learned) if d is not None]
        unknown = not days and (limits is None or limits.plan.name == "unset")
        out = cls(store, plan_key, today, _ms(max(days)) if days else None, probe=unknown)
        reach = (await store.plan_facts.learned(plan_key)).get("reach")
        if unknown and reach is not None:  # answered from that depth before
            with contextlib.suppress(ConfigError):
                first_day = History.parse(reach.value).first_day(today)
                out.reach_ms = out.proven_ms = _ms(first_day) if first_day is not None else None
        return out

    async def learn(self, start_ms: int, end_ms: int, exc: OutsidePlan) -> int | None:
        """After ``[start_ms, end_ms)`` was refused: where to ask from next (None: nowhere in it).

        Records the new boundary in the store (with the vendor's message and ``request_id``).
        """
        async with self._lock:
            if self.first_ms is not None and self.first_ms > start_ms:
                return self.first_ms if self.first_ms < end_ms else None  # another worker learned it
            nxt, depth = self._next(start_ms, end_ms)
            self.first_ms = nxt
            await self.store.plan_facts.learn(PlanFact(
                self.plan_key, "history", str(depth), exc.vendor_message or str(exc), exc.request_id or "",
                int(datetime.now().timestamp() * 1000)))
            log.warning("outside the plan's history; asking from a later start",
                        action="backfill.outside_plan",
                        refused_from=_day(start_ms).isoformat(), next_from=_day(nxt).isoformat(),
                        depth=str(depth), request_id=exc.request_id, vendor_message=exc.vendor_message)
            return nxt if nxt < end_ms else None

    def _next(self, start_ms: int, end_ms: int) -> tuple[int, History]:
        """The deepest sold history starting after ``start_ms``; else half the refused stretch.

        A sold depth after the request's end puts the whole request outside: nothing more is
        asked for it, and the next request is cut at that depth.
        """
        for depth in DEPTHS:
            first = depth.first_day(self.today)
            assert first is not None
            if _ms(first) > start_ms:
                return _ms(first), depth
        lo, hi = _day(start_ms), _day(end_ms - 1)
        mid = lo + timedelta(days=max(1, (hi - lo).days // 2)) if hi > lo else hi + timedelta(days=1)
        return _ms(mid), History(days=max(1, (self.today - mid).days))


async def learned_first_day(store: Store, plan_key: str, today: date) -> date | None:
    """The first day of the depth learned under ``plan_key`` (None: nothing learned)."""
    fact = (await store.plan_facts.learned(plan_key)).get("history")
    if fact is None:
        return None
    try:
        return History.parse(fact.value).first_day(today)
    except ConfigError:
        return None


@dataclass(frozen=True, slots=True)
class PlanReach:
    """The first day the plan sells for this key, and where mdw knows it from.

    ``source`` is ``configured`` (``MDW_PLAN``/``MDW_HISTORY``), ``learned`` (a refusal recorded
    in the store under this plan setting, later than the configured day) or ``none`` (no bound).
    """

    plan: str
    first_day: date | None
    source: str

    def outside(self, start: date) -> str | None:
        """The days from ``start`` that lie before the boundary (``2015-01-01..2023-03-04``), or None."""
        if self.first_day is None or start >= self.first_day:
            return None
        return f"{start.isoformat()}..{(self.first_day - timedelta(days=1)).isoformat()}"

    def to_dict(self) -> dict[str, object]:
        return {"plan": self.plan, "first_day": self.first_day.isoformat() if self.first_day else None,
                "source": self.source}


async def plan_reach(store: Store, limits: Limits | None, now_ms: int) -> PlanReach:
    """The first day the plan sells on the New York day of ``now_ms``: the configured history's
    first day, or the depth learned under this plan setting if that is later (as the planner
    clips, see :meth:`Boundary.load`)."""
    today = _day(now_ms)
    plan_key = str(limits.plan) if limits is not None else "unset"
    configured = limits.first_day(now_ms) if limits is not None else None
    learned = await learned_first_day(store, plan_key, today)
    if learned is not None and (configured is None or learned > configured):
        return PlanReach(plan_key, learned, "learned")
    if configured is not None:
        return PlanReach(plan_key, configured, "configured")
    return PlanReach(plan_key, None, "none")


def within(req: PlannedRequest, first_ms: int | None) -> PlannedRequest | None:
    """``req`` cut to start at ``first_ms`` (None: nothing of it is within the plan)."""
    if first_ms is None or req.fetch.start_ms >= first_ms:
        return req
    if req.fetch.end_ms <= first_ms:
        return None
    targets = tuple(t._replace(covers=TimeRange(max(t.covers.start_ms, first_ms), t.covers.end_ms))
                    for t in req.targets if t.covers.end_ms > first_ms)
    if not targets:
        return None
    return replace(req, fetch=TimeRange(first_ms, req.fetch.end_ms), targets=targets)


def day_span(rng: TimeRange) -> str:
    """``2015-01-02..2024-03-04``: the New York days of a range, for reports."""
    return f"{_day(rng.start_ms).isoformat()}..{_day(rng.end_ms - 1).isoformat()}"

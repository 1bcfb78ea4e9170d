"""Plan facts and settled windows: small record stores, kept per plan setting and per series."""

from __future__ import annotations

from mdw.domain import RangeSet, TimeRange
from mdw.store import open_store
from mdw.store.base import PlanFact

from .conftest import Backend


async def test_plan_facts_are_kept_per_plan_setting_and_replaced_when_learned_again(backend: Backend) -> None:
    """A fact learned under one plan spec is not seen under another; learning again replaces it."""
    async with await open_store(backend.url) as store:
        await store.plan_facts.learn(PlanFact("unset", "history", "5y", "Your plan doesn't...", "r1", 10))
        assert (await store.plan_facts.learned("unset"))["history"].value == "5y"
        assert await store.plan_facts.learned("history=2y,delay=eod,rate=5/min,flatfiles=no") == {}
        await store.plan_facts.learn(PlanFact("unset", "history", "2y", "again", "r2", 20))
        got = (await store.plan_facts.learned("unset"))["history"]
        assert (got.value, got.request_id, got.learned_at_ms) == ("2y", "r2", 20)


async def test_settled_windows_are_read_back_per_series_when_they_overlap_the_range(backend: Backend) -> None:
    """Marked windows come back for their own series only, and only where they overlap."""
    async with await open_store(backend.url) as store:
        await store.plan_facts.mark_settled("AAPL", "1d", [TimeRange(0, 10), TimeRange(10, 20)], 99, 1)
        got = await store.plan_facts.settled("AAPL", "1d", TimeRange(5, 15))
        assert got == RangeSet.of([TimeRange(0, 20)])
        assert not await store.plan_facts.settled("AAPL", "1d", TimeRange(20, 30))
        assert not await store.plan_facts.settled("MSFT", "1d", TimeRange(0, 30))
        assert not await store.plan_facts.settled("AAPL", "1h", TimeRange(0, 30))

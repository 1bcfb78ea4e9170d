"""WriteTurns: the store goes to the waiting file of the lowest rank; a cancelled waiter passes it on."""

from __future__ import annotations

import asyncio

import pytest

from mdw.backfill.ingest import WriteTurns


async def _hold(turns: WriteTurns, rank: int, order: list[int], release: asyncio.Event) -> None:
    async with turns.turn(rank):
        order.append(rank)
        await release.wait()


async def test_the_lowest_rank_waiting_writes_next_whatever_the_order_of_arrival() -> None:
    turns = WriteTurns()
    order: list[int] = []
    gates = {rank: asyncio.Event() for rank in (5, 3, 1, 4)}
    first = asyncio.create_task(_hold(turns, 5, order, gates[5]))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(_hold(turns, rank, order, gates[rank])) for rank in (3, 4, 1)]
    await asyncio.sleep(0.01)
    assert order == [5]  # one at a time
    for rank in (5, 1, 3, 4):
        gates[rank].set()
    await asyncio.gather(first, *waiters)
    assert order == [5, 1, 3, 4]


async def test_a_waiter_cancelled_before_its_turn_is_skipped() -> None:
    turns = WriteTurns()
    order: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(turns, 0, order, release))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(_hold(turns, 1, order, release))
    later = asyncio.create_task(_hold(turns, 2, order, release))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    release.set()
    await asyncio.gather(holder, later)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert order == [0, 2]


async def test_a_waiter_cancelled_as_the_turn_reaches_it_passes_the_turn_on() -> None:
    turns = WriteTurns()
    order: list[int] = []
    release = asyncio.Event()
    holder_in = asyncio.Event()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def holder() -> None:
        async with turns.turn(0):
            holder_in.set()
            await release.wait()
        tasks["unlucky"].cancel()  # the turn was just handed to it; it has not run since

    first = asyncio.create_task(holder())
    await holder_in.wait()
    tasks["unlucky"] = asyncio.create_task(_hold(turns, 1, order, asyncio.Event()))
    later = asyncio.create_task(_hold(turns, 2, order, asyncio.Event()))
    await asyncio.sleep(0.01)
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await tasks["unlucky"]
    await asyncio.sleep(0.01)
    assert order == [2]  # the turn went on to rank 2 instead of staying with the cancelled waiter
    later.cancel()

"""Run liveness: a heartbeat while a run is active, and ``interrupted`` for runs whose process died.

A ``kill -9``, an OOM kill or a reboot leaves nobody to record a run's end, so its row would say
``running`` forever. While a run is active its process rewrites ``params.heartbeat_ms`` (with its
``host``, ``pidns`` and ``pid``) every :data:`HEARTBEAT_S`; a ``running`` run whose heartbeat is
older than :data:`STALE_AFTER_S`, or whose pid no longer exists on this same host (and PID
namespace), is abandoned and is recorded as ``interrupted`` when next looked at.

Distributed runs are exempt: their row belongs to jobs on ``mdw worker`` processes, which keep
running whether or not the process that deferred them is alive (the follower settles the row).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
from collections.abc import Callable
from dataclasses import replace
from typing import TypedDict

from mdw.clock import now_ms
from mdw.errors import MdwError
from mdw.logs import get_logger
from mdw.store.base import RunKind, RunRecord, RunStatus, Store

log = get_logger(__name__)

HEARTBEAT_S = 60.0
STALE_AFTER_S = 3 * HEARTBEAT_S  # three missed beats: the process is gone (or hung beyond use)
_LOOK_BACK = 200  # runs examined by reap_abandoned: a dead run is far younger than this



def _pid_namespace() -> str:
    """The PID namespace of this process ("" where unknown): containers sharing a hostname differ here."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class Owner(TypedDict):
    """Who runs a run: host, PID namespace and pid (stored in the run's params)."""

    host: str
    pidns: str
    pid: int


def owner() -> Owner:
    """This process, as the owner of the runs it starts."""
    return {"host": platform.node(), "pidns": _pid_namespace(), "pid": os.getpid()}


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists here (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    return True


def is_distributed(run: RunRecord) -> bool:
    return run.kind is RunKind.DISTRIBUTED or bool(run.params.get("distributed"))


def abandoned(run: RunRecord, *, at_ms: int | None = None, stale_after_s: float = STALE_AFTER_S,
              here: Owner | None = None) -> bool:
    """True when ``run`` says ``running`` but its process is gone.

    Gone means: no heartbeat (or, for rows written before heartbeats existed, no start) within
    ``stale_after_s``; or the owner is on this host and PID namespace and its pid does not exist.
    """
    if run.status is not RunStatus.RUNNING or is_distributed(run):
        return False
    now = now_ms() if at_ms is None else at_ms
    beat = run.params.get("heartbeat_ms")
    last = int(beat) if isinstance(beat, int) else run.started_at_ms
    if now - last > stale_after_s * 1000:
        return True
    me = here or owner()
    pid = run.params.get("pid")
    same_place = run.params.get("host") == me["host"] and run.params.get("pidns", "") == me["pidns"]
    return same_place and isinstance(pid, int) and pid != me["pid"] and not pid_alive(pid)


def interrupted(run: RunRecord) -> RunRecord:
    """The record of an abandoned run: ``interrupted``, ended at its last sign of life."""
    beat = run.params.get("heartbeat_ms")
    last = int(beat) if isinstance(beat, int) else run.started_at_ms
    why = "the run's process stopped without recording its end (killed, crashed or rebooted)"
    errors = run.report.get("errors")
    report = {**run.report, "status": RunStatus.INTERRUPTED.value, "finished_at_ms": last,
              "errors": [*(errors if isinstance(errors, list) else []), why]}
    return replace(run, status=RunStatus.INTERRUPTED, finished_at_ms=last, report=report)


async def reap(store: Store, runs: list[RunRecord], *, persist: bool = True) -> list[RunRecord]:
    """``runs`` with every abandoned one shown as ``interrupted`` (and, with ``persist``, saved so)."""
    here = owner()
    at = now_ms()
    out: list[RunRecord] = []
    for run in runs:
        if abandoned(run, at_ms=at, here=here):
            run = interrupted(run)
            if not persist:
                out.append(run)
                continue
            await store.runs.save(run)
            log.warning("run marked interrupted", action="run.interrupted", run_id=run.id, kind=run.kind)
        out.append(run)
    return out


async def reap_abandoned(store: Store) -> list[RunRecord]:
    """Record every abandoned recent run as ``interrupted``; returns the runs that changed."""
    runs = await store.runs.recent(_LOOK_BACK)
    before = {r.id for r in runs if r.status is RunStatus.RUNNING}
    return [r for r in await reap(store, runs) if r.id in before and r.status is RunStatus.INTERRUPTED]


async def recent_runs(store: Store, limit: int = 50, *, persist: bool = True) -> list[RunRecord]:
    """:meth:`Store.runs`, with abandoned runs shown (and, with ``persist``, recorded) as ``interrupted``."""
    return await reap(store, await store.runs.recent(limit), persist=persist)


async def current_run(store: Store, run_id: str) -> RunRecord | None:
    """:meth:`Store.get_run`, with an abandoned run shown (and recorded) as ``interrupted``."""
    run = await store.runs.get(run_id)
    return None if run is None else (await reap(store, [run]))[0]


class Heartbeat:
    """Rewrites a running run's record every ``interval_s`` until stopped.

    ``snapshot`` returns the record to save (with the report so far); the heartbeat stamps it.
    Stopping waits for a write in progress, so no late beat can overwrite the final record.
    """

    def __init__(self, store: Store, snapshot: Callable[[], RunRecord], interval_s: float = HEARTBEAT_S):
        self.store = store
        self.snapshot = snapshot
        self.interval_s = interval_s
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="run-heartbeat")

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), self.interval_s)
            if self._done.is_set():
                return
            record = self.snapshot()
            record = replace(record, params={**record.params, "heartbeat_ms": now_ms()})
            try:
                await self.store.runs.save(record)
            except MdwError as exc:  # a missed beat must not stop the run; the next one may land
                log.warning("run heartbeat not saved", action="run.heartbeat_failed", run_id=record.id,
                            error=str(exc))

    async def stop(self) -> None:
        self._done.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

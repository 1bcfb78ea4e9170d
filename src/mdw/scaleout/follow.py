"""Following a distributed run: fold each finished job into the report as it is recorded.

Workers append one row per finished job to ``mdw_job_results`` (with a sequence number) and
notify ``mdw_job_done``; the follower reads only the rows after the last one it saw and folds them
into a running :class:`Tally`. Its work per finished job is one row, whether the run has a
thousand jobs or a million (``bench/scale_out.py --follower`` measures it). Jobs that end without
a row (procrastinate aborted or cancelled them) are found by an idle check that asks procrastinate
about a bounded, rotating sample of the jobs still pending.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

from procrastinate import App

from mdw.backfill.engine import job_series
from mdw.backfill.plan import OutcomeKey
from mdw.backfill.report import Progress, RunReport, SeriesOutcome
from mdw.scaleout.codec import decode
from mdw.store.base import RunKind
from mdw.store.pgjobs import JobResult, JobTables

FINAL = ("succeeded", "failed", "cancelled", "aborted")
IDLE_SAMPLE = 50  # pending jobs asked about per idle check (bounded, rotating)


@dataclass(slots=True)
class Deferred:
    """The jobs one distributed run waits for: the ones it deferred and the ones already queued."""

    run_id: str
    job_ids: list[int] = field(default_factory=list)
    new: int = 0
    existing: int = 0
    planned_requests: int = 0
    started_at_ms: int = 0
    series_planned: dict[OutcomeKey, int] = field(default_factory=dict)
    after_seq: int = 0  # results recorded before the run was deferred are not its live jobs'
    done: list[int] = field(default_factory=list)  # existing jobs already finished when deferred


class BusyUnion:
    """The length of the union of intervals, kept as disjoint sorted intervals (added one by one)."""

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._ends: list[float] = []

    def add(self, a: float, b: float) -> None:
        if b <= a:
            return
        i = bisect.bisect_left(self._ends, a)  # first interval that ends at or after a
        j = bisect.bisect_right(self._starts, b)  # intervals before j start at or before b
        if i < j:
            a, b = min(a, self._starts[i]), max(b, self._ends[j - 1])
        self._starts[i:j] = [a]
        self._ends[i:j] = [b]

    @property
    def seconds(self) -> float:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))


def busy_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Wall time covered by at least one of ``spans`` (their union's length)."""
    union = BusyUnion()
    for a, b in spans:
        union.add(a, b)
    return union.seconds


class Tally:
    """The run report of a distributed run, built one finished job at a time.

    As locally, ``api_request_s`` sums the time each request was awaited and ``api_s`` is the wall
    time during which at least one was (the union of the jobs' vendor-busy spans, each stamped by
    its worker's clock). ``requests``, ``retries`` and ``rate_limited`` count every recorded job,
    failed ones too: they cost vendor calls whatever the outcome.
    """

    def __init__(self, deferred: Deferred, rate_limit: str = "") -> None:
        self.report = RunReport(run_id=deferred.run_id, kind=RunKind.DISTRIBUTED,
                                started_at_ms=deferred.started_at_ms, rate_limit=rate_limit,
                                planned_requests=deferred.planned_requests)
        for key, count in deferred.series_planned.items():
            self.report.series[key] = SeriesOutcome(key, requests_planned=count)
        # Workers record a job's rows as text (str(key)); every job of the run was planned here, so
        # the text finds its typed key without parsing it back.
        self._keys: dict[str, OutcomeKey] = {str(k): k for k in deferred.series_planned}
        self._busy = BusyUnion()

    def key_of(self, text: str) -> OutcomeKey | None:
        """The planned key a worker recorded as ``text``."""
        return self._keys.get(text)

    def _rows(self, texts: tuple[str, ...]) -> list[SeriesOutcome]:
        return [self.report.series[k] for t in texts if (k := self._keys.get(t)) is not None]

    def add(self, r: JobResult) -> None:
        rep = self.report
        rep.requests += r.requests
        rep.retries += r.retries
        rep.rate_limited += r.rate_limited
        rep.api_request_s += r.api_s
        for a, b in r.detail.get("api_spans", []):
            self._busy.add(float(a), float(b))
        keys = r.series or ("?",)
        if r.ok:
            rep.bars_fetched += r.bars
            rep.bars_inserted += r.inserted
            rep.bars_updated += r.updated
            rep.db_s += r.db_s
            rep.transactions += r.requests - r.retries  # one commit per page
            for i, row in enumerate(self._rows(r.series)):
                row.requests_done += 1
                row.bars += r.bars if i == 0 else 0
        else:
            reason = r.error or "failed"
            rep.errors.append(f"{keys[0]}: {reason}")
            for row in self._rows(r.series):
                row.requests_failed += 1
                row.reason = row.reason or reason

    def finish(self, wall_s: float, interrupted: bool) -> RunReport:
        self.report.api_s = self._busy.seconds
        self.report.wall_s = wall_s
        self.report.finished_at_ms = time.time_ns() // 1_000_000
        self.report.settle(interrupted)
        return self.report


async def _ended_without_record(app: App, ids: list[int]) -> list[JobResult]:
    """Of ``ids``, the jobs procrastinate finished (or deleted) that no worker recorded."""
    out: list[JobResult] = []
    for jid in ids:
        found = list(await app.job_manager.list_jobs_async(id=jid))
        if found and found[0].status not in FINAL:
            continue
        status = found[0].status if found else "deleted"
        series: tuple[str, ...] = ()
        if found and "work" in found[0].task_kwargs:
            series = tuple(str(k) for k in job_series(decode(found[0].task_kwargs["work"])))  # type: ignore[arg-type]
        out.append(JobResult(jid, "", "", "", status == "succeeded", error=str(status), series=series))
    return out


async def follow(
    app: App, jobs: JobTables, deferred: Deferred, *, progress: Progress | None = None,
    stop: asyncio.Event | None = None, rate_limit: str = "", idle_check_s: float = 2.0,
) -> RunReport:
    """Wait until every job of the run is final, folding each into the report as it is recorded."""
    started = time.perf_counter()
    tally = Tally(deferred, rate_limit)
    pending = set(deferred.job_ids)
    woke = asyncio.Event()

    def on_done(*_args: object) -> None:
        woke.set()

    def fold(r: JobResult) -> None:
        if r.job_id in pending:
            pending.discard(r.job_id)
            tally.add(r)
            key = tally.key_of(r.series[0]) if r.series else None
            if progress is not None and key is not None:
                progress.advanced(key, r.ok, r.bars)

    for r in await jobs.results(deferred.done):
        fold(r)
    last = deferred.after_seq
    conn = await jobs.listen(on_done)
    interrupted = False
    rotate = 0
    try:
        while pending:
            woke.clear()
            rows = await jobs.since(last)
            for r in rows:
                last = r.seq
                fold(r)
            if not pending:
                break
            if stop is not None and stop.is_set():
                interrupted = True
                break
            if rows:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woke.wait(), timeout=idle_check_s)
                continue
            # Nothing recorded for a while: ask procrastinate about a few pending jobs.
            ids = sorted(pending)
            rotate %= max(1, len(ids))
            sample = list(islice(ids, rotate, rotate + IDLE_SAMPLE)) or ids[:IDLE_SAMPLE]
            rotate += IDLE_SAMPLE
            for r in await _ended_without_record(app, sample):
                fold(r)
    finally:
        await jobs.unlisten(conn, on_done)
    # The run's wall time starts when its jobs were deferred (workers may start them before this
    # follower has connected), so the vendor-busy union always fits inside it.
    followed = time.perf_counter() - started
    began = deferred.started_at_ms / 1000 if deferred.started_at_ms else time.time() - followed
    return tally.finish(max(time.time() - began, followed), interrupted)

"""Backfill entry points for the CLI, the service and the Python API: plan, run, record.

:func:`plan_only` reads the ledger and returns the plan (``--dry-run``); :func:`run_backfill`
runs it through the engine, tracks the symbols for ``update``, and records the run in ``runs``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from mdw.backfill.boundary import Boundary
from mdw.backfill.density import densities, trades_daily
from mdw.backfill.engine import Pipeline
from mdw.backfill.fetch import VendorSource
from mdw.backfill.fileplan import CostModel, plan_with_files, wanted_datasets
from mdw.backfill.filerun import SettleReport, listings, run_files, settle_files
from mdw.backfill.ingest import FileSource
from mdw.backfill.liveness import HEARTBEAT_S, Heartbeat, owner, reap_abandoned
from mdw.backfill.plan import ActionsKey, BackfillSpec, Plan
from mdw.backfill.planner import ACTION_KINDS
from mdw.backfill.report import Progress, RunReport
from mdw.backfill.settle import settle_series
from mdw.backfill.settle_window import SettleWindow
from mdw.clock import SYSTEM_CLOCK, Clock, now_ms
from mdw.config import RateLimit
from mdw.domain import AssetClass, RangeSet, SeriesKey, TimeRange, from_ms, local_midnight_ms
from mdw.errors import ConfigError, StoreError
from mdw.logs import get_logger
from mdw.plans import Limits
from mdw.store.base import Dataset, RunKind, RunRecord, RunStatus, Store, SymbolInfo

log = get_logger(__name__)



def _specs(spec: BackfillSpec | Sequence[BackfillSpec]) -> list[BackfillSpec]:
    return [spec] if isinstance(spec, BackfillSpec) else list(spec)


_BULK_AFTER = 50  # tickers: more than this read their coverage in bulk


async def plan_only(
    store: Store, spec: BackfillSpec | Sequence[BackfillSpec], *, now: int | None = None,
    files: FileSource | None = None, cost: CostModel | None = None, limits: Limits | None = None,
) -> Plan:
    """The plan a run would execute now, read against the store's ledger.

    The REST API is not called. With ``files`` (a flat-file source) the bucket is listed, a month
    per request, and each day's file is weighed against its REST requests with ``cost``, unless
    the spec's source is ``rest``. A spec with ``refetch`` does not read the ledger: its whole
    range is planned as if nothing were held. With ``limits`` (the key's plan) a delayed plan plans
    as of :meth:`Limits.final_before_ms`: what is not yet published is neither asked for nor covered.
    """
    at = now_ms() if now is None else now
    loaded = await Boundary.load(store, limits, at)
    bound = loaded.first_ms
    first = from_ms(bound).astimezone(AssetClass.STOCKS.tz).date() if bound is not None else None
    if limits is not None:
        at = limits.final_before_ms(at)
    plans: list[Plan] = []
    outside: list[tuple[SeriesKey, TimeRange]] = []
    for whole in _specs(spec):
        one, refused = within_history(whole, first)
        outside.extend(refused)
        coverage: dict[SeriesKey, RangeSet] = {}
        actions: dict[ActionsKey, RangeSet] = {}
        if not one.refetch and len(one.tickers) > _BULK_AFTER:  # a universe: a few queries per timeframe
            symbols = [tk.symbol for tk in one.tickers]
            for tf in one.timeframes:
                many = await store.coverage_many(symbols, Dataset.BARS, str(tf))
                coverage.update((SeriesKey(s, tf), held) for s, held in many.items())
            if one.corporate_actions:  # a universe's actions are held too: never asked again
                for kind in ACTION_KINDS:
                    held_actions = await store.coverage_many(symbols, Dataset(kind), "")
                    actions.update((ActionsKey(s, kind), held) for s, held in held_actions.items())
        elif not one.refetch:
            for tk in one.tickers:
                for tf in one.timeframes:
                    held = await store.coverage(tk.symbol, Dataset.BARS, str(tf))
                    coverage[SeriesKey(tk.symbol, tf)] = held
            if one.corporate_actions:
                for tk in one.tickers:
                    for kind in ACTION_KINDS:
                        actions[ActionsKey(tk.symbol, kind)] = await store.coverage(tk.symbol, Dataset(kind))
        found = await listings(files, one, at) if files is not None and one.source != "rest" else []
        if one.source == "flatfiles" and files is None:
            raise ConfigError("--source flatfiles needs MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET")
        model = cost or CostModel(RateLimit.parse("5/min"))
        dens = await densities(store, one) if not one.refetch else {}
        daily = await trades_daily(store, one, coverage) if not one.refetch else set()
        plans.append(plan_with_files(one, coverage, at, actions, found, model, dens, daily))
    paged = [r.fetch.start_ms for p in plans for r in p.requests if r.kind == "aggs" and r.pages > 1]
    probes = int(bool(paged) and loaded.unproven(min(paged, default=0)))  # see Pipeline._probe_history
    if len(plans) == 1:
        return replace(plans[0], outside_plan=tuple(outside), probes=probes)
    return Plan(
        series=tuple(s for p in plans for s in p.series),
        requests=tuple(r for p in plans for r in p.requests),
        derives=tuple(d for p in plans for d in p.derives),
        actions=tuple(a for p in plans for a in p.actions),
        files=tuple(f for p in plans for f in p.files),
        costs=tuple(c for p in plans for c in p.costs),
        notes=tuple(n for p in plans for n in p.notes),
        outside_plan=tuple(outside),
        probes=probes,
        stored=frozenset(t for p in plans for t in p.stored),
    )


def within_history(
    spec: BackfillSpec, first: date | None,
) -> tuple[BackfillSpec, list[tuple[SeriesKey, TimeRange]]]:
    """``spec`` with its start moved to the plan's first day, and each series' part before it.

    The part before the plan's history is never asked for (the vendor would refuse it with a 403):
    it is reported as ``outside_plan``, neither a failure nor covered.
    """
    if first is None:
        return spec, []
    first_ms = local_midnight_ms(first, AssetClass.STOCKS.tz)
    if isinstance(spec.start, int):
        moved = replace(spec, start=max(spec.start, first_ms))
    elif spec.start >= first:
        return spec, []
    else:
        moved = replace(spec, start=first)
    if (spec.end < first) if isinstance(spec.end, date) else (spec.end <= first_ms):
        moved = replace(spec, tickers=())  # wholly before the plan's history: nothing to ask
    refused: list[tuple[SeriesKey, TimeRange]] = []
    for tk in spec.tickers:
        before = spec.wanted_for(tk)
        cut = min(before.end_ms, moved.wanted_for(tk).start_ms if moved.tickers else before.end_ms)
        if cut > before.start_ms:
            part = TimeRange(before.start_ms, cut)
            refused.extend((SeriesKey(tk.symbol, tf), part) for tf in spec.timeframes)
    return moved, refused


async def _settle(files: FileSource, store: Store, specs: Sequence[BackfillSpec], now: int | None
                  ) -> SettleReport:
    """The flat-file settle pass over every spec's datasets and range."""
    total = SettleReport()
    for one in specs:
        for ds in wanted_datasets(one):
            rng = one.wanted(ds.asset)
            first = from_ms(rng.start_ms).astimezone(ds.asset.tz).date()
            last = from_ms(rng.end_ms - 1).astimezone(ds.asset.tz).date()
            got = await settle_files(files, store, [ds], first, last)
            total.checked += got.checked
            total.replaced += got.replaced
            total.reingested += got.reingested
            total.failed += got.failed
            total.bars_updated += got.bars_updated
            total.bars_inserted += got.bars_inserted
            total.days.extend(got.days)
            total.errors.extend(got.errors)
    return total


async def track_symbols(store: Store, specs: Sequence[BackfillSpec]) -> None:
    """Remember what was backfilled so ``mdw update`` keeps it current (timeframes are merged)."""
    known = {s.ticker: s for s in await store.symbols.all()}
    for spec in specs:
        start = spec.start if isinstance(spec.start, date) else None
        for tk in spec.tickers:
            old = known.get(tk.symbol)
            tfs = tuple(dict.fromkeys([*(old.timeframes if old else ()), *(str(t) for t in spec.timeframes)]))
            first = start.isoformat() if start else None
            if old and old.start_date and (first is None or old.start_date < first):
                first = old.start_date
            info = SymbolInfo(tk.symbol, tk.asset_class.value, old.name if old else "", True, tfs, first)
            if info != old:
                await store.symbols.upsert(info)
                known[tk.symbol] = info


async def run_backfill(
    store: Store,
    client: VendorSource,
    spec: BackfillSpec | Sequence[BackfillSpec],
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    now: int | None = None,
    workers: int | None = None,
    track: bool = True,
    rate_limit: str = "",
    run_id: str | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    files: FileSource | None = None,
    cost: CostModel | None = None,
    settle: bool = False,
    limits: Limits | None = None,
    clock: Clock = SYSTEM_CLOCK,
    settle_window: SettleWindow | None = None,
) -> RunReport:
    """Fill every gap of ``spec`` and return the measured report (also stored in ``runs``).

    Args:
        store: an open store.
        client: an open vendor client (its limiter paces every request).
        spec: one spec, or several (``update`` plans every tracked symbol with its own range).
        progress: receives the plan and each finished request.
        stop: set it to stop fetching; what was fetched is committed and the report says
            ``interrupted``.
        now: the present in epoch ms (tests pin it); defaults to the clock.
        workers: concurrent fetches (default: the client's ``max_in_flight``, else 16).
        track: record the tickers and timeframes as tracked symbols.
        run_id: the id to record the run under (the service hands it out before the run starts).
        heartbeat_s: how often the run's row is stamped as alive (see :mod:`mdw.backfill.liveness`).
        files: the vendor's flat files (None: REST only); the plan takes whole-market days from them
            as each spec's ``source`` and ``cost`` decide, and they are stored before the REST part.
        cost: the cost model that weighs a day's file against its REST requests.
        settle: first pick up what the vendor revised since it was stored: re-fetch, once, each
            series' settle window (``settle_window``, within the spec's range; see
            :mod:`mdw.backfill.settle`) and, with ``files``, ingest again the days held from flat
            files whose file was replaced since; corrected bars count as ``bars_updated``.
        limits: the key's plan (``Settings.limits``): a delayed plan's unpublished data is left
            for a later run.
        clock: the clock the run waits out a vendor outage on (the client's own, in tests a fake one).
        settle_window: how far back ``settle`` looks (default: the last 2 sessions, each after
            11:00 ET the next day).
    """
    specs = _specs(spec)
    started_wall = time.perf_counter()
    started = now_ms()
    file_requests = files.stats.requests if files is not None else 0
    settled = (await _settle(files, store, specs, now)
               if (settle or any(s.settle for s in specs)) and files is not None else None)
    plan = await plan_only(store, specs, now=now, files=files, cost=cost, limits=limits)
    plan_s = time.perf_counter() - started_wall
    kind = specs[0].kind if specs else RunKind.BACKFILL
    report = RunReport(run_id=run_id or uuid.uuid4().hex[:16], kind=kind, started_at_ms=started,
                       rate_limit=rate_limit)
    if settled is not None:
        report.files["settle"] = settled.to_dict()
        report.bars_updated += settled.bars_updated
        report.bars_inserted += settled.bars_inserted
        report.errors.extend(settled.errors[:20])
    params: dict[str, object] = {"specs": [s.to_dict() for s in specs], **owner(), "heartbeat_ms": started}
    record = RunRecord(report.run_id, kind, RunStatus.RUNNING, started, params=params)
    await reap_abandoned(store)
    await store.runs.save(record)
    if track:
        await track_symbols(store, [s for s in specs if s.kind is not RunKind.UPDATE])
    stats = getattr(client, "stats", None)
    before = stats() if stats else None
    boundary = await Boundary.load(store, limits, now_ms() if now is None else now)
    pipeline = Pipeline(store, client, plan, report,
                        workers=workers or int(getattr(client, "max_in_flight", 16)),
                        progress=progress, stop=stop, boundary=boundary, clock=clock)
    if progress:
        progress.planned(plan)
    log.info("backfill planned", action="backfill.planned", run_id=report.run_id,
             requests=plan.request_count, series=len(plan.series))

    def snapshot() -> RunRecord:
        report.wall_s = time.perf_counter() - started_wall
        return replace(record, report=report.to_dict())

    heartbeat = Heartbeat(store, snapshot, heartbeat_s)
    heartbeat.start()
    interrupted = True
    try:
        if settle or any(s.settle for s in specs):
            rest = await settle_series(store, client, specs, now_ms=now_ms() if now is None else now,
                                       window=settle_window or SettleWindow(), limits=limits)
            report.settled = rest.to_dict()
            report.bars_fetched += rest.bars_fetched
            report.bars_updated += rest.bars_updated
            report.bars_inserted += rest.bars_inserted
            report.errors.extend(rest.errors[:20])
        if plan.files and files is not None:
            totals = await run_files(files, store, plan.files, report, run_id=report.run_id, stop=stop,
                                     progress=progress)
            report.files.update(totals.to_dict())
            report.files["requests"] = files.stats.requests - file_requests  # listings and HEADs too
            report.errors.extend(totals.errors[:20])
        interrupted = bool(stop and stop.is_set()) or await pipeline.run()
    finally:
        await heartbeat.stop()
        report.wall_s = time.perf_counter() - started_wall
        report.plan_s = plan_s
        report.api_s = pipeline.api.total
        report.api_request_s = pipeline.api.summed
        if stats and before is not None:
            after = stats()
            report.requests = after.total_requests - before.total_requests
            report.rate_limited = after.rate_limited_count - before.rate_limited_count
            report.retries = after.retries - before.retries
            was: dict[str, int] = getattr(before, "data_notes", {})
            notes = {k: v - was.get(k, 0) for k, v in getattr(after, "data_notes", {}).items()}
            report.data_notes = {k: v for k, v in notes.items() if v}
        report.finished_at_ms = now_ms()
        report.settle(interrupted)
        record = replace(record, status=report.status, finished_at_ms=report.finished_at_ms,
                         report=report.to_dict())
        try:
            await asyncio.shield(store.runs.save(record))
        except StoreError as exc:
            # The bars and their ledger entries are committed (each write is its own transaction); only
            # the row that tells about the run is lost, so the run still ends with its report, saying so.
            # The row stays `running` until its missing heartbeat shows it `interrupted`.
            report.record_error = str(exc)
            log.error("run record not saved", action="run.record_failed", run_id=report.run_id,
                      error=str(exc))
        else:
            await store.checkpoint()  # the run's WAL back to zero bytes (it waits briefly for readers)
    log.info("backfill finished", action="backfill.finished", run_id=report.run_id, status=report.status,
             requests=report.requests, bars=report.bars_fetched, wall_s=round(report.wall_s, 3))
    return report

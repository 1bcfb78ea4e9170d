"""Flat files or REST, per dataset and day: the cost model and the choice. Pure: no I/O.

The REST plan is made first, as if there were no files. Each of its requests is spread over the
trading days it spans, so every (dataset, day) gets the REST requests and bars the wanted series
would cost there. A published day's file (listed, and readable with the key) is taken when its
estimated cost is lower, or always under ``--source flatfiles``; today and days not yet published
are never in a listing, so they stay with REST. The chosen days are then treated as held for every
wanted ticker of that market, and the REST plan is made again for what is left.

The estimates are seconds of a run, from rates ``bench/flatfiles.py`` measures:

- REST: the requests paced by the plan's rate limit, or moving the day's bars at the measured REST
  rate, whichever takes longer (a free plan is bound by the limit, an unlimited one by the bars);
- a file: its compressed bytes at the measured ingest rate (download, decode and store of every
  ticker in it, the unwanted ones too).

So a whole market's minutes come from files (one file instead of thousands of requests), a few
tickers from REST (a few requests instead of tens of MB).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from mdw.backfill.plan import ActionsKey, BackfillSpec, FileCost, Plan, PlannedFile, PlannedRequest
from mdw.backfill.planner import ONE_DAY, ONE_MINUTE, derivable, plan_backfill
from mdw.calendar import trading_days
from mdw.config import RateLimit
from mdw.domain import AssetClass, RangeSet, SeriesKey, Timeframe
from mdw.flatfiles.keys import FileDataset, FileInfo, dataset

REST_BARS_PER_S = 75_000.0  # end-to-end REST backfill, bars/s (docs/benchmarks.md, bench/backfill.py)
FILE_BYTES_PER_S = 8.0e6  # flat-file ingest, compressed bytes/s (docs/benchmarks.md, bench/flatfiles.py)


@dataclass(frozen=True, slots=True)
class Listing:
    """What the bucket holds for one dataset over the wanted range, as the runner listed it."""

    dataset: FileDataset
    files: Mapping[date, FileInfo] = field(default_factory=dict)
    refused: str = ""  # why the key may not read this dataset's files (a 403), when it may not


@dataclass(frozen=True, slots=True)
class CostModel:
    """Seconds a run would spend, to compare a day's file with its REST requests."""

    rate: RateLimit
    rest_bars_per_s: float = REST_BARS_PER_S
    file_bytes_per_s: float = FILE_BYTES_PER_S

    def rest_s(self, requests: float, bars: float) -> float:
        paced = 0.0 if self.rate.unlimited else requests * self.rate.period / self.rate.requests
        return max(paced, bars / self.rest_bars_per_s)

    def file_s(self, size: int) -> float:
        return size / self.file_bytes_per_s


def derived_timeframes(spec: BackfillSpec) -> tuple[Timeframe, ...]:
    """With ``derive`` and 1m wanted: the coarser intraday timeframes a minute file also fills."""
    if not spec.derive or ONE_MINUTE not in spec.timeframes:
        return ()
    wanted = sorted(set(spec.timeframes), key=lambda t: t.sort_key())
    return tuple(tf for tf in wanted if tf != ONE_MINUTE and derivable(ONE_MINUTE, tf))


def wanted_datasets(spec: BackfillSpec) -> list[FileDataset]:
    """The datasets whose files could fill the spec (minute files for 1m, day files for 1d)."""
    out: list[FileDataset] = []
    for asset in sorted({t.asset_class for t in spec.tickers}, key=lambda a: a.value):
        for tf in (ONE_MINUTE, ONE_DAY):
            ds = dataset(asset, tf)
            if ds is not None and tf in spec.timeframes and ds not in out:
                out.append(ds)
    return out


def _dataset_of(req: PlannedRequest, derive: Sequence[Timeframe]) -> FileDataset | None:
    tf = req.timeframe
    if tf == ONE_MINUTE or tf in derive:
        return dataset(req.asset, ONE_MINUTE)
    if tf == ONE_DAY:
        return dataset(req.asset, ONE_DAY)
    return None


def rest_per_day(requests: Iterable[PlannedRequest], derive: Sequence[Timeframe]
                 ) -> dict[tuple[str, date], tuple[float, float]]:
    """Each (dataset prefix, day): the REST requests and base bars the plan spends on it.

    A request spanning n trading days counts 1/n of its expected pages and 1/n of its bars on each.
    """
    out: dict[tuple[str, date], tuple[float, float]] = {}
    for req in requests:
        ds = _dataset_of(req, derive)
        if ds is None:
            continue
        days = trading_days(req.asset, req.fetch)
        if not days:
            continue
        share = 1.0 / len(days)
        bars = float(len(req.targets) if req.kind == "grouped" else req.base_units) * share
        pages = req.expected_pages * share
        for day in days:
            r, b = out.get((ds.prefix, day), (0.0, 0.0))
            out[(ds.prefix, day)] = (r + pages, b + bars)
    return out


def plan_with_files(
    spec: BackfillSpec,
    coverage: Mapping[SeriesKey, RangeSet],
    now_ms: int,
    action_coverage: Mapping[ActionsKey, RangeSet] | None,
    listings: Sequence[Listing],
    cost: CostModel,
    densities: Mapping[str, float] | None = None,
    traded: Collection[str] = (),
) -> Plan:
    """The plan with whole-market days taken from flat files where they are cheaper (or asked for).

    Args:
        spec: what is wanted (``spec.source`` decides: rest, flatfiles or auto).
        coverage: the ledger of every wanted series.
        now_ms: the present.
        action_coverage: as for :func:`plan_backfill`.
        listings: the bucket's files per dataset (empty: no flat files configured).
        cost: the cost model.
        densities, traded: as for :func:`plan_backfill`.
    """
    rest = plan_backfill(spec, coverage, now_ms, action_coverage, densities, traded)
    if spec.source == "rest" or not listings:
        return rest
    derive = derived_timeframes(spec)
    per_day = rest_per_day(rest.requests, derive)
    chosen: list[PlannedFile] = []
    costs: list[FileCost] = []
    notes: list[str] = []
    for listing in listings:
        ds = listing.dataset
        days = sorted(d for (prefix, d) in per_day if prefix == ds.prefix and d in listing.files)
        if listing.refused:
            if days:
                notes.append(f"{ds.prefix}: {listing.refused}; its {len(days)} day(s) go to REST")
            continue
        taken = 0
        total_file_s = total_rest_s = total_requests = 0.0
        total_bytes = 0
        for day in days:
            info = listing.files[day]
            requests, bars = per_day[(ds.prefix, day)]
            rest_s, file_s = cost.rest_s(requests, bars), cost.file_s(info.size)
            total_file_s += file_s
            total_rest_s += rest_s
            total_requests += requests
            total_bytes += info.size
            if spec.source == "flatfiles" or file_s < rest_s:
                taken += 1
                chosen.append(PlannedFile(ds, day, info, derive if ds.timeframe == ONE_MINUTE else (),
                                          requests, rest_s, file_s))
        if days:
            costs.append(FileCost(ds.prefix, len(days), taken, total_bytes, total_file_s, total_requests,
                                  total_rest_s))
    if not chosen:
        return replace(rest, costs=tuple(costs), notes=tuple(notes))
    final = plan_backfill(spec, _with_days(spec, coverage, chosen), now_ms, action_coverage, densities,
                          traded)
    return replace(final, files=tuple(chosen), costs=tuple(costs), notes=tuple(notes), stored=rest.stored)


def _with_days(spec: BackfillSpec, coverage: Mapping[SeriesKey, RangeSet],
               chosen: Sequence[PlannedFile]) -> dict[SeriesKey, RangeSet]:
    """The ledger as it will be once the chosen files are stored: their days held for every ticker."""
    days: dict[tuple[AssetClass, Timeframe], RangeSet] = {}
    for f in chosen:
        rng = f.dataset.day_range(f.day)
        for tf in (f.dataset.timeframe, *f.derive):
            days[(f.dataset.asset, tf)] = days.get((f.dataset.asset, tf), RangeSet()) | [rng]
    out = dict(coverage)
    for tk in spec.tickers:
        for (asset, tf), held in days.items():
            if tk.asset_class is asset and tf in spec.timeframes:
                series = SeriesKey(tk.symbol, tf)
                out[series] = out.get(series, RangeSet()) | held
    return out

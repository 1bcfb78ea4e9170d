"""The Python API: ``mdw.connect(url)`` opens a warehouse; bars come back as DataFrames or Arrow.

The core is async (:class:`AsyncWarehouse`, for code that already runs an event loop). The
everyday :class:`Warehouse` is one thin synchronous facade over it: it owns a private event loop
on a background thread, so it works the same in scripts and in notebooks that already run a loop.

    >>> import mdw
    >>> wh = mdw.connect("sqlite:///mdw-demo/demo.db")
    >>> df = wh.bars("AAPL", "1h", "2024-03-01", "2024-03-31")
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypedDict, TypeVar, Unpack

from mdw.config import Settings, SettingsValues, load_settings
from mdw.domain import (
    RangeSet,
    Ticker,
    Timeframe,
    TimeRange,
    from_ms,
    parse_ticker,
    parse_tickers,
    parse_timeframes,
    to_ms,
)
from mdw.store.base import Dataset, Store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mdw.backfill.answer import Coverage
    from mdw.backfill.plan import BackfillSpec, Plan
    from mdw.backfill.report import RunReport
    from mdw.backfill.status import SeriesStatus
    from mdw.backfill.stitch import Stitched
    from mdw.domain import BarBatch
    from mdw.polygon import PolygonClient

T = TypeVar("T")
When = date | datetime | str | int


class PlanOptions(TypedDict, total=False):
    """What to plan besides the bars themselves (as ``mdw backfill``'s flags)."""

    derive: bool
    corporate_actions: bool  # default True: stock tickers' splits and dividends, for adjusted reads
    source: Literal["rest", "flatfiles", "auto"]


class UniverseDefinition(TypedDict, total=False):
    """A universe's definition, as ``mdw universe define``'s flags (see :mod:`mdw.backfill.catalog`)."""

    market: str | Sequence[str]
    types: str | Sequence[str]
    exchanges: str | Sequence[str]
    active_on: date | str
    tickers: Sequence[str]
    include_delisted: bool
    underlying: str
    expiry: str
    strikes: str | int


class BackfillOptions(PlanOptions, total=False):
    """:class:`PlanOptions`, plus the vendor settings to override for this run only."""

    rate_limit: str | None
    api_key: str | None
    base_url: str | None
    settle: bool


def _timeframe(tf: Timeframe | str) -> Timeframe:
    return tf if isinstance(tf, Timeframe) else Timeframe.parse(tf)


def _ticker(ticker: Ticker | str) -> Ticker:
    return ticker if isinstance(ticker, Ticker) else parse_ticker(ticker)


def _day_or_ms(value: When) -> date | int:
    from mdw.domain import parse_when, to_ms

    if isinstance(value, str):
        value = parse_when(value)
    if isinstance(value, datetime):
        return to_ms(value)
    return value


def window(ticker: Ticker, start: When, end: When) -> TimeRange:
    """``[start, end)`` in ms; dates are whole local days of the ticker's market, ``end`` inclusive."""
    from mdw.backfill.plan import BackfillSpec

    return BackfillSpec((ticker,), (), _day_or_ms(start), _day_or_ms(end)).wanted(ticker.asset_class)


class AsyncWarehouse:
    """The async core: an open store plus the settings used to reach the vendor."""

    def __init__(self, store: Store, settings: Settings, given: SettingsValues | None = None) -> None:
        self.store = store
        self.settings = settings
        self._given: SettingsValues = given or {}  # what open() was told, to rebuild settings per run

    @classmethod
    async def open(cls, url: str | None = None, **settings: Unpack[SettingsValues]) -> AsyncWarehouse:
        """Open (and migrate) the store at ``url`` (default: ``MDW_DATABASE_URL``).

        Raises:
            ConfigError: a setting is unknown (a typo) or has a bad value.
        """
        from mdw import calendar_cache
        from mdw.store import open_store

        calendar_cache.install()  # sessions from the disk cache, as the CLI and the service read them
        settings["database_url"] = url
        conf = load_settings(where="mdw.connect()", **settings)
        return cls(await open_store(conf.database_url), conf, settings)

    async def close(self) -> None:
        await self.store.close()

    async def bars(self, ticker: Ticker | str, timeframe: Timeframe | str, start: When, end: When,
                   adjust: str = "none", *, strict: bool = False, names: str = "long",
                   stitch: bool = False) -> pd.DataFrame:
        """Bars as a pandas DataFrame indexed by ``timestamp`` (UTC window start).

        Columns: ``date`` (the session's, daily and longer bars only), ``open, high, low, close,
        volume, vwap, trades`` (``names="vendor"``: ``t`` and ``o, h, l, c, v, vw, n``). Adjusted
        values are rounded to the instrument's precision. ``start``/``end`` dates are the market's
        own days (ET for US stocks, UTC for crypto and forex), ``end`` inclusive.
        ``df.attrs`` holds ``coverage`` (how much of the range is held), ``ticker``,
        ``timeframe``, ``adjustment`` and ``as_of`` (see :meth:`bars_arrow` for the errors).
        ``stitch``: ``ticker`` (today's ticker, a composite FIGI or a CIK) names a security, read
        across its ticker changes; ``df.attrs["stitch"]`` lists the tickers read and the changes.
        """
        table = await self.bars_arrow(ticker, timeframe, start, end, adjust, strict=strict, names=names,
                                      stitch=stitch)
        frame: pd.DataFrame = table.to_pandas()
        frame = frame.set_index(table.schema.names[0])
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        frame.attrs["coverage"] = json.loads(meta.pop("mdw.coverage"))
        if "mdw.stitch" in meta:
            frame.attrs["stitch"] = json.loads(meta.pop("mdw.stitch"))
        frame.attrs.update({k.removeprefix("mdw."): v for k, v in meta.items()})
        return frame

    async def bars_arrow(self, ticker: Ticker | str, timeframe: Timeframe | str, start: When, end: When,
                         adjust: str = "none", *, strict: bool = False, names: str = "long",
                         stitch: bool = False) -> pa.Table:
        """Bars as a ``pyarrow.Table``: ``timestamp`` (``timestamp[ms, tz=UTC]``), ``date`` (daily and
        longer bars), ``open, high, low, close, volume, vwap, trades``; volume and vwap are null
        where the vendor has none. ``names="vendor"`` names them ``t, date, o, h, l, c, v, vw, n``.

        The schema metadata names the series (``mdw.ticker``, ``mdw.timeframe``), the adjustment
        (``mdw.adjustment``, ``mdw.as_of``) and how much of the range is held (``mdw.coverage``,
        JSON); with ``stitch``, ``mdw.stitch`` (JSON) lists the tickers read and the change points.

        Raises:
            UsageError: ``adjust`` or ``names`` is not one of its values; ``stitch`` with an
                adjusted read (stitched reads are raw).
            NotStoredError: the ticker is unknown, or none of its bars of this timeframe are stored.
            IncompleteError: ``strict`` and the range is held only in part; or an adjusted read
                whose corporate actions were never fetched and no vendor key is configured to
                fetch them.
        """
        from mdw.backfill.export import market_today, read_bars
        from mdw.backfill.stitch import ident
        from mdw.bar_schema import BarSchema, check_names

        tk = ident(ticker) if stitch and isinstance(ticker, str) else _ticker(ticker)
        tf = _timeframe(timeframe)
        check_names(names)
        rng = window(tk, start, end)
        if stitch:
            chunks, cov, plan = await self._stitched(tk, tf, rng, adjust, strict)
            meta = {"mdw.coverage": json.dumps(cov.to_dict()), "mdw.stitch": json.dumps(plan)}
            schema = BarSchema(str(plan["ticker"]), tf, adjust, market_today(tk.symbol), names, extra=meta)
            return schema.table(chunks)
        cov = await self.check_read(tk, tf, rng, adjust, strict)
        schema = BarSchema(tk.symbol, tf, adjust, market_today(tk.symbol), names,
                           extra={"mdw.coverage": json.dumps(cov.to_dict())})
        chunks = [c async for c in read_bars(self.store, tk.symbol, tf, rng.start_ms, rng.end_ms, adjust,
                                             schema.as_of)]
        return schema.table(chunks)

    async def _stitched(self, tk: Ticker, tf: Timeframe, rng: TimeRange, adjust: str, strict: bool
                        ) -> tuple[list[BarBatch], Coverage, dict[str, object]]:
        """A stitched read's bars, coverage and metadata (see :mod:`mdw.backfill.stitch`)."""
        from mdw.backfill import stitch

        stitch.refuse_adjusted(adjust)
        cov, plan = await self.check_stitched(tk, tf, rng, strict)
        chunks = [c async for c in stitch.iter_stitched(self.store, plan.parts, tf, rng.start_ms, rng.end_ms,
                                                        label=plan.ticker)]
        return chunks, cov, plan.to_dict()

    async def check_stitched(self, tk: Ticker, tf: Timeframe, rng: TimeRange, strict: bool
                             ) -> tuple[Coverage, Stitched]:
        """The checks of a stitched read: the security is known, some of its bars are stored, and
        (``strict``) its tickers hold the whole range between them."""
        from mdw.backfill import answer, stitch

        plan = await stitch.plan_stitch(self.store, tk.symbol, tk.asset_class, rng)
        await stitch.require_stored(self.store, plan, tf)
        cov = await stitch.coverage(self.store, plan, tf, rng, to_ms(datetime.now(UTC)), tk.asset_class)
        if strict:
            answer.require_complete(cov)
        return cov, plan

    async def check_read(self, tk: Ticker, tf: Timeframe, rng: TimeRange, adjust: str,
                            strict: bool) -> Coverage:
        """The checks every read makes (see :mod:`mdw.backfill.answer`); fetches missing corporate
        actions for an adjusted read when a vendor key is configured."""
        from mdw.adjust import ADJUST_MODES
        from mdw.backfill import answer
        from mdw.errors import UsageError

        if adjust not in ADJUST_MODES:
            raise UsageError(f"invalid adjust {adjust!r}; expected one of {', '.join(ADJUST_MODES)}")
        now = to_ms(datetime.now(UTC))
        await answer.require_series(self.store, tk, tf)
        cov = await answer.coverage_of(self.store, tk, tf, rng, now)
        if strict:
            answer.require_complete(cov)
        lacking, as_of = await answer.missing_actions(self.store, tk, adjust, rng, now)
        if lacking and self.settings.polygon_api_key is not None:
            span = answer.actions_span(rng, now)
            kinds = tuple(d.value for d in lacking)
            await self._fetch_actions(tk, from_ms(span.start_ms).date(), kinds)
            lacking, as_of = await answer.missing_actions(self.store, tk, adjust, rng, now)
        if lacking:
            raise answer.actions_refusal(tk, adjust, lacking, rng)
        return replace(cov, adjust=adjust, actions_as_of=as_of)

    async def _fetch_actions(self, tk: Ticker, first: date, kinds: tuple[str, ...]) -> None:
        """Fetch a ticker's corporate actions from ``first`` to today (only the days not yet held)."""
        from mdw.backfill.plan import BackfillSpec
        from mdw.store.base import RunKind

        spec = BackfillSpec((tk,), (), first, datetime.now(UTC).date() + timedelta(days=1),
                            corporate_actions=True, action_kinds=kinds, kind=RunKind.CORPORATE_ACTIONS)
        await self._run(spec, {})

    async def coverage(self, ticker: Ticker | str, timeframe: Timeframe | str = "1d") -> RangeSet:
        """The ranges held for a series (including ranges the vendor confirmed empty)."""
        return await self.store.coverage(_ticker(ticker).symbol, Dataset.BARS, str(_timeframe(timeframe)))

    async def plan(self, symbols: str | Sequence[str], timeframes: str | Sequence[str], start: When,
                   end: When, **options: Unpack[PlanOptions]) -> Plan:
        """The requests :meth:`backfill` would make now, read against the ledger; calls no REST
        endpoint (with the flat-file key pair set, it lists the bucket to weigh files against REST)."""
        from mdw.backfill.fileplan import CostModel
        from mdw.backfill.runner import plan_only
        from mdw.flatfiles.s3 import source_from

        files, cost = source_from(self.settings), CostModel(self.settings.rate_limit)
        return await plan_only(self.store, _spec(symbols, timeframes, start, end, options), files=files,
                               cost=cost, limits=self.settings.limits)

    async def backfill(self, symbols: str | Sequence[str], timeframes: str | Sequence[str], start: When,
                       end: When, **options: Unpack[BackfillOptions]) -> RunReport:
        """Fill every gap, as ``mdw backfill`` does, and return the run's report.

        ``rate_limit``, ``api_key`` and ``base_url`` override the warehouse's settings for this run.
        ``source`` is ``rest``, ``flatfiles`` or ``auto`` (flat files need the settings' flat-file
        key pair); ``settle`` first picks up the vendor's revisions: the last ``settle_sessions``
        sessions held are re-fetched once, and the flat-file days whose file was replaced are
        ingested again (see :mod:`mdw.backfill.settle`).
        """
        return await self._run(_spec(symbols, timeframes, start, end, options), options)

    async def define_universe(self, name: str, **definition: Unpack[UniverseDefinition]) -> dict[str, object]:
        """Define (or redefine) universe ``name``, as ``mdw universe define`` does; returns its definition.

        Raises:
            UsageError: a bad name or definition.
        """
        from mdw.backfill import catalog

        rec = await catalog.define(self.store, name, catalog.define_spec(**definition))
        return rec.spec

    async def universes(self) -> dict[str, dict[str, object]]:
        """Every defined universe's definition, by name."""
        return {r.name: r.spec for r in await self.store.universes.all()}

    async def universe_members(self, name: str, on: When | None = None) -> list[str]:
        """The universe's tickers on day ``on`` (default today), from the stored reference data.

        Raises:
            UsageError: unknown universe, or no reference data stored (see :meth:`refresh_reference`).
        """
        from mdw.backfill import catalog

        today = datetime.now(UTC).date()
        day = on if isinstance(on, date) and not isinstance(on, datetime) else (
            _as_day(on) if on is not None else today)
        return (await catalog.show(self.store, name, day, today)).members

    async def remove_universe(self, name: str) -> None:
        """Forget universe ``name`` (its tickers' bars stay).

        Raises:
            UsageError: no universe of that name.
        """
        from mdw.backfill import catalog

        await catalog.remove(self.store, name)

    async def refresh_reference(self) -> None:
        """Fetch the tickers over time, the renames, and every options universe's chain."""
        from mdw.backfill.catalog import refresh_reference

        async with self._client(self.settings) as client:
            await refresh_reference(self.store, client, datetime.now(UTC).date())

    async def backfill_universe(self, name: str, timeframes: str | Sequence[str], start: When, end: When,
                                **options: Unpack[BackfillOptions]) -> RunReport:
        """Backfill universe ``name``'s members over ``[start, end]`` (whole days), each on the days
        it was listed, as ``mdw backfill --universe`` does."""
        from mdw.backfill.catalog import remember_backfill
        from mdw.backfill.members import universe_spec

        first, last = _as_day(start), _as_day(end)
        conf = self._settings_for(options)
        async with self._client(conf) as client:
            spec = await universe_spec(self.store, client, name, tuple(parse_timeframes(timeframes)), first,
                                       last, today=datetime.now(UTC).date(),
                                       derive=options.get("derive", False))
        spec = replace(spec, corporate_actions=options.get("corporate_actions", False),
                       source=options.get("source", "auto"))
        await remember_backfill(self.store, name, [str(t) for t in spec.timeframes], first)
        return await self._run(spec, options)

    def _settings_for(self, options: BackfillOptions) -> Settings:
        run = self._given.copy()  # open()'s settings, then this run's overrides
        if (rate := options.get("rate_limit")) is not None:
            run["rate_limit"] = rate
        if (key := options.get("api_key")) is not None:
            run["polygon_api_key"] = key
        if (base := options.get("base_url")) is not None:
            run["polygon_base_url"] = base
        return self.settings if run == self._given else load_settings(**run)

    @asynccontextmanager
    async def _client(self, conf: Settings) -> AsyncIterator[PolygonClient]:
        from mdw.budget import shared_budget
        from mdw.polygon import PolygonClient

        async with shared_budget(conf) as limiter, \
                PolygonClient.from_settings(conf, limiter=limiter) as client:
            yield client

    async def _run(self, spec: BackfillSpec, options: BackfillOptions) -> RunReport:
        from mdw.backfill.fileplan import CostModel
        from mdw.backfill.runner import run_backfill
        from mdw.backfill.settle_window import SettleWindow
        from mdw.backfill.tickers import check_tickers
        from mdw.budget import shared_budget
        from mdw.flatfiles.s3 import source_from
        from mdw.polygon import PolygonClient

        conf = self._settings_for(options)
        files, cost = source_from(conf), CostModel(conf.rate_limit)
        window = SettleWindow.parse(conf.settle_sessions, conf.settle_after)
        async with shared_budget(conf) as limiter, \
                PolygonClient.from_settings(conf, limiter=limiter) as client:
            await check_tickers(spec.tickers, self.store, client)
            return await run_backfill(self.store, client, spec, rate_limit=str(conf.rate_limit), files=files,
                                      cost=cost, settle=options.get("settle", False), limits=conf.limits,
                                      settle_window=window)

    async def status(self) -> list[SeriesStatus]:
        """Per series: first and last bar, bars, gaps, last fetched."""
        from mdw.backfill.status import series_status

        return await series_status(self.store)


def _as_day(value: When) -> date:
    """A whole day (a universe is resolved per day).

    Raises:
        UsageError: a time of day or epoch ms instead of a day.
    """
    from mdw.errors import UsageError

    day = _day_or_ms(value)
    if not isinstance(day, date) or isinstance(day, datetime):
        raise UsageError(f"a universe takes whole days (YYYY-MM-DD), not {value!r}")
    return day


def _spec(symbols: str | Sequence[str], timeframes: str | Sequence[str], start: When, end: When,
          options: PlanOptions) -> BackfillSpec:
    from mdw.backfill.plan import BackfillSpec

    return BackfillSpec(tuple(parse_tickers(symbols)), tuple(parse_timeframes(timeframes)),
                        _day_or_ms(start), _day_or_ms(end), derive=options.get("derive", False),
                        corporate_actions=options.get("corporate_actions", True),
                        source=options.get("source", "auto"))


class Warehouse:
    """The synchronous facade: each method runs the async core on a private loop thread."""

    def __init__(self, url: str | None = None, **settings: Unpack[SettingsValues]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mdw-warehouse", daemon=True)
        self._thread.start()
        try:
            self._core = self._call(AsyncWarehouse.open(url, **settings))
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Coroutine[object, None, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def store(self) -> Store:
        return self._core.store

    def bars(self, ticker: Ticker | str, timeframe: Timeframe | str, start: When, end: When,
             adjust: str = "none", *, strict: bool = False, names: str = "long",
             stitch: bool = False) -> pd.DataFrame:
        """See :meth:`AsyncWarehouse.bars`."""
        return self._call(self._core.bars(ticker, timeframe, start, end, adjust, strict=strict, names=names,
                                          stitch=stitch))

    def bars_arrow(self, ticker: Ticker | str, timeframe: Timeframe | str, start: When, end: When,
                   adjust: str = "none", *, strict: bool = False, names: str = "long",
                   stitch: bool = False) -> pa.Table:
        """See :meth:`AsyncWarehouse.bars_arrow`."""
        return self._call(self._core.bars_arrow(ticker, timeframe, start, end, adjust, strict=strict,
                                                names=names, stitch=stitch))

    def coverage(self, ticker: Ticker | str, timeframe: Timeframe | str = "1d") -> RangeSet:
        """See :meth:`AsyncWarehouse.coverage`."""
        return self._call(self._core.coverage(ticker, timeframe))

    def plan(self, symbols: str | Sequence[str], timeframes: str | Sequence[str], start: When, end: When,
             **options: Unpack[PlanOptions]) -> Plan:
        """See :meth:`AsyncWarehouse.plan`."""
        return self._call(self._core.plan(symbols, timeframes, start, end, **options))

    def backfill(self, symbols: str | Sequence[str], timeframes: str | Sequence[str], start: When, end: When,
                 **options: Unpack[BackfillOptions]) -> RunReport:
        """See :meth:`AsyncWarehouse.backfill`."""
        return self._call(self._core.backfill(symbols, timeframes, start, end, **options))

    def status(self) -> list[SeriesStatus]:
        """See :meth:`AsyncWarehouse.status`."""
        return self._call(self._core.status())

    def define_universe(self, name: str, **definition: Unpack[UniverseDefinition]) -> dict[str, object]:
        """See :meth:`AsyncWarehouse.define_universe`."""
        return self._call(self._core.define_universe(name, **definition))

    def universes(self) -> dict[str, dict[str, object]]:
        """See :meth:`AsyncWarehouse.universes`."""
        return self._call(self._core.universes())

    def universe_members(self, name: str, on: When | None = None) -> list[str]:
        """See :meth:`AsyncWarehouse.universe_members`."""
        return self._call(self._core.universe_members(name, on))

    def remove_universe(self, name: str) -> None:
        """See :meth:`AsyncWarehouse.remove_universe`."""
        self._call(self._core.remove_universe(name))

    def refresh_reference(self) -> None:
        """See :meth:`AsyncWarehouse.refresh_reference`."""
        self._call(self._core.refresh_reference())

    def backfill_universe(self, name: str, timeframes: str | Sequence[str], start: When, end: When,
                          **options: Unpack[BackfillOptions]) -> RunReport:
        """See :meth:`AsyncWarehouse.backfill_universe`."""
        return self._call(self._core.backfill_universe(name, timeframes, start, end, **options))

    def close(self) -> None:
        """Close the store and stop the loop thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._core.close())
        finally:
            self._stop()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str | None = None, **settings: Unpack[SettingsValues]) -> Warehouse:
    """Open the warehouse at ``url`` (``sqlite:///path.db`` or ``postgresql://...``).

    Keyword settings (``rate_limit``, ``polygon_api_key`` ...) override the environment for
    :meth:`Warehouse.backfill`.

    Raises:
        ConfigError: a setting is unknown (``rate_limt=``: the message is the one ``mdw.toml``
            gives for the same typo) or has a bad value.
        UsageError: the URL is not a store URL.
        StoreError: the database cannot be opened.
    """
    return Warehouse(url, **settings)

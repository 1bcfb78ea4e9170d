"""The simulator's flat files: one gzipped CSV per dataset and day, made from the same market as REST.

A file holds, sorted by ticker then time, every bar the aggregates endpoint serves for that day
(unadjusted, ``adjusted=false``) for each ticker of the market, with ``window_start`` in
nanoseconds and no ``vw``, as the vendor's files do. Files are generated when first asked for (a
listing with exact sizes asks too), kept in a byte-bounded LRU cache, and published on the data
clock at 11:00 ET on the next calendar day.

A *revision* replaces a day's files (all datasets of that day) as the vendor's later corrections
do: a new ETag, a later Last-Modified, and about one ticker in twenty with some minute bars'
volume and trade count raised (the day file's totals follow). REST answers keep the original bars.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv

from mdw.domain import AssetClass, BarBatch, Timeframe
from mdw.flatfiles.keys import (
    DATASETS,
    FileDataset,
    file_ticker,
    last_published_day,
    parse_key,
    published_at_ms,
)
from mdw.simulator.actions import DOMAIN_END, DOMAIN_START
from mdw.simulator.market import Market
from mdw.simulator.names import stable_hash

AGG_HEADER = b"ticker,volume,open,close,high,low,window_start,transactions\n"
INDEX_HEADER = b"ticker,open,close,high,low,window_start\n"
_NS = 1_000_000  # ms -> ns
_REVISED_SHARE = 20  # one ticker in this many is corrected by a revision
_EST_BYTES_PER_ROW = 22  # gzipped CSV, for estimated listing sizes


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a listing or HEAD says about one file."""

    key: str
    dataset: FileDataset
    day: date
    etag: str  # quoted, as S3 sends it
    last_modified_ms: int
    size: int
    revision: int


class FlatFiles:
    """The files of one simulated market: catalog, generation, cache, revisions and entitlements.

    Args:
        market: the ground truth; its universe and clock decide which tickers and days exist.
        dashed_pairs: spell crypto and forex pairs ``X:BTC-USD`` (the vendor's files) or ``X:BTCUSD``.
        cache_bytes: the generated files kept in memory (least recently used out).
        gzip_level: the files' compression level.
        list_sizes: ``exact`` generates a file to list its size; ``estimate`` lists a size from
            the expected row count (HEAD and GET are always exact).
    """

    def __init__(self, market: Market, *, dashed_pairs: bool = True, cache_bytes: int = 512 * 2**20,
                 gzip_level: int = 6, list_sizes: Literal["exact", "estimate"] = "exact") -> None:
        self.market = market
        self.dashed_pairs = dashed_pairs
        self.cache_bytes = cache_bytes
        self.gzip_level = gzip_level
        self.list_sizes = list_sizes
        self.revisions: dict[date, tuple[int, int]] = {}  # day -> (revision, replaced at ms)
        self.denied: set[str] = set()  # markets (us_stocks_sip ...) every key is refused
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self.generated = 0  # files generated (cache misses)

    # ------------------------------------------------------------------ catalog

    def datasets(self) -> list[FileDataset]:
        """The datasets whose market lists any ticker, in key order."""
        return [d for d in DATASETS if self._tickers(d.asset)]

    def _tickers(self, asset: AssetClass, day: date | None = None) -> list[str]:
        """The tickers of a file of ``day``: listed that day (OTC names are not on the SIP)."""
        return self.market.universe(asset, day, include_otc=False)

    def published(self, day: date) -> bool:
        return published_at_ms(day) <= self.market.now_ms

    def exists(self, ds: FileDataset, day: date) -> bool:
        """Whether ``day``'s file of ``ds`` will ever exist (published or not)."""
        return DOMAIN_START <= day < DOMAIN_END and ds.has_file(day) and bool(self._tickers(ds.asset))

    def revision(self, day: date) -> int:
        return self.revisions.get(day, (0, 0))[0]

    def etag(self, ds: FileDataset, day: date) -> str:
        """A quoted ETag that changes with the revision (and only then)."""
        sig = f"{self.market.seed}|{self.market.n_stocks}|{self.market.n_crypto}|{self.market.n_fx}|" \
              f"{ds.key(day)}|{self.revision(day)}|{self.dashed_pairs}"
        return '"' + hashlib.md5(sig.encode(), usedforsecurity=False).hexdigest() + '"'

    def last_modified_ms(self, day: date) -> int:
        return max(published_at_ms(day), self.revisions.get(day, (0, 0))[1])

    def info(self, ds: FileDataset, day: date, size: int | None = None) -> ObjectInfo:
        if size is None:
            size = self.cached_size(ds, day) or self.estimate_size(ds, day)
        return ObjectInfo(ds.key(day), ds, day, self.etag(ds, day), self.last_modified_ms(day), size,
                          self.revision(day))

    def estimate_size(self, ds: FileDataset, day: date) -> int:
        per_ticker = 1 if ds.timeframe.unit == "d" else 400
        return len(AGG_HEADER) + len(self._tickers(ds.asset, day)) * per_ticker * _EST_BYTES_PER_ROW

    def lookup(self, key: str) -> tuple[FileDataset, date] | None:
        """The dataset and day of a key that exists and is published, else None."""
        parsed = parse_key(key)
        if parsed is None or not self.exists(*parsed) or not self.published(parsed[1]):
            return None
        return parsed

    def unpublished(self, key: str) -> bool:
        """Whether ``key`` names a file that exists but is not published yet."""
        parsed = parse_key(key)
        return parsed is not None and self.exists(*parsed) and not self.published(parsed[1])

    def keys_after(self, prefix: str, after: str) -> Iterator[tuple[FileDataset, date]]:
        """Published files whose key starts with ``prefix`` and sorts after ``after``, in key order."""
        last = min(last_published_day(self.market.now_ms), DOMAIN_END - timedelta(days=1))
        for ds in self.datasets():
            head = ds.prefix + "/"
            if not (head.startswith(prefix) or prefix.startswith(head)):
                continue
            if after[: len(head)] > head:
                continue  # ``after`` sorts past every key of this dataset
            first = DOMAIN_START
            parsed = parse_key(after) if after.startswith(head) else None
            if parsed is not None:
                first = parsed[1]
            first, stop = _narrow(prefix[len(head):], first, last)
            for day in ds.days(first, stop):
                key = ds.key(day)
                if key > after and key.startswith(prefix):
                    yield ds, day

    # ------------------------------------------------------------------ content

    def bars(self, ds: FileDataset, day: date) -> dict[str, BarBatch]:
        """The bars ``day``'s file of ``ds`` holds, per ticker (ground truth; ``vw`` as REST has it)."""
        rng = ds.day_range(day)
        out: dict[str, BarBatch] = {}
        revision = self.revision(day)
        tickers = sorted(self._tickers(ds.asset, day))
        revised = self._revised(tickers, day, revision)
        for ticker in tickers:
            batch = self.market.aggregates(ticker, ds.timeframe, rng.start_ms, rng.end_ms)
            if ticker in revised and len(batch):
                batch = self._revise(ds, day, ticker, batch, revision)
            if len(batch):
                out[ticker] = batch
        return out

    def _revised(self, tickers: list[str], day: date, revision: int) -> set[str]:
        """The tickers a revision corrects: one in twenty (at least one), picked by a seeded hash."""
        if not revision:
            return set()
        ranked = sorted(tickers, key=lambda t: stable_hash("revised", self.market.seed, t, day, revision))
        return set(ranked[: max(1, len(tickers) // _REVISED_SHARE)])

    def _revise(self, ds: FileDataset, day: date, ticker: str, batch: BarBatch, revision: int) -> BarBatch:
        step = 1.0 if ds.asset is AssetClass.FOREX else 0.5 if ds.asset is AssetClass.CRYPTO else 100.0
        if ds.timeframe.unit == "d":
            rng = ds.day_range(day)
            minutes = self.market.aggregates(ticker, Timeframe(1, "m"), rng.start_ms, rng.end_ms)
            hits = int(_revised_rows(len(minutes), revision).sum())
            mask = np.ones(len(batch), dtype=bool)
        else:
            mask = _revised_rows(len(batch), revision)
            hits = 1
        cols = batch.columns()
        if np.isnan(cols["v"]).all():  # no volume (indices): nothing a correction could change
            return batch
        cols = {k: v.copy() for k, v in cols.items()}
        cols["v"][mask] += step * hits
        cols["n"][mask] += hits
        return BarBatch.from_columns(batch.ticker, batch.timeframe, cols, batch.source)

    def render(self, ds: FileDataset, day: date) -> bytes:
        """The gzipped CSV of ``day``'s file (CPU-heavy: call it off the event loop)."""
        per_ticker = self.bars(ds, day)
        has_volume = ds.asset is not AssetClass.INDICES
        buf = io.BytesIO()
        buf.write(AGG_HEADER if has_volume else INDEX_HEADER)
        if per_ticker:
            names = [file_ticker(t, self.dashed_pairs) for t in per_ticker]
            batches = list(per_ticker.values())
            counts = np.fromiter((len(b) for b in batches), dtype=np.int64, count=len(batches))
            index = np.repeat(np.arange(len(batches), dtype=np.int32), counts)
            ticker = pa.DictionaryArray.from_arrays(pa.array(index), pa.array(names)).cast(pa.string())

            def col(name: str) -> np.ndarray:
                return np.concatenate([getattr(b, name) for b in batches])

            fields = {"ticker": ticker}
            if has_volume:
                fields["volume"] = pa.array(col("v"))
            fields |= {"open": pa.array(col("o")), "close": pa.array(col("c")), "high": pa.array(col("h")),
                       "low": pa.array(col("l")), "window_start": pa.array(col("t") * _NS)}
            if has_volume:
                fields["transactions"] = pa.array(col("n"))
            pcsv.write_csv(pa.table(fields), buf,
                           pcsv.WriteOptions(include_header=False, quoting_style="none"))
        packer = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)  # 31: a gzip container
        return packer.compress(buf.getbuffer()) + packer.flush()

    async def body(self, ds: FileDataset, day: date) -> bytes:
        """The file's bytes, from the cache or generated in a worker thread (once per key)."""
        key = ds.key(day) + f"#{self.revision(day)}"
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            data = await asyncio.to_thread(self.render, ds, day)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(data)
        self.generated += 1
        self._remember(key, data)
        return data

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        self._cache[key] = data
        self._cached += len(data)
        while self._cached > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)

    def cached_size(self, ds: FileDataset, day: date) -> int | None:
        data = self._cache.get(ds.key(day) + f"#{self.revision(day)}")
        return None if data is None else len(data)

    async def listed_info(self, ds: FileDataset, day: date) -> ObjectInfo:
        """A listing's entry: the exact size (generating the file) unless sizes are estimated."""
        size = self.cached_size(ds, day)
        if size is None:
            exact = self.list_sizes == "exact"
            size = len(await self.body(ds, day)) if exact else self.estimate_size(ds, day)
        return self.info(ds, day, size)

    async def head_info(self, ds: FileDataset, day: date) -> ObjectInfo:
        return self.info(ds, day, len(await self.body(ds, day)))

    # ------------------------------------------------------------------ switches

    def replace(self, days: list[date]) -> None:
        """Publish a new revision of every file of ``days`` (new ETag, later Last-Modified, changed bars)."""
        now = self.market.now_ms
        for day in days:
            rev, _ = self.revisions.get(day, (0, 0))
            self.revisions[day] = (rev + 1, now)

    def deny(self, markets: list[str]) -> None:
        """Refuse (403) GET and HEAD of these markets' files (``us_stocks_sip`` ...) to every key."""
        self.denied = set(markets)

    def allowed(self, ds: FileDataset) -> bool:
        return ds.market not in self.denied


def _revised_rows(n: int, revision: int) -> npt.NDArray[np.bool_]:
    """Which of ``n`` minute bars a revision corrects: every seventh, offset by the revision."""
    return np.asarray(np.arange(n) % 7 == revision % 7, dtype=np.bool_)


def _narrow(rest: str, first: date, last: date) -> tuple[date, date]:
    """Clip the day range to a ``YYYY/`` or ``YYYY/MM/`` prefix remainder, when there is one."""
    parts = rest.split("/")
    try:
        if len(parts) >= 1 and len(parts[0]) == 4:
            year = int(parts[0])
            lo, hi = date(year, 1, 1), date(year, 12, 31)
            if len(parts) >= 2 and len(parts[1]) == 2:
                month = int(parts[1])
                lo = date(year, month, 1)
                hi = (lo + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            return max(first, lo), min(last, hi)
    except ValueError:
        return first, first - timedelta(days=1)
    return first, last

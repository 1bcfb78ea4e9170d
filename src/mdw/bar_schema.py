"""The one schema of bars leaving mdw, and its encoders: Arrow, Parquet, CSV, JSON lines, JSON rows.

Every interface (``mdw export``, ``GET /v1/bars``, ``wh.bars``/``wh.bars_arrow``) encodes bars
here, so a column means the same thing everywhere:

* ``timestamp``: the start of the bar's window, UTC (Arrow ``timestamp[ms, tz=UTC]``; ISO 8601
  with ``Z`` in CSV and JSON);
* ``date``: for daily and longer bars only, the session date in the market's own zone (New York
  for US stocks, options and indices, UTC for crypto and forex), so a stock's daily bar is dated
  by its session and not by 04:00/05:00 UTC;
* ``open, high, low, close, volume, vwap, trades`` (``volume``, ``vwap`` and ``trades`` null where
  the vendor has none);
* ``otc``: the vendor's per-bar OTC flag as it was sent (``true`` on OTC names' bars), null where the
  bar carried none (listed names, flat files, bars stored before mdw kept the flag).

``names="vendor"`` keeps the vendor's short names (``t, o, h, l, c, v, vw, n, otc``) for code written
against the vendor's API; in CSV and JSON its ``t`` is then epoch milliseconds, as the vendor sends
it. Adjusted prices and volumes are rounded to the instrument's precision (:data:`ADJUSTED_DECIMALS`)
so that a division by a split ratio never prints float noise such as ``1948.6961779999997``;
raw bars are passed through exactly as the vendor sent them. Arrow and Parquet carry the series,
the adjustment and its as-of date in their schema metadata (``mdw.*`` keys).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import numpy.typing as npt

from mdw.domain import DAY_MS, AssetClass, BarBatch, Timeframe, from_ms, n_values, otc_values, parse_ticker
from mdw.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

NAMINGS = ("long", "vendor")
LONG_NAMES = {"t": "timestamp", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume",
              "vw": "vwap", "n": "trades", "otc": "otc"}
# Decimals of adjusted prices and volumes. The vendor quotes US stocks to at most 4 decimals; two
# more keep a split of up to 1:100 exact and leave any other ratio within a millionth.
ADJUSTED_DECIMALS = {AssetClass.STOCKS: 6, AssetClass.OPTIONS: 6, AssetClass.INDICES: 6,
                     AssetClass.CRYPTO: 10, AssetClass.FOREX: 10}
_PRICES = ("o", "h", "l", "c", "vw")


def check_names(value: str) -> str:
    """The naming asked for (``long`` or ``vendor``).

    Raises:
        UsageError: anything else.
    """
    if value not in NAMINGS:
        raise UsageError(f"invalid names {value!r}; expected long (open, high ...) or vendor (o, h ...)")
    return value


def otc_array(otc: npt.NDArray[np.int8]) -> pa.Array:
    """The per-bar OTC flags as an Arrow boolean array, null where a bar has none."""
    import pyarrow as pa

    missing = otc < 0  # MISSING_OTC
    if missing.all():
        return pa.nulls(len(otc), pa.bool_())
    return pa.array(otc > 0, pa.bool_(), mask=missing if missing.any() else None)


def session_dates(ticker: str, t: npt.NDArray[np.int64]) -> list[date]:
    """The market-local date each bar starts on (daily and longer bars start at local midnight)."""
    tz = _asset(ticker).tz
    return [from_ms(ms).astimezone(tz).date() for ms in t.tolist()]


def _asset(ticker: str) -> AssetClass:
    try:
        return parse_ticker(ticker).asset_class
    except UsageError:
        return AssetClass.STOCKS


def round_adjusted(batch: BarBatch) -> BarBatch:
    """Prices and volume rounded to the instrument's precision (for adjusted bars only)."""
    decimals = ADJUSTED_DECIMALS[_asset(batch.ticker)]
    cols = batch.columns()
    rounded = {name: np.round(cols[name], decimals) for name in (*_PRICES, "v")}
    return BarBatch.from_columns(batch.ticker, batch.timeframe, {**cols, **rounded}, batch.source)


@dataclass(frozen=True, slots=True)
class BarSchema:
    """How one answer's bars are encoded: its columns, their names and the answer's metadata.

    Args:
        ticker: the series' ticker (several, comma-separated, for a multi-ticker export).
        timeframe: the bars' timeframe; daily and longer ones get a ``date`` column.
        adjust: ``none``, ``splits`` or ``all``; adjusted values are rounded.
        as_of: the market-local day the adjustment is as of (actions dated later are not applied).
        names: ``long`` (default) or ``vendor``.
        series_columns: lead with ``ticker`` and ``timeframe`` (a file holding several series).
        extra: more schema metadata (``mdw.coverage`` ...), as text.
    """

    ticker: str
    timeframe: Timeframe
    adjust: str = "none"
    as_of: date | None = None
    names: str = "long"
    series_columns: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def dated(self) -> bool:
        return not self.timeframe.intraday

    def name(self, short: str) -> str:
        return short if self.names == "vendor" else LONG_NAMES[short]

    @property
    def columns(self) -> list[str]:
        """The column names in order."""
        head = ["ticker", "timeframe"] if self.series_columns else []
        bars = [self.name("t"), *(["date"] if self.dated else []),
                *(self.name(s) for s in ("o", "h", "l", "c", "v", "vw", "n", "otc"))]
        return head + bars

    def metadata(self) -> dict[str, str]:
        """The schema metadata: ticker, timeframe, adjustment, as-of, names (and ``extra``)."""
        meta = {"mdw.ticker": self.ticker, "mdw.timeframe": str(self.timeframe),
                "mdw.adjustment": self.adjust, "mdw.as_of": self.as_of.isoformat() if self.as_of else "",
                "mdw.names": self.names}
        meta.update(self.extra)
        return meta

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        types: list[pa.DataType] = []
        if self.series_columns:
            types += [pa.string(), pa.string()]
        types.append(pa.timestamp("ms", tz="UTC"))
        if self.dated:
            types.append(pa.date32())
        types += [pa.float64()] * 6 + [pa.int64(), pa.bool_()]
        return pa.schema(list(zip(self.columns, types, strict=True)), metadata=self.metadata())

    def prepare(self, batch: BarBatch) -> BarBatch:
        """The batch as it is encoded: rounded when the answer is adjusted."""
        return round_adjusted(batch) if self.adjust != "none" and len(batch) else batch

    def record_batch(self, batch: BarBatch) -> pa.RecordBatch:
        """One record batch of :meth:`arrow_schema` (NaN volume/vwap as nulls)."""
        import pyarrow as pa

        return pa.RecordBatch.from_arrays(self._arrays(self.prepare(batch), text=False),
                                          schema=self.arrow_schema())

    def _arrays(self, b: BarBatch, *, text: bool) -> list[pa.Array]:
        """The columns as Arrow arrays; ``text``: the timestamp and date as CSV writes them."""
        import pyarrow as pa

        size = len(b)
        arrays: list[pa.Array] = []
        if self.series_columns:
            arrays += [pa.array([b.ticker] * size, pa.string()),
                       pa.array([str(b.timeframe)] * size, pa.string())]
        if not text:
            arrays.append(pa.array(b.t, pa.timestamp("ms", tz="UTC")))
        elif self.names == "vendor":
            arrays.append(pa.array(b.t, pa.int64()))
        else:
            arrays.append(pa.array(iso_stamps(b.t), pa.string()))
        if self.dated:
            arrays.append(pa.array(session_dates(b.ticker, b.t), pa.date32()))
        for short in ("o", "h", "l", "c", "v", "vw"):
            col = getattr(b, short)
            mask = np.isnan(col)
            arrays.append(pa.array(col, mask=mask) if mask.any() else pa.array(col))
        missing = b.n < 0  # MISSING_N: null, never a count
        arrays.append(pa.array(b.n, pa.int64(), mask=missing) if missing.any() else pa.array(b.n, pa.int64()))
        arrays.append(otc_array(b.otc))
        return arrays

    def table(self, batches: Iterable[BarBatch]) -> pa.Table:
        """The bars as one ``pyarrow.Table`` with the schema's metadata (empty: the schema alone)."""
        import pyarrow as pa

        parts = [self.record_batch(b) for b in batches if len(b)]
        return pa.Table.from_batches(parts, schema=self.arrow_schema())

    # -- text ---------------------------------------------------------------------------------

    def csv_header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()

    def csv(self, batch: BarBatch) -> bytes:
        """CSV rows (no header); empty fields where volume or vwap is missing."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if not len(batch):
            return b""
        table = pa.Table.from_arrays(self._arrays(self.prepare(batch), text=True), names=self.columns)
        sink = pa.BufferOutputStream()
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        pacsv.write_csv(table, sink, write_options=options)
        return bytes(sink.getvalue().to_pybytes())

    def rows(self, batch: BarBatch) -> list[msgspec.Struct]:
        """The bars as structs with the schema's field names, for msgspec (NaN is written as null)."""
        b = self.prepare(batch)
        size = len(b)
        cols: list[Sequence[object]] = []
        if self.series_columns:
            cols += [[b.ticker] * size, [str(b.timeframe)] * size]
        cols.append(b.t.tolist() if self.names == "vendor" else iso_stamps(b.t))
        if self.dated:
            cols.append([d.isoformat() for d in session_dates(b.ticker, b.t)])
        cols += [getattr(b, short).tolist() for short in ("o", "h", "l", "c", "v", "vw")]
        cols.append(n_values(b.n))  # a missing n is null
        cols.append(otc_values(b.otc))  # no flag is null
        row = _row_type(tuple(self.columns))
        return [row(*values) for values in zip(*cols, strict=True)]

    def jsonl(self, batch: BarBatch) -> bytes:
        """JSON lines, one bar a line (null where volume or vwap is missing)."""
        return _JSON.encode_lines(self.rows(batch))


_JSON = msgspec.json.Encoder()
_SECONDS_OF_DAY: list[str] = []


@functools.lru_cache(maxsize=16)
def _row_type(names: tuple[str, ...]) -> type[msgspec.Struct]:
    """A msgspec struct per column list (encoding structs is twice as fast as encoding dicts).

    ``gc=False``: a row holds only strings and numbers, so it can never be part of a cycle, and
    untracked rows keep a JSON page from triggering full collections of the server's heap (with
    tracked rows a 1,440-row page cost 35 ms in the service, untracked 1 ms).
    """
    return msgspec.defstruct("BarRow", list(names), gc=False)


def iso_stamps(t: npt.NDArray[np.int64]) -> list[str]:
    """``2024-03-04T14:30:00Z`` per epoch-ms start (to the second: bars start on whole seconds).

    Built from a table of the day's 86,400 clock times and one date string per distinct day, so a
    million minute bars cost two list lookups and one concatenation each.
    """
    if not _SECONDS_OF_DAY:
        _SECONDS_OF_DAY.extend(f"T{h:02d}:{m:02d}:{s:02d}Z"
                               for h in range(24) for m in range(60) for s in range(60))
    days = t // DAY_MS
    secs = (t - days * DAY_MS) // 1000
    text = {int(d): from_ms(int(d) * DAY_MS).date().isoformat() for d in np.unique(days)}
    clock = _SECONDS_OF_DAY
    return [text[d] + clock[x] for d, x in zip(days.tolist(), secs.tolist(), strict=True)]


__all__ = ["ADJUSTED_DECIMALS", "LONG_NAMES", "NAMINGS", "BarSchema", "check_names", "iso_stamps",
           "round_adjusted", "session_dates"]

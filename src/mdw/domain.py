"""The shared vocabulary: tickers, timeframes, time ranges, bar batches and corporate actions.

Times are UTC epoch milliseconds everywhere inside mdw. Ranges are half-open ``[start, end)``.
A bar's ``t`` is the start of its window, as the vendor defines it. This module does no I/O.
The epoch-ms helpers and the range algebra live in :mod:`mdw.ranges` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from mdw.errors import UsageError, ValidationError
from mdw.ranges import RangeSet as RangeSet
from mdw.ranges import TimeRange as TimeRange
from mdw.ranges import day_range_ms as day_range_ms
from mdw.ranges import from_ms as from_ms
from mdw.ranges import local_midnight_ms as local_midnight_ms
from mdw.ranges import parse_when as parse_when
from mdw.ranges import to_ms as to_ms

NEW_YORK = ZoneInfo("America/New_York")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


# --------------------------------------------------------------------------------------------
# Tickers


class AssetClass(StrEnum):
    """The vendor's markets; each has its own calendar and time zone for daily bars."""

    STOCKS = "stocks"
    CRYPTO = "crypto"
    FOREX = "forex"
    INDICES = "indices"
    OPTIONS = "options"

    @property
    def tz(self) -> ZoneInfo:
        """Daily bars start at midnight in this zone (ET for US markets, UTC for crypto/fx)."""
        return ZoneInfo("UTC") if self in (AssetClass.CRYPTO, AssetClass.FOREX) else NEW_YORK


_PREFIX = {"X:": AssetClass.CRYPTO, "C:": AssetClass.FOREX, "I:": AssetClass.INDICES,
           "O:": AssetClass.OPTIONS}
# Stock tickers keep the vendor's case: preferred shares are mixed case (``KIMpL`` is not ``KIMPL``).
_STOCK_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}(\.[A-Za-z0-9]{1,4})?$")
_CLASS_SHARE_RE = re.compile(r"^([A-Z]{1,6})[-/]([A-Z])$")  # BRK-B, BRK/B: the vendor writes BRK.B
_PAIR_RE = re.compile(r"^[A-Z0-9]{5,14}$")
_PAIR_SPLIT_RE = re.compile(r"^([A-Z0-9]{2,8})[-/]([A-Z]{3,5})$")
_INDEX_RE = re.compile(r"^[A-Z0-9.\-]{1,20}$")
_OPTION_RE = re.compile(r"^[A-Z.]{1,6}\d{6}[CP]\d{8}$")
TICKER_FORMS = (
    "a stock like AAPL or BRK.B, or a vendor ticker X:BTCUSD, C:EURUSD, I:SPX or O:<OCC symbol>; "
    "BTC-USD (crypto), EUR/USD (forex) and BRK-B (a share class) are also accepted; tickers are "
    "case-sensitive, as the vendor's (KIMpL and KIMPL are two securities)"
)


@dataclass(frozen=True, slots=True)
class Ticker:
    """A ticker in the vendor's own spelling, with the asset class it implies."""

    symbol: str
    asset_class: AssetClass

    def __str__(self) -> str:
        return self.symbol


def parse_ticker(text: str, asset: AssetClass | str | None = None) -> Ticker:
    """Parse user or vendor input into a vendor ticker, keeping its case.

    The vendor's tickers are case-sensitive (``KIMpL``, a preferred share, and ``KIMPL`` are two
    securities), so a ticker is never upper-cased: a stock ticker is kept as written, and whether
    the vendor knows it is for its reference data to say (see :mod:`mdw.backfill.tickers`).
    Prefixed and pair forms must be written as the vendor writes them; a lower-case one is
    refused with the vendor's spelling.

    Args:
        text: ``AAPL``, ``BRK.B``, ``KIMpL``, ``X:BTCUSD``, ``C:EURUSD``, ``I:SPX``, ``O:...``, or
            the friendly forms ``BTC-USD`` / ``EUR/USD`` / ``BTCUSD`` (with ``asset``) and
            ``BRK-B`` / ``BRK/B`` (mapped to the vendor's ``BRK.B``).
        asset: the asset class to assume for an unprefixed pair such as ``BTCUSD``.

    Raises:
        UsageError: the text is not a ticker; the message lists the accepted forms.
    """
    try:
        return _parse_ticker(text.strip(), _asset_hint(asset))
    except UsageError:
        upper = text.strip().upper()
        if upper == text.strip():
            raise
        try:
            hint = _parse_ticker(upper, _asset_hint(asset)).symbol
        except UsageError:
            raise UsageError(f"invalid ticker {text.strip()!r}; expected {TICKER_FORMS}") from None
        raise UsageError(f"invalid ticker {text.strip()!r}: the vendor's tickers are case-sensitive;"
                         f" did you mean {hint}?") from None


def _parse_ticker(raw: str, hint: AssetClass | None) -> Ticker:
    text = raw
    if not raw:
        raise UsageError(f"empty ticker; expected {TICKER_FORMS}")
    prefix = raw[:2]
    if prefix in _PREFIX:
        cls = _PREFIX[prefix]
        body = raw[2:]
        ok = {
            AssetClass.CRYPTO: _PAIR_RE.fullmatch(body),
            AssetClass.FOREX: _PAIR_RE.fullmatch(body),
            AssetClass.INDICES: _INDEX_RE.fullmatch(body),
            AssetClass.OPTIONS: _OPTION_RE.fullmatch(body),
        }.get(cls)
        if not ok:
            raise UsageError(f"invalid {cls.value} ticker {text.strip()!r}; expected {TICKER_FORMS}")
        return Ticker(raw, cls)
    # The friendly pair forms name currency codes, which the vendor writes in capitals.
    pair = _PAIR_SPLIT_RE.fullmatch(raw.upper()) if "-" in raw or "/" in raw else None
    if pair:
        cls = hint or (AssetClass.FOREX if "/" in raw else AssetClass.CRYPTO)
        if cls not in (AssetClass.CRYPTO, AssetClass.FOREX):
            raise UsageError(f"{text.strip()!r} is a currency pair, not a {cls.value} ticker")
        return Ticker(("X:" if cls is AssetClass.CRYPTO else "C:") + pair[1] + pair[2], cls)
    if hint in (AssetClass.CRYPTO, AssetClass.FOREX) and _PAIR_RE.fullmatch(raw):
        return Ticker(("X:" if hint is AssetClass.CRYPTO else "C:") + raw, hint)
    if hint is AssetClass.INDICES and _INDEX_RE.fullmatch(raw):
        return Ticker("I:" + raw, AssetClass.INDICES)
    if hint is AssetClass.OPTIONS and _OPTION_RE.fullmatch(raw):
        return Ticker("O:" + raw, AssetClass.OPTIONS)
    share = _CLASS_SHARE_RE.fullmatch(raw)
    if share and hint in (None, AssetClass.STOCKS):
        return Ticker(f"{share[1]}.{share[2]}", AssetClass.STOCKS)
    if _STOCK_RE.fullmatch(raw) and hint in (None, AssetClass.STOCKS):
        return Ticker(raw, AssetClass.STOCKS)
    raise UsageError(f"invalid ticker {text.strip()!r}; expected {TICKER_FORMS}")


def _asset_hint(asset: AssetClass | str | None) -> AssetClass | None:
    if asset is None or isinstance(asset, AssetClass):
        return asset
    try:
        return AssetClass(asset.strip().lower())
    except ValueError:
        accepted = ", ".join(a.value for a in AssetClass)
        raise UsageError(f"invalid asset class {asset!r}; expected one of {accepted}") from None


def parse_tickers(text: str | Sequence[str], asset: AssetClass | str | None = None) -> list[Ticker]:
    """Parse a comma-separated list (or a sequence) of tickers, dropping duplicates in order."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out: dict[str, Ticker] = {}
    for part in parts:
        if part.strip():
            tk = parse_ticker(part, asset)
            out.setdefault(tk.symbol, tk)
    if not out:
        raise UsageError(f"no tickers given; expected {TICKER_FORMS}")
    return list(out.values())


# --------------------------------------------------------------------------------------------
# Timeframes

_UNITS: dict[str, tuple[str, int | None]] = {
    # unit -> (vendor timespan, fixed length in ms or None for calendar units)
    "s": ("second", 1_000),
    "m": ("minute", MINUTE_MS),
    "h": ("hour", HOUR_MS),
    "d": ("day", DAY_MS),
    "w": ("week", 7 * DAY_MS),
    "mo": ("month", None),
    "q": ("quarter", None),
    "y": ("year", None),
}
_TIMESPAN_UNIT = {span: unit for unit, (span, _) in _UNITS.items()}
_TF_RE = re.compile(r"^(\d{1,5})(s|m|h|d|w|mo|q|y)$")
TIMEFRAME_FORMS = "<n><unit> with unit one of s m h d w mo q y, e.g. 1m, 5m, 1h, 4h, 1d, 1w"


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar size: ``multiplier`` x ``unit``, written ``5m``, ``4h``, ``1d``."""

    multiplier: int
    unit: str

    UNITS: ClassVar[tuple[str, ...]] = tuple(_UNITS)

    def __post_init__(self) -> None:
        if self.unit not in _UNITS or not 1 <= self.multiplier <= 99_999:
            raise UsageError(f"invalid timeframe {self.multiplier}{self.unit}; expected {TIMEFRAME_FORMS}")

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Parse ``<n><unit>``.

        Raises:
            UsageError: the text is not a timeframe; the message gives the accepted form.
        """
        m = _TF_RE.fullmatch(text.strip().lower())
        if not m or int(m[1]) == 0:
            raise UsageError(f"invalid timeframe {text.strip()!r}; expected {TIMEFRAME_FORMS}")
        return cls(int(m[1]), m[2])

    @classmethod
    def from_vendor(cls, multiplier: int, timespan: str) -> Timeframe:
        """Map the vendor's (multiplier, timespan) back to a timeframe."""
        if timespan not in _TIMESPAN_UNIT:
            accepted = ", ".join(_TIMESPAN_UNIT)
            raise UsageError(f"unknown vendor timespan {timespan!r}; expected one of {accepted}")
        return cls(int(multiplier), _TIMESPAN_UNIT[timespan])

    @property
    def timespan(self) -> str:
        """The vendor's timespan word (``minute``, ``hour``, ``day`` ...)."""
        return _UNITS[self.unit][0]

    @property
    def base(self) -> str:
        """The base aggregate the vendor builds this timeframe from: ``minute`` or ``day``."""
        return "minute" if self.unit in ("s", "m", "h") else "day"

    @property
    def intraday(self) -> bool:
        return self.unit in ("s", "m", "h")

    @property
    def fixed_ms(self) -> int | None:
        """Window length in ms for fixed-length units (s, m, h, d, w), else None."""
        unit_ms = _UNITS[self.unit][1]
        return None if unit_ms is None else unit_ms * self.multiplier

    @property
    def unit_ms(self) -> int | None:
        return _UNITS[self.unit][1]

    def __str__(self) -> str:
        return f"{self.multiplier}{self.unit}"

    def sort_key(self) -> tuple[int, int]:
        order = list(_UNITS)
        return (order.index(self.unit), self.multiplier)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One stored series: a ticker at a timeframe. The key of coverage, plans and run reports.

    ``str(key)`` (``"AAPL 1h"``) is for people (reports, logs); code keeps the typed pair and never
    parses that text back.
    """

    ticker: str
    timeframe: Timeframe

    @classmethod
    def of(cls, ticker: str, timeframe: str | Timeframe) -> SeriesKey:
        """The key of a stored row, whose timeframe the database holds as text (``"1h"``).

        Raises:
            UsageError: ``timeframe`` is not a timeframe.
        """
        return cls(ticker, timeframe if isinstance(timeframe, Timeframe) else _parse_timeframe(timeframe))

    def __str__(self) -> str:
        return f"{self.ticker} {self.timeframe}"

    def sort_key(self) -> tuple[str, tuple[int, int]]:
        """Ticker, then timeframe from the finest to the coarsest."""
        return (self.ticker, self.timeframe.sort_key())

    def __lt__(self, other: SeriesKey) -> bool:
        return self.sort_key() < other.sort_key()


@functools.lru_cache(maxsize=1024)
def _parse_timeframe(text: str) -> Timeframe:
    # Stored rows repeat a handful of timeframes thousands of times: parse each spelling once.
    return Timeframe.parse(text)


def parse_timeframes(text: str | Sequence[str]) -> list[Timeframe]:
    """Parse a comma-separated list of timeframes, dropping duplicates in order."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out: dict[Timeframe, None] = {}
    for part in parts:
        if part.strip():
            out.setdefault(Timeframe.parse(part), None)
    if not out:
        raise UsageError(f"no timeframes given; expected {TIMEFRAME_FORMS}")
    return list(out)


# --------------------------------------------------------------------------------------------
# Bars

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
BAR_COLUMNS = ("t", "o", "h", "l", "c", "v", "vw", "n", "otc")
# ``n`` (the trade count) where the vendor left it out: stored as NULL and read back as this. A real
# count is never negative (the vendor client refuses one), so the value cannot be mistaken for data.
MISSING_N = -1
# ``otc`` per bar: the vendor's flag as it was sent. 1 (``"otc": true``), 0 (``"otc": false``) or
# MISSING_OTC where the bar carried no flag (stored as NULL). The vendor writes it on OTC names only.
MISSING_OTC = -1
_NO_OTC = np.empty(0, dtype=np.int8)


@dataclass(frozen=True, slots=True)
class BarProblem:
    """One invalid row of a batch, with the reason."""

    row: int
    t: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} (t={from_ms(self.t).isoformat()}): {self.reason}"


def reasons_by_row(problems: Sequence[BarProblem]) -> dict[int, str]:
    """Each invalid row's reasons joined with "; " (a bar may break several invariants)."""
    why: dict[int, list[str]] = {}
    for p in problems:
        why.setdefault(p.row, []).append(p.reason)
    return {row: "; ".join(reasons) for row, reasons in why.items()}


# What selects rows of a batch: a slice, a boolean mask or an array of row indexes.
RowSelector = slice | npt.NDArray[np.bool_] | npt.NDArray[np.int64] | npt.NDArray[np.intp]


def _f64(values: npt.ArrayLike) -> F64:
    return np.ascontiguousarray(values, dtype=np.float64)


def _i64(values: npt.ArrayLike) -> I64:
    return np.ascontiguousarray(values, dtype=np.int64)


def n_values(n: I64) -> list[int | None]:
    """``n`` as Python ints with None where it is missing (what drivers store as NULL)."""
    values: list[int | None] = n.tolist()
    if bool((n < 0).any()):
        values = [None if x is not None and x < 0 else x for x in values]
    return values


def otc_values(otc: I8) -> list[bool | None]:
    """``otc`` as Python booleans with None where the vendor sent no flag (what drivers store as NULL)."""
    if not bool((otc >= 0).any()):
        return [None] * len(otc)
    return [None if x < 0 else bool(x) for x in otc.tolist()]


def otc_from_float(otc: npt.NDArray[np.float64]) -> I8:
    """Flags read as floats (NULL as NaN) back to int8, NaN as :data:`MISSING_OTC`."""
    return np.where(np.isnan(otc), MISSING_OTC, otc).astype(np.int8)


def _i8(values: npt.ArrayLike) -> I8:
    return np.ascontiguousarray(values, dtype=np.int8)


def n_from_float(n: npt.NDArray[np.float64]) -> I64:
    """Counts read as floats (NULL as NaN) back to int64, NaN as :data:`MISSING_N`."""
    return np.where(np.isnan(n), MISSING_N, n).astype(np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class BarBatch:
    """Bars of one ticker and timeframe, as columns (no per-bar Python objects).

    ``v`` and ``vw`` are NaN where the vendor omits them (index bars); ``n`` is :data:`MISSING_N`
    where it is omitted (stored as NULL, never as 0). ``otc`` is the vendor's per-bar OTC flag
    (int8: 1, 0, or :data:`MISSING_OTC` where the bar had none); left out, every bar has none.
    """

    ticker: str
    timeframe: Timeframe
    t: I64
    o: F64
    h: F64
    l: F64  # noqa: E741 - the vendor's field name
    c: F64
    v: F64
    vw: F64
    n: I64
    source: str = field(default="rest")
    otc: I8 = field(default_factory=lambda: _NO_OTC)  # the marker for "no flag on any bar"

    def __post_init__(self) -> None:
        size = len(self.t)
        for name in BAR_COLUMNS:
            arr = getattr(self, name)
            conv: F64 | I64 | I8
            if name == "otc":
                conv = np.full(size, MISSING_OTC, dtype=np.int8) if arr is _NO_OTC else _i8(arr)
            else:
                conv = _i64(arr) if name in ("t", "n") else _f64(arr)
            object.__setattr__(self, name, conv)
        if any(len(getattr(self, name)) != size for name in BAR_COLUMNS):
            raise ValidationError(f"{self.ticker} {self.timeframe}: columns differ in length")

    @classmethod
    def empty(cls, ticker: str, timeframe: Timeframe, source: str = "rest") -> BarBatch:
        f = np.empty(0, dtype=np.float64)
        i = np.empty(0, dtype=np.int64)
        return cls(ticker, timeframe, i, f, f, f, f, f, f, i, source)

    @classmethod
    def from_columns(
        cls, ticker: str, timeframe: Timeframe, cols: Mapping[str, npt.ArrayLike], source: str = "rest"
    ) -> BarBatch:
        """A batch from columns named as :data:`BAR_COLUMNS` (converted to int64, float64 and int8;
        without ``otc``, no bar has a flag)."""
        f, i = _f64, _i64
        otc = cols.get("otc")
        return cls(ticker, timeframe, t=i(cols["t"]), o=f(cols["o"]), h=f(cols["h"]), l=f(cols["l"]),
                   c=f(cols["c"]), v=f(cols["v"]), vw=f(cols["vw"]), n=i(cols["n"]), source=source,
                   otc=_NO_OTC if otc is None else _i8(otc))

    @classmethod
    def concat(cls, batches: Sequence[BarBatch]) -> BarBatch:
        """Join batches of the same series in the given order."""
        if not batches:
            raise UsageError("concat needs at least one batch")
        first = batches[0]
        if len(batches) == 1:
            return first
        cols = {name: np.concatenate([getattr(b, name) for b in batches]) for name in BAR_COLUMNS}
        return cls.from_columns(first.ticker, first.timeframe, cols, first.source)

    def __len__(self) -> int:
        return len(self.t)

    def columns(self) -> dict[str, F64 | I64 | I8]:
        return {name: getattr(self, name) for name in BAR_COLUMNS}

    def take(self, index: RowSelector) -> BarBatch:
        """Rows selected by a slice, a boolean mask or an index array."""
        cols = {name: getattr(self, name)[index] for name in BAR_COLUMNS}
        return BarBatch.from_columns(self.ticker, self.timeframe, cols, self.source)

    def between(self, start_ms: int, end_ms: int) -> BarBatch:
        """Rows with ``start_ms <= t < end_ms`` (the batch must be sorted)."""
        lo = int(np.searchsorted(self.t, start_ms, side="left"))
        hi = int(np.searchsorted(self.t, end_ms, side="left"))
        return self.take(slice(lo, hi))

    def sorted(self) -> BarBatch:
        order = np.argsort(self.t, kind="stable")
        return self.take(order)

    def with_source(self, source: str) -> BarBatch:
        return BarBatch.from_columns(self.ticker, self.timeframe, self.columns(), source)

    def rows(self) -> Iterator[tuple[int, float, float, float, float, float | None, float | None, int]]:
        """Plain tuples (t, o, h, l, c, v, vw, n) with None for missing values, for drivers."""
        v = [None if math.isnan(x) else x for x in self.v.tolist()]
        vw = [None if math.isnan(x) else x for x in self.vw.tolist()]
        n = n_values(self.n)
        return zip(self.t.tolist(), self.o.tolist(), self.h.tolist(), self.l.tolist(),
                   self.c.tolist(), v, vw, n, strict=True)

    def equals(self, other: BarBatch) -> bool:
        """Exact equality of ticker, timeframe and every column (NaN equals NaN)."""
        return (
            self.ticker == other.ticker
            and self.timeframe == other.timeframe
            and all(
                np.array_equal(getattr(self, name), getattr(other, name),
                               equal_nan=name not in ("t", "n", "otc"))
                for name in BAR_COLUMNS
            )
        )

    def problems(self) -> list[BarProblem]:
        """Every row that breaks an invariant, with the reason; empty when the batch is valid.

        Checks: low <= open, close <= high; prices above zero; v >= 0; t strictly increasing and aligned.
        """
        out: list[BarProblem] = []
        t = self.t

        def flag(mask: npt.NDArray[np.bool_], reason: str) -> None:
            for i in np.flatnonzero(mask).tolist():
                out.append(BarProblem(int(i), int(t[i]), reason))

        with np.errstate(invalid="ignore"):
            finite = np.isfinite(self.o) & np.isfinite(self.h) & np.isfinite(self.l) & np.isfinite(self.c)
            flag(~finite, "price is not a finite number")
            flag(finite & (self.h < self.l), "high is below low")
            flag(finite & (self.h >= self.l) & ((self.o > self.h) | (self.c > self.h)),
                 "open or close above high")
            flag(finite & (self.h >= self.l) & ((self.o < self.l) | (self.c < self.l)),
                 "open or close below low")
            flag(finite & ((self.o <= 0) | (self.h <= 0) | (self.l <= 0) | (self.c <= 0)),
                 "price is zero or negative")
            flag(self.v < 0, "negative volume")
        if len(t) > 1:
            d = np.diff(t)
            flag(np.concatenate([[False], d == 0]), "duplicate timestamp")
            flag(np.concatenate([[False], d < 0]), "timestamp out of order")
        flag(t % self._alignment_ms() != 0, f"timestamp not aligned to {self.timeframe}")
        out.sort(key=lambda p: p.row)
        return out

    def _alignment_ms(self) -> int:
        # Multi-hour and calendar bars are anchored at local midnight; ET offsets are whole hours,
        # so only the part of the period that divides an hour can be checked independently of tz.
        fixed = self.timeframe.fixed_ms
        if fixed is not None and fixed <= HOUR_MS and HOUR_MS % fixed == 0:
            return fixed
        unit_ms = self.timeframe.unit_ms
        if self.timeframe.intraday and unit_ms is not None:
            return unit_ms
        return HOUR_MS

    def validate(self, where: str | None = None) -> BarBatch:
        """Return self when valid.

        Args:
            where: how the message names the batch (default: its ticker and timeframe).

        Raises:
            ValidationError: naming the offending rows (at most 20 in the message), holding those
                rows as ``bars`` and why each is invalid as ``reasons``.
        """
        problems = self.problems()
        if problems:
            shown = "; ".join(str(p) for p in problems[:20])
            more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
            why = reasons_by_row(problems)
            rows = sorted(why)
            label = where or f"{self.ticker} {self.timeframe}"
            raise ValidationError(
                f"{label}: {len(problems)} invalid bar(s): {shown}{more}",
                rows=rows, bars=self.take(np.asarray(rows, dtype=np.int64)), reasons=[why[r] for r in rows],
            )
        return self


@dataclass(frozen=True, slots=True, eq=False)
class MarketBars:
    """Bars of many tickers at one timeframe, as columns: a day's file, or a part of it.

    ``tickers`` names each ``code``; rows are grouped by ticker in ``tickers`` order where
    :meth:`grouped` says so (:meth:`normalised` makes them), each ticker's rows by ``t``. Nothing
    is per ticker here until a caller asks for one ticker's :meth:`batch`, so a whole market's
    rows are checked and written in a few vectorised passes instead of a loop over tickers.
    """

    tickers: tuple[str, ...]
    timeframe: Timeframe
    code: I64
    t: I64
    o: F64
    h: F64
    l: F64  # noqa: E741 - the vendor's field name
    c: F64
    v: F64
    vw: F64
    n: I64
    source: str = "flatfile"
    otc: I8 = field(default_factory=lambda: _NO_OTC)  # left out: no bar has a flag (as in BarBatch)

    def __post_init__(self) -> None:
        if self.otc is _NO_OTC:
            object.__setattr__(self, "otc", np.full(len(self.t), MISSING_OTC, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls, timeframe: Timeframe, source: str = "flatfile") -> MarketBars:
        f = np.empty(0, dtype=np.float64)
        i = np.empty(0, dtype=np.int64)
        return cls((), timeframe, i, i, f, f, f, f, f, f, i, source)

    def columns(self) -> dict[str, F64 | I64]:
        return {name: getattr(self, name) for name in BAR_COLUMNS}

    def take(self, index: RowSelector) -> MarketBars:
        """Rows selected by a slice, a boolean mask or an index array (the same ticker names)."""
        cols = {name: getattr(self, name)[index] for name in ("code", *BAR_COLUMNS)}
        return MarketBars(self.tickers, self.timeframe, source=self.source, **cols)

    @classmethod
    def concat(cls, parts: Sequence[MarketBars]) -> MarketBars:
        """Join parts of one timeframe and source; names are merged in order of first appearance."""
        parts = [p for p in parts if len(p)]
        if not parts:
            raise UsageError("concat needs at least one non-empty part")
        if len(parts) == 1:
            return parts[0]
        names: dict[str, int] = {}
        codes: list[I64] = []
        for p in parts:
            remap = np.fromiter((names.setdefault(name, len(names)) for name in p.tickers), dtype=np.int64,
                                count=len(p.tickers))
            codes.append(remap[p.code])
        first = parts[0]
        cols = {name: np.concatenate([getattr(p, name) for p in parts]) for name in BAR_COLUMNS}
        return cls(tuple(names), first.timeframe, np.concatenate(codes), source=first.source, **cols)

    def runs(self) -> tuple[I64, I64]:
        """Where each run of one ticker starts and ends (rows ``starts[k]:ends[k]``)."""
        change = np.flatnonzero(self.code[1:] != self.code[:-1]) + 1
        return (np.concatenate(([0], change)).astype(np.int64),
                np.concatenate((change, [len(self)])).astype(np.int64))

    def grouped(self) -> bool:
        """One run per ticker, each strictly increasing in ``t``, runs in ``tickers`` order."""
        if not len(self):
            return True
        starts, _ = self.runs()
        if len(starts) != len(self.tickers) or not bool(np.all(self.code[starts] == np.arange(len(starts)))):
            return False
        boundary = np.zeros(len(self) - 1, dtype=bool)
        boundary[starts[1:] - 1] = True
        return bool(np.all((np.diff(self.t) > 0) | boundary))

    def normalised(self) -> MarketBars:
        """The same rows grouped by ticker in name order, each ticker's by ``t`` (a stable sort).

        Names that no row uses are dropped. Duplicate (ticker, t) rows stay, side by side, for
        the check to flag.
        """
        if not len(self):
            return MarketBars.empty(self.timeframe, self.source)
        names_sorted = all(a < b for a, b in zip(self.tickers, self.tickers[1:], strict=False))
        if names_sorted and self.grouped():
            return self  # the common case (a vendor's file is sorted by ticker): nothing to do
        used = np.flatnonzero(np.bincount(self.code, minlength=len(self.tickers)))
        names = [self.tickers[i] for i in used.tolist()]
        order_of_name = np.argsort(np.asarray(names, dtype=object), kind="stable")
        rank = np.empty(len(used), dtype=np.int64)
        rank[order_of_name] = np.arange(len(used))
        lookup = np.zeros(len(self.tickers), dtype=np.int64)
        lookup[used] = rank
        code = lookup[self.code]
        sorted_names = tuple(names[i] for i in order_of_name.tolist())
        ordered = dataclasses.replace(self, tickers=sorted_names, code=code)
        if ordered.grouped():
            return ordered
        return ordered.take(np.lexsort((self.t, code)))

    def suspect(self) -> npt.NDArray[np.bool_]:
        """Rows that may break a bar invariant: a superset of what :meth:`BarBatch.problems` flags.

        Rows must be :meth:`grouped` for the order check (a row is compared with the previous row
        of its ticker).
        """
        o, h, lo, c = self.o, self.h, self.l, self.c
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c))
            bad |= (h < lo) | (o > h) | (c > h) | (o < lo) | (c < lo) | (self.v < 0)
            bad |= (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
        fixed = self.timeframe.fixed_ms
        step = fixed if fixed is not None and fixed <= HOUR_MS else HOUR_MS
        bad |= self.t % step != 0
        if len(bad) > 1:
            same = self.code[1:] == self.code[:-1]
            bad[1:] |= (np.diff(self.t) <= 0) & same  # duplicate or out of order within a ticker
        return np.asarray(bad, dtype=np.bool_)

    def batch(self, start: int, end: int) -> BarBatch:
        """Rows ``start:end`` (one ticker's run) as that ticker's :class:`BarBatch`."""
        rows = slice(start, end)
        return BarBatch(self.tickers[int(self.code[start])], self.timeframe, self.t[rows], self.o[rows],
                        self.h[rows], self.l[rows], self.c[rows], self.v[rows], self.vw[rows], self.n[rows],
                        self.source, self.otc[rows])

    def batches(self) -> Iterator[BarBatch]:
        """One :class:`BarBatch` per run of one ticker, in row order."""
        if not len(self):
            return
        starts, ends = self.runs()
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            yield self.batch(lo, hi)

    def problems(self) -> dict[str, list[BarProblem]]:
        """Per ticker, its rows that break an invariant (row numbers of these bars), checked in full
        only where :meth:`suspect` finds something; empty when every row is valid.

        The rows must be :meth:`grouped` (:meth:`normalised` makes them so).
        """
        out: dict[str, list[BarProblem]] = {}
        if not len(self):
            return out
        suspect = self.suspect()
        if not suspect.any():
            return out
        starts, ends = self.runs()
        flagged = np.add.reduceat(suspect, starts) > 0
        for k in np.flatnonzero(flagged).tolist():
            lo, hi = int(starts[k]), int(ends[k])
            found = self.batch(lo, hi).problems()
            if found:
                out.setdefault(self.tickers[int(self.code[lo])], []).extend(
                    BarProblem(p.row + lo, p.t, p.reason) for p in found)
        return out


# --------------------------------------------------------------------------------------------
# Corporate actions


@dataclass(frozen=True, slots=True)
class Split:
    """A split effective at the start of ``execution_date``; ``split_to/split_from`` new per old."""

    id: str
    ticker: str
    execution_date: date
    split_from: float
    split_to: float

    @property
    def ratio(self) -> float:
        """Shares after per share before (2.0 for a 2-for-1); prices before divide by this."""
        return self.split_to / self.split_from


@dataclass(frozen=True, slots=True)
class Dividend:
    """A cash dividend; prices before ``ex_dividend_date`` carry it."""

    id: str
    ticker: str
    ex_dividend_date: date
    cash_amount: float
    currency: str = "USD"
    declaration_date: date | None = None
    record_date: date | None = None
    pay_date: date | None = None
    frequency: int = 0
    dividend_type: str = "CD"

"""The vendor's flat-file layout: datasets, object keys, and when a day's file is published. Pure.

One gzipped CSV per dataset and day, under ``<market>/<kind>_v1/YYYY/MM/YYYY-MM-DD.csv.gz`` in the
bucket ``flatfiles`` (``us_stocks_sip/minute_aggs_v1/2024/03/2024-03-07.csv.gz``). A day is a local
trading day of the dataset's market: New York days for US stocks, options and indices, UTC days for
crypto and forex, the same days mdw's daily bars use. A day's file appears at about 11:00 ET on the
next calendar day and can be replaced later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from mdw.calendar import trading_days
from mdw.domain import NEW_YORK, AssetClass, Timeframe, TimeRange, day_range_ms
from mdw.errors import UsageError

BUCKET = "flatfiles"
PUBLISH_AT = time(11, 0)  # ET, on the calendar day after the file's day
ONE_MINUTE = Timeframe(1, "m")
ONE_DAY = Timeframe(1, "d")
_KEY_RE = re.compile(
    r"^(?P<prefix>[a-z_]+/[a-z_]+_v1)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{4}-\d{2}-\d{2})\.csv\.gz$")


@dataclass(frozen=True, slots=True)
class FileDataset:
    """One series of daily files: aggregates of one market at one timeframe."""

    prefix: str  # e.g. "us_stocks_sip/minute_aggs_v1"
    asset: AssetClass
    timeframe: Timeframe

    @property
    def market(self) -> str:
        """The first key segment (``us_stocks_sip``): what an entitlement covers."""
        return self.prefix.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.prefix

    def key(self, day: date) -> str:
        """The object key of ``day``'s file."""
        return f"{self.prefix}/{day.year:04d}/{day.month:02d}/{day.isoformat()}.csv.gz"

    def month_prefix(self, year: int, month: int) -> str:
        """The listing prefix of one month's files (one ListObjectsV2 page holds a month)."""
        return f"{self.prefix}/{year:04d}/{month:02d}/"

    def day_range(self, day: date) -> TimeRange:
        """The half-open ms range of ``day`` in the market's zone: what the file covers."""
        return day_range_ms(day, day, self.asset.tz)

    def has_file(self, day: date) -> bool:
        """Whether the market trades on ``day`` (only trading days get a file)."""
        return bool(trading_days(self.asset, self.day_range(day)))

    def days(self, first: date, last: date) -> list[date]:
        """The days with a file between ``first`` and ``last`` inclusive."""
        if last < first:
            return []
        return trading_days(self.asset, day_range_ms(first, last, self.asset.tz))


DATASETS: tuple[FileDataset, ...] = (
    FileDataset("global_crypto/day_aggs_v1", AssetClass.CRYPTO, ONE_DAY),
    FileDataset("global_crypto/minute_aggs_v1", AssetClass.CRYPTO, ONE_MINUTE),
    FileDataset("global_forex/day_aggs_v1", AssetClass.FOREX, ONE_DAY),
    FileDataset("global_forex/minute_aggs_v1", AssetClass.FOREX, ONE_MINUTE),
    FileDataset("us_indices/day_aggs_v1", AssetClass.INDICES, ONE_DAY),
    FileDataset("us_indices/minute_aggs_v1", AssetClass.INDICES, ONE_MINUTE),
    FileDataset("us_options_opra/day_aggs_v1", AssetClass.OPTIONS, ONE_DAY),
    FileDataset("us_options_opra/minute_aggs_v1", AssetClass.OPTIONS, ONE_MINUTE),
    FileDataset("us_stocks_sip/day_aggs_v1", AssetClass.STOCKS, ONE_DAY),
    FileDataset("us_stocks_sip/minute_aggs_v1", AssetClass.STOCKS, ONE_MINUTE),
)
_BY_PREFIX = {d.prefix: d for d in DATASETS}
_BY_SERIES = {(d.asset, d.timeframe): d for d in DATASETS}


def dataset(asset: AssetClass, timeframe: Timeframe) -> FileDataset | None:
    """The files holding bars of ``asset`` at ``timeframe`` (1m or 1d), or None when there are none."""
    return _BY_SERIES.get((asset, timeframe))


def dataset_named(prefix: str) -> FileDataset:
    """The dataset with this key prefix.

    Raises:
        UsageError: no dataset has that prefix; the message lists them.
    """
    found = _BY_PREFIX.get(prefix.strip().strip("/"))
    if found is None:
        raise UsageError(f"unknown flat-file dataset {prefix!r}; expected one of "
                         f"{', '.join(sorted(_BY_PREFIX))}")
    return found


def parse_key(key: str) -> tuple[FileDataset, date] | None:
    """The dataset and day of an aggregates file key, or None for any other key."""
    m = _KEY_RE.fullmatch(key)
    if m is None or m["prefix"] not in _BY_PREFIX:
        return None
    try:
        day = date.fromisoformat(m["d"])
    except ValueError:
        return None
    if (day.year, day.month) != (int(m["y"]), int(m["m"])):
        return None
    return _BY_PREFIX[m["prefix"]], day


def published_at_ms(day: date) -> int:
    """When ``day``'s files are expected: 11:00 ET on the next calendar day (epoch ms)."""
    moment = datetime.combine(day + timedelta(days=1), PUBLISH_AT, tzinfo=NEW_YORK)
    return int(moment.timestamp() * 1000)


def last_published_day(now_ms: int) -> date:
    """The latest day whose files are expected to be out at ``now_ms`` (whatever the market)."""
    local = datetime.fromtimestamp(now_ms / 1000, NEW_YORK)
    back = 1 if local.time() >= PUBLISH_AT else 2
    return local.date() - timedelta(days=back)


def vendor_ticker(text: str) -> str:
    """A flat file's ticker in mdw's (the REST API's) spelling.

    Crypto and forex files spell pairs with a dash (``X:BTC-USD``) where the REST API has
    ``X:BTCUSD``; both spellings are accepted, so a file in either form decodes the same.
    """
    if len(text) > 2 and text[1] == ":" and text[0] in "XC" and "-" in text:
        return text[:2] + text[2:].replace("-", "")
    return text


def file_ticker(symbol: str, dashed: bool = True) -> str:
    """The spelling a flat file uses for mdw's ``symbol`` (pairs dashed before a 3-letter quote)."""
    if dashed and len(symbol) > 5 and symbol[:2] in ("X:", "C:"):
        return f"{symbol[:-3]}-{symbol[-3:]}"
    return symbol


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One object as a listing or HEAD describes it."""

    key: str
    size: int
    etag: str
    last_modified_ms: int

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "size": self.size, "etag": self.etag,
                "last_modified_ms": self.last_modified_ms}


@dataclass(slots=True)
class TransferStats:
    """What the client did: requests sent, body bytes received, downloads resumed."""

    requests: int = 0
    bytes: int = 0
    resumes: int = 0
    files: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.requests += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

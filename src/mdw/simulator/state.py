"""What every handler shares: the config, the market, the limiter, the stats and the faults."""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from mdw.domain import AssetClass, local_midnight_ms
from mdw.simulator.clock import SimClock
from mdw.simulator.config import SimConfig, key_plan
from mdw.simulator.faults import FaultInjector
from mdw.simulator.flatfiles import FlatFiles
from mdw.simulator.limiter import RateLimiter, Stats
from mdw.simulator.market import Market
from mdw.simulator.stream import StreamHub

Row = dict[str, object]  # one reference record as the vendor serves it (JSON values)
# An aggregates page: ticker, multiplier, timespan, from, to, limit, sort, adjusted, data day.
PageKey = tuple[str, int, str, int, int, int, str, bool, date]
CachedPage = tuple[bytes, int, int, int | None]  # results JSON, queryCount, resultsCount, next start

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MS_RE = re.compile(r"^-?\d{1,16}$")


@dataclass(slots=True)
class SimState:
    config: SimConfig
    market: Market
    flatfiles: FlatFiles
    limiter: RateLimiter
    stats: Stats
    faults: FaultInjector
    clock: SimClock
    hub: StreamHub
    public_base: str | None = None
    cache: dict[tuple[object, ...], list[Row]] = field(default_factory=dict)  # reference rows per data day
    pages: PageCache = field(default_factory=lambda: PageCache())

    def base_for(self, request: web.Request) -> str:
        """The scheme and host next_url uses: the Host header called, unless a public base is set."""
        if self.public_base:
            return self.public_base.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def history_start_ms(self, plan: str) -> int | None:
        """The first instant a key of ``plan`` may ask for today (None: no bound)."""
        first = key_plan(plan).first_day(self.market.today())
        return None if first is None else local_midnight_ms(first, AssetClass.STOCKS.tz)

    def published_before_ms(self, plan: str) -> int | None:
        """What a key of ``plan`` sees: data before this instant (None: everything up to now)."""
        delay = key_plan(plan).delay
        if not self.config.delay or (delay.ms == 0 and not delay.end_of_day):
            return None
        return delay.published_before_ms(self.market.now_ms)


class PageCache:
    """Encoded ``results`` of aggregates pages that can no longer change (they end before now).

    Benchmarks ask for the same pages again and again (one run per contender); serving them from
    here keeps the simulator out of the measurement. Bounded by total bytes, least recently used out.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[PageKey, CachedPage] = OrderedDict()

    def get(self, key: PageKey) -> CachedPage | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: PageKey, item: CachedPage) -> None:
        if len(item[0]) > self.max_bytes // 4 or key in self._items:
            return
        self._items[key] = item
        self.size += len(item[0])
        while self.size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.size -= len(old[0])


STATE: web.AppKey[SimState] = web.AppKey("mdw_sim_state", SimState)
PLAN: web.RequestKey[str] = web.RequestKey("mdw_sim_plan", str)  # the calling key's plan


def parse_time(text: str, asset: AssetClass, *, end: bool) -> int | None:
    """A ``from``/``to`` path value: ``YYYY-MM-DD`` (local day of the asset) or epoch ms.

    A date ``to`` means the end of that day (its last millisecond); a date ``from`` its midnight.
    """
    if _DATE_RE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        start = local_midnight_ms(day, asset.tz)
        return local_midnight_ms(day + timedelta(days=1), asset.tz) - 1 if end else start
    if _MS_RE.fullmatch(text):
        return int(text)
    return None


def parse_day(text: str) -> date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def encode_cursor(params: dict[str, str]) -> str:
    """Unpadded URL-safe base64 of a query string, keys sorted (``limit=2&sort=asc``)."""
    query = urlencode(sorted(params.items()))
    return base64.urlsafe_b64encode(query.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return dict(parse_qsl(base64.urlsafe_b64decode(padded.encode()).decode(), keep_blank_values=True))
    except (ValueError, UnicodeDecodeError):
        return None

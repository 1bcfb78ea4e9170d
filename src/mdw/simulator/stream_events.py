"""The stream's wire shapes, and how one minute of the market becomes its events.

Field names and order follow the vendor's WebSocket spec (``.massive/websocket.json`` in
massive-com/client-python): stocks ``AM``/``A`` carry ``ev, sym, v, av, op, vw, o, c, h, l, a,
z, s, e`` (``op``, the official open, only once the regular session has opened); crypto
``XA``/``XAS`` carry ``ev, pair, v, vw, z, o, c, h, l, s, e`` with the pair spelt ``BTC-USD``.
There is no trade count: ``z`` is the average trade size. Every frame is a JSON array.

A minute bar streamed without faults carries exactly the values REST serves for that minute.
Second bars (``A``/``XAS``) are made from their minute: they open at its open, close at its close,
reach its high and low and add up to its volume (their VWAPs are only plausible; REST has no
second bars to compare them with).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

import msgspec
import numpy as np

from mdw.domain import F64, MINUTE_MS, AssetClass
from mdw.simulator.names import stable_hash
from mdw.simulator.paths import DayMinutes

_encoder = msgspec.json.Encoder()
SECOND_MS = 1000


class Status(msgspec.Struct, gc=False):
    ev: str
    status: str
    message: str


class StockAgg(msgspec.Struct, omit_defaults=True, gc=False):
    ev: str
    sym: str
    v: int
    av: int
    op: float | None
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    a: float
    z: int
    s: int
    e: int
    otc: bool = False


class CryptoAgg(msgspec.Struct, gc=False):
    ev: str
    pair: str
    v: float
    vw: float
    z: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    s: int
    e: int


Event = StockAgg | CryptoAgg | Status


def encode_frame(events: list[Event]) -> bytes:
    """One frame: a JSON array of events."""
    return _encoder.encode(events)


def status_frame(status: str, message: str) -> bytes:
    return encode_frame([Status("status", status, message)])


def pair_of(ticker: str) -> str:
    """``X:BTCUSD`` -> ``BTC-USD`` (the stream's spelling of a crypto pair; quotes are 3 letters)."""
    body = ticker.removeprefix("X:")
    return f"{body[:-3]}-{body[-3:]}"


def ticker_of_pair(pair: str) -> str:
    """``BTC-USD`` -> ``X:BTCUSD``."""
    return "X:" + pair.replace("-", "")


@dataclass(slots=True)
class DayTable:
    """One ticker's minutes of one local day, with the running day totals the events carry."""

    day: date
    dm: DayMinutes | None
    cum_v: F64  # volume through each minute
    cum_pv: F64  # vwap * volume through each minute
    open_t: int | None  # the first regular-session minute (its open is the official open)
    open_price: float | None

    @classmethod
    def build(cls, day: date, dm: DayMinutes | None) -> DayTable:
        if dm is None or not len(dm.t):
            empty = np.empty(0)
            return cls(day, None, empty, empty, None, None)
        v = np.nan_to_num(dm.v)
        first = np.flatnonzero(dm.regular)
        open_t = int(dm.t[first[0]]) if len(first) else None
        open_price = float(dm.o[first[0]]) if len(first) else None
        return cls(day, dm, np.cumsum(v), np.cumsum(np.nan_to_num(dm.vw) * v), open_t, open_price)

    def index(self, start_ms: int) -> int | None:
        """The row of the minute starting at ``start_ms``, or None when it did not trade."""
        if self.dm is None:
            return None
        i = int(np.searchsorted(self.dm.t, start_ms))
        return i if i < len(self.dm.t) and int(self.dm.t[i]) == start_ms else None


@dataclass(frozen=True, slots=True)
class Bar:
    """One aggregate as the stream sends it (before the day totals are attached)."""

    s: int
    e: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    c: float
    v: float
    vw: float
    n: int


def minute_bar(table: DayTable, i: int) -> Bar:
    dm = table.dm
    assert dm is not None
    s = int(dm.t[i])
    return Bar(s, s + MINUTE_MS, float(dm.o[i]), float(dm.h[i]), float(dm.l[i]), float(dm.c[i]),
               float(dm.v[i]), float(dm.vw[i]), int(dm.n[i]))


def perturbed(bar: Bar, asset: AssetClass) -> Bar:
    """Values REST never serves for this minute: more volume, a close one tick off (still valid)."""
    tick = 1e-6 if asset is AssetClass.CRYPTO else 0.01
    extra = max(1.0, round(bar.v * 0.1)) if asset is not AssetClass.CRYPTO else round(bar.v * 0.1 + 0.5, 6)
    c = round(bar.c + tick, 6)
    return Bar(bar.s, bar.e, bar.o, max(bar.h, c), bar.l, c, bar.v + extra, bar.vw, bar.n + 1)


def fault_draw(seed: int, ticker: str, s: int) -> float:
    """The bar's one uniform draw for late / re-sent / wrong (independent of the market's streams)."""
    return stable_hash("stream-fault", seed, ticker, s) / float(1 << 63)


def agg_event(ev: str, ticker: str, asset: AssetClass, bar: Bar, table: DayTable, i: int,
              day_v: float | None = None, day_pv: float | None = None) -> Event:
    """The AM/A or XA/XAS event of ``bar``; the day totals are row ``i``'s unless given."""
    z = bar.v / bar.n if bar.n else bar.v
    if asset is AssetClass.CRYPTO:
        return CryptoAgg(ev, pair_of(ticker), bar.v, bar.vw, round(z, 6), bar.o, bar.c, bar.h, bar.l,
                         bar.s, bar.e)
    av = float(table.cum_v[i]) if day_v is None else day_v
    pv = float(table.cum_pv[i]) if day_pv is None else day_pv
    a = pv / av if av > 0 else bar.vw
    op = table.open_price if table.open_t is not None and bar.s >= table.open_t else None
    return StockAgg(ev, ticker, round(bar.v), round(av), op, bar.vw, bar.o, bar.c, bar.h, bar.l,
                    round(a, 4), round(z), bar.s, bar.e)


def second_events(ev: str, ticker: str, asset: AssetClass, table: DayTable, i: int, seed: int,
                  ) -> list[tuple[int, Event]]:
    """The second bars of row ``i``'s minute as (their end, their event), day totals running."""
    day_v = float(table.cum_v[i - 1]) if i > 0 else 0.0
    day_pv = float(table.cum_pv[i - 1]) if i > 0 else 0.0
    out: list[tuple[int, Event]] = []
    for sec in second_bars(minute_bar(table, i), seed, ticker):
        day_v += sec.v
        day_pv += sec.v * sec.vw
        out.append((sec.e, agg_event(ev, ticker, asset, sec, table, i, day_v, day_pv)))
    return out


def second_bars(bar: Bar, seed: int, ticker: str) -> list[Bar]:
    """The minute split into up to six second bars at seeded offsets (see the module docstring)."""
    k = max(1, min(bar.n, 6))
    rng = random.Random(stable_hash("seconds", seed, ticker, bar.s))
    offsets = sorted(rng.sample(range(60), k))
    if k == 1:
        return [Bar(bar.s + offsets[0] * SECOND_MS, bar.s + (offsets[0] + 1) * SECOND_MS, bar.o, bar.h,
                    bar.l, bar.c, bar.v, bar.vw, bar.n)]
    path = [bar.o + (bar.c - bar.o) * j / k for j in range(k + 1)]
    path[-1] = bar.c
    volumes = [bar.v / k] * k
    if float(bar.v).is_integer():
        base = int(bar.v) // k
        volumes = [float(base)] * k
        volumes[-1] = bar.v - base * (k - 1)
    counts = [bar.n // k] * k
    counts[-1] = bar.n - (bar.n // k) * (k - 1)
    out: list[Bar] = []
    for j, off in enumerate(offsets):
        o = bar.o if j == 0 else round(path[j], 6)
        c = bar.c if j == k - 1 else round(path[j + 1], 6)
        hi, lo = (bar.h, bar.l) if j == 0 else (max(o, c), min(o, c))
        out.append(Bar(bar.s + off * SECOND_MS, bar.s + (off + 1) * SECOND_MS, o, hi, lo, c, volumes[j],
                       min(max(bar.vw, lo), hi), max(1, counts[j])))
    return out

"""Fast JSON for responses: bars go from columns to bytes through msgspec Structs, never dicts."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence

import msgspec

from mdw.domain import BarBatch

_encoder = msgspec.json.Encoder()


class _Bar(msgspec.Struct, gc=False):
    v: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: int


class _SparseBar(msgspec.Struct, gc=False, omit_defaults=True, kw_only=True):
    """A bar as the vendor sends some: ``vw``/``n`` left off when unknown, ``otc`` only when true."""

    v: float
    vw: float | None = None
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: int | None = None
    otc: bool = False


class _IndexBar(msgspec.Struct, gc=False):
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int


class _GroupedBar(msgspec.Struct, gc=False, omit_defaults=True):
    T: str
    v: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: int
    otc: bool = False  # written only when true, as the vendor does


def request_id() -> str:
    """32 hex characters, as the vendor's ``request_id``."""
    return uuid.uuid4().hex


def encode(obj: object) -> bytes:
    return _encoder.encode(obj)


def bars_json(batch: BarBatch, t_override: list[int] | None = None, *, vw_n: bool = True,
              otc: bool = False) -> bytes:
    """The ``results`` array of an aggregates response, encoded straight from the columns.

    ``vw_n`` False leaves ``vw`` and ``n`` off every bar; ``otc`` marks every bar ``otc: true``.
    """
    t = t_override if t_override is not None else batch.t.tolist()
    if len(batch) and math.isnan(float(batch.v[0])):
        rows_i = map(_IndexBar, batch.o.tolist(), batch.c.tolist(), batch.h.tolist(), batch.l.tolist(), t)
        return _encoder.encode(list(rows_i))
    if otc or not vw_n:
        k = len(batch)
        vw = batch.vw.tolist() if vw_n else [None] * k
        n = batch.n.tolist() if vw_n else [None] * k
        cols = zip(batch.v.tolist(), vw, batch.o.tolist(), batch.c.tolist(), batch.h.tolist(),
                   batch.l.tolist(), t, n, strict=True)
        sparse = [_SparseBar(v=v, vw=w, o=o, c=c, h=h, l=lo, t=ts, n=nn, otc=otc)
                  for v, w, o, c, h, lo, ts, nn in cols]
        return _encoder.encode(sparse)
    rows = map(_Bar, batch.v.tolist(), batch.vw.tolist(), batch.o.tolist(), batch.c.tolist(),
               batch.h.tolist(), batch.l.tolist(), t, batch.n.tolist())
    return _encoder.encode(list(rows))


FAR_AHEAD_MS = 27_393 * 86_400_000  # 75 years of whole days: outside any range a client can ask for


def spoiled_json(batch: BarBatch, rows: Sequence[int], kind: str, *, vw_n: bool = True,
                 otc: bool = False) -> bytes:
    """The ``results`` array of :func:`bars_json` with bars ``rows`` given the malformed value ``kind``.

    Written with the standard library so that ``NaN``/``Infinity`` literals, a 31-digit ``n`` and a
    float ``t`` go out as a hostile vendor would send them (msgspec refuses to write those).
    """
    index = len(batch) > 0 and math.isnan(float(batch.v[0]))
    bars: list[dict[str, object]] = []
    for v, vw, o, c, h, lo, t, n in zip(batch.v.tolist(), batch.vw.tolist(), batch.o.tolist(),
                                        batch.c.tolist(), batch.h.tolist(), batch.l.tolist(),
                                        batch.t.tolist(), batch.n.tolist(), strict=True):
        bar: dict[str, object] = {"v": v, "vw": vw, "o": o, "c": c, "h": h, "l": lo, "t": t, "n": n}
        if index:
            del bar["v"], bar["vw"], bar["n"]
        elif not vw_n:
            del bar["vw"], bar["n"]
        if otc:
            bar["otc"] = True
        bars.append(bar)
    for i in sorted(rows, reverse=True):  # from the end, so inserted bars keep the earlier indexes
        _spoil(bars, i, kind)
    return json.dumps(bars, separators=(",", ":")).encode()


def _spoil(bars: list[dict[str, object]], i: int, kind: str) -> None:
    bar = bars[i]
    h = float(bar["h"])  # type: ignore[arg-type]
    lo = float(bar["l"])  # type: ignore[arg-type]
    match kind:
        case "null_price":
            bar["c"] = None
        case "nan_price":
            bar["h"] = math.nan
        case "inf_price":
            bar["h"] = math.inf
        case "string_price":
            bar["o"] = str(bar["o"])
        case "null_volume":
            bar["v"] = None
        case "float_t":
            bar["t"] = int(bar["t"]) + 0.5  # type: ignore[call-overload]
        case "missing_t":
            del bar["t"]
        case "huge_n":
            bar["n"] = 10**30
        case "zero_price":
            bar["l"] = 0.0
        case "negative_price":
            bar["l"] = -lo
        case "vw_outside":
            bar["vw"] = h * 1.5
        case "missing_n":
            bar.pop("n", None)
        case "duplicate_t":
            bars.insert(i + 1, {**bar, "c": lo if bar["c"] != lo else h})
        case "outside_range":
            bars.insert(i + 1, {**bar, "t": int(bar["t"]) + FAR_AHEAD_MS})  # type: ignore[call-overload]
        case _:
            raise ValueError(f"unknown bad value {kind!r}")


def grouped_row(ticker: str, batch: BarBatch, t: int) -> _GroupedBar:
    return _GroupedBar(ticker, float(batch.v[0]), float(batch.vw[0]), float(batch.o[0]), float(batch.c[0]),
                       float(batch.h[0]), float(batch.l[0]), t, int(batch.n[0]))


def grouped_values(ticker: str, row: tuple[float, ...], t: int, otc: bool = False) -> _GroupedBar:
    """A grouped-daily row from a daily row ``(t, o, h, l, c, v, vw, n)``; ``t`` replaces the window start;
    ``otc`` marks the row ``otc: true``."""
    _, o, h, lo, c, v, vw, n = row
    return _GroupedBar(ticker, v, vw, o, c, h, lo, t, int(n), otc)


def raw(data: bytes) -> msgspec.Raw:
    return msgspec.Raw(data)

"""Fast JSON for responses: bars go from columns to bytes through msgspec Structs, never dicts."""

from __future__ import annotations

import math
import uuid

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


class _GroupedBar(msgspec.Struct, gc=False):
    T: str
    v: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    t: int
    n: int


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


def grouped_row(ticker: str, batch: BarBatch, t: int) -> _GroupedBar:
    return _GroupedBar(ticker, float(batch.v[0]), float(batch.vw[0]), float(batch.o[0]), float(batch.c[0]),
                       float(batch.h[0]), float(batch.l[0]), t, int(batch.n[0]))


def grouped_values(ticker: str, row: tuple[float, ...], t: int) -> _GroupedBar:
    """A grouped-daily row from a daily row ``(t, o, h, l, c, v, vw, n)``; ``t`` replaces the window start."""
    _, o, h, lo, c, v, vw, n = row
    return _GroupedBar(ticker, v, vw, o, c, h, lo, t, int(n))


def raw(data: bytes) -> msgspec.Raw:
    return msgspec.Raw(data)

"""Vendor values that cannot be a bar: found per bar, before any integer conversion, and named.

A bad value in one bar (``null``, ``NaN``, ``Infinity``, a string, a float ``t``, ``n = 1e30``)
is a data error about that page, not a damaged body: the page is read again leniently
(:func:`loose_matrix`), every bar gets the reasons it is unusable (:func:`screen`), and the
caller quarantines those bars instead of retrying the page as unreadable and counting an outage.

Every numeric field is range-checked on the float64 matrix, before ``t`` and ``n`` become int64,
so no value wraps (``10**30`` never turns into ``-2**63``). The bounds are far outside any real
bar and inside what float64 holds exactly: ``t`` and ``n`` are whole numbers in ``[0, 2**53)``;
prices and ``vw`` are positive and below ``1e12``; ``v`` is in ``[0, 1e18)``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt

from mdw.domain import BarBatch

FIELDS = ("v", "vw", "o", "c", "h", "l", "t", "n")  # the matrix's row order (the vendor's key order)
REQUIRED = frozenset({"o", "c", "h", "l", "t"})  # index bars omit v, vw and n; some bars omit vw, n
MAX_EXACT = float(2**53)
MAX_PRICE = 1e12
MAX_VOLUME = 1e18
Matrix = npt.NDArray[np.float64]
Reasons = dict[int, list[str]]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def loose_body(body: bytes) -> dict[str, object] | None:
    """The body as JSON, accepting ``NaN``/``Infinity`` literals; None when it is not a JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def loose_matrix(rows: list[object]) -> tuple[Matrix, Reasons]:
    """An (8, n) float64 matrix of ``rows`` (NaN where a value is missing or unusable) and why.

    Absent ``v``/``vw``/``n`` are missing (NaN), as the vendor omits them; an explicit ``null``,
    a string, a boolean or a fractional ``t``/``n`` is a bad value with its reason.
    """
    m = np.full((len(FIELDS), len(rows)), math.nan)
    why: Reasons = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            why.setdefault(i, []).append(f"bar is not an object ({_shown(row)})")
            continue
        for k, name in enumerate(FIELDS):
            if name not in row:
                if name in REQUIRED:
                    why.setdefault(i, []).append(f"{name} is missing")
                continue
            value = row[name]
            if value is None:
                why.setdefault(i, []).append(f"{name} is null")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                why.setdefault(i, []).append(f"{name} is not a number ({_shown(value)})")
            elif isinstance(value, float) and not math.isfinite(value):
                why.setdefault(i, []).append(f"{name} is not a finite number ({value})")
            elif name in ("t", "n") and isinstance(value, float):
                why.setdefault(i, []).append(f"{name} is not an integer ({_shown(value)})")
            else:
                try:
                    m[k, i] = float(value)
                except OverflowError:  # an integer beyond float64: out of range, said below
                    m[k, i] = math.inf
    return m, why


def screen(m: Matrix, why: Reasons | None = None) -> Reasons:
    """Add to ``why`` every bar of ``m`` whose values are out of range; returns ``why``.

    NaN in ``v``/``vw``/``n`` is a missing value (allowed); NaN in a price or ``t`` was already
    given a reason by :func:`loose_matrix`, or is the literal NaN/Infinity the vendor sent.
    """
    out: Reasons = why if why is not None else {}
    if not m.shape[1] or (not out and _all_clean(m)):
        return out
    v, vw, o, c, h, lo, t, n = m[:8]  # a ninth row (otc) is not a value to check
    with np.errstate(invalid="ignore"):
        prices = np.vstack([o, c, h, lo])
        finite = np.isfinite(prices).all(axis=0)
        checks = [
            (("t",), ~_whole(t), "t is not a whole number in [0, 2**53)"),
            (("n",), ~np.isnan(n) & ~_whole(n), "n is out of range (a whole number in [0, 2**53))"),
            (("v",), ~np.isnan(v) & ~((v >= 0) & (v < MAX_VOLUME)), "v is out of range ([0, 1e18))"),
            (("vw",), ~np.isnan(vw) & ~((vw > 0) & (vw < MAX_PRICE)), "vw is out of range ((0, 1e12))"),
            (_PRICES, ~finite, "price is not a finite number"),
            (_PRICES, finite & (prices <= 0).any(axis=0), "price is zero or negative"),
            (_PRICES, finite & (prices >= MAX_PRICE).any(axis=0), "price is out of range (at least 1e12)"),
        ]
    for names, mask, reason in checks:
        for i in np.flatnonzero(mask).tolist():
            reasons = out.setdefault(i, [])
            # a value already named (null, missing, not a number) needs no second reason
            if not any(r.split(" ", 1)[0] in names for r in reasons):
                reasons.append(reason)
    return out


_PRICES = ("o", "c", "h", "l", "price")


def _all_clean(m: Matrix) -> bool:
    """True when no bar of ``m`` can fail a check of :func:`screen` (the usual page): a few
    reductions over the whole page instead of a mask per check. NaN in a price or ``t`` reaches
    ``min``/``max`` and fails the comparison; ``fmin``/``fmax`` skip the NaN allowed in
    ``v``/``vw``/``n`` (all NaN gives NaN, read as clean)."""
    prices, t = m[2:6], m[6]
    if not (prices.min() > 0 and prices.max() < MAX_PRICE and t.min() >= 0 and t.max() < MAX_EXACT):
        return False
    if not bool((np.floor(t) == t).all()):
        return False
    for row, low_ok, high in ((m[0], _ge0, MAX_VOLUME), (m[1], _gt0, MAX_PRICE), (m[7], _ge0, MAX_EXACT)):
        lo, hi = np.fmin.reduce(row), np.fmax.reduce(row)
        if lo != lo:  # every value NaN (missing): allowed
            continue
        if not (low_ok(lo) and hi < high):
            return False
    n = m[7]
    with np.errstate(invalid="ignore"):
        return bool((np.isnan(n) | (np.floor(n) == n)).all())


def _ge0(x: float) -> bool:
    return bool(x >= 0)


def _gt0(x: float) -> bool:
    return bool(x > 0)


def _whole(x: Matrix) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        ok: npt.NDArray[np.bool_] = (
            np.isfinite(x) & (x >= 0) & (x < MAX_EXACT) & (np.floor(x) == x))
    return ok


def to_int(x: Matrix, missing: int) -> npt.NDArray[np.int64]:
    """``x`` as int64 without wrapping: values outside ``[0, 2**53)`` or not whole become ``missing``."""
    return np.where(_whole(x), x, float(missing)).astype(np.int64)


OUTSIDE_RANGE = "bars outside the requested range (dropped)"
VW_OUTSIDE = "vw outside [l, h] (kept)"
N_MISSING = "n missing (kept as missing)"


def page_notes(batch: BarBatch, start_ms: int, end_ms: int) -> dict[str, int]:
    """What a served page holds that is kept or dropped but not refused, counted for the run report:
    bars outside the requested ``[start_ms, end_ms)``, ``vw`` outside ``[l, h]``, and ``n`` missing
    where ``v`` is not (index bars carry neither)."""
    if not len(batch):
        return {}
    vw, h, lo = batch.vw, batch.h, batch.l
    with np.errstate(invalid="ignore"):
        tol = 1e-9 * np.abs(h)
        wide = int(np.count_nonzero(~np.isnan(vw) & ((vw < lo - tol) | (vw > h + tol))))
    outside = int(np.count_nonzero((batch.t < start_ms) | (batch.t >= end_ms)))
    n_missing = int(np.count_nonzero((batch.n < 0) & ~np.isnan(batch.v)))
    out: dict[str, int] = {}
    for name, count in ((OUTSIDE_RANGE, outside), (VW_OUTSIDE, wide), (N_MISSING, n_missing)):
        if count:
            out[name] = count
    return out

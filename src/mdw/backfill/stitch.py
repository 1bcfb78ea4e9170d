"""Stitched reads: one security's bars across its ticker changes, asked for by today's ticker.

Bars are stored under the ticker the vendor used at the time, so a company that changed its
ticker has its history under two names. A stitched read looks the security up in the reference
data (by its latest ticker, composite FIGI or CIK), reads each ticker over the days it was that
security's ticker, and concatenates them in time order; the change points travel with the answer
(``mdw.stitch`` metadata, ``X-Stitch-Changes`` header, stderr). The parts are disjoint in time,
so keyset paging on ``t`` works across a change as it does within one ticker.

Stitched reads are raw (``adjust=none``): a split made under the new ticker would have to be
carried back to the bars of the old one, which the per-ticker corporate actions do not say.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from mdw.backfill.answer import Coverage
from mdw.backfill.planner import uncovered
from mdw.domain import (
    AssetClass,
    BarBatch,
    RangeSet,
    Ticker,
    Timeframe,
    TimeRange,
    local_midnight_ms,
    parse_ticker,
)
from mdw.errors import NotStoredError, UsageError
from mdw.store.base import Dataset, Store

_FIGI_RE = re.compile(r"^BBG[0-9A-Z]{9}$")
_CIK_RE = re.compile(r"^[0-9]{1,10}$")


def ident(text: str) -> Ticker:
    """What a stitched read names: a ticker, a composite FIGI (``BBG...``) or a CIK (digits).

    Raises:
        UsageError: none of the three.
    """
    raw = text.strip()
    if _FIGI_RE.fullmatch(raw) or _CIK_RE.fullmatch(raw):
        return Ticker(raw, AssetClass.STOCKS)
    return parse_ticker(raw)


@dataclass(frozen=True, slots=True)
class Part:
    """One ticker of the security, over the part of the read's range it named the security."""

    ticker: str
    rng: TimeRange
    first: date  # the ticker's listed days (valid_from .. valid_to), as reference data says
    last: date | None


@dataclass(frozen=True, slots=True)
class Change:
    """The security took ``new`` on ``day`` (its first day under it) after ``old``."""

    day: date
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.day.isoformat()} {self.old}>{self.new}"


@dataclass(frozen=True, slots=True)
class Stitched:
    """A stitched read's plan: the ticker asked for, its security's tickers in time, the changes."""

    ident: str
    ticker: str  # the latest ticker: the name the stitched bars are labelled with
    parts: tuple[Part, ...]
    changes: tuple[Change, ...]

    def to_dict(self) -> dict[str, object]:
        """The metadata form (JSON-safe)."""
        return {
            "ident": self.ident, "ticker": self.ticker,
            "parts": [{"ticker": p.ticker, "start_ms": p.rng.start_ms, "end_ms": p.rng.end_ms,
                       "listed_from": p.first.isoformat(),
                       "listed_to": p.last.isoformat() if p.last else None} for p in self.parts],
            "changes": [{"date": c.day.isoformat(), "from": c.old, "to": c.new} for c in self.changes],
        }

    def header(self) -> str:
        """``2024-12-06 PVQ>PVQF,...``: the changes, for an HTTP header or a line on stderr."""
        return ",".join(str(c) for c in self.changes)


def _clip(first: date, last: date | None, rng: TimeRange, asset: AssetClass) -> TimeRange | None:
    lo = max(rng.start_ms, local_midnight_ms(first, asset.tz))
    after = None if last is None else local_midnight_ms(last + timedelta(days=1), asset.tz)
    hi = rng.end_ms if after is None else min(rng.end_ms, after)
    return TimeRange(lo, hi) if lo < hi else None


async def plan_stitch(store: Store, ident: str, asset: AssetClass, rng: TimeRange) -> Stitched:
    """The tickers to read for ``ident`` (a ticker, composite FIGI or CIK) over ``rng``.

    Raises:
        UsageError: an adjusted read was asked for (see the module's note).
        NotStoredError: the reference data knows nothing of ``ident`` (refresh it with
            ``mdw reference refresh``).
    """
    history = await store.reference.history(ident)
    if not history:
        hint = ("no reference data is stored: run `mdw reference refresh`"
                if not await store.reference.refreshes() else "not in the stored reference data")
        raise NotStoredError(f"cannot stitch {ident}: {hint}")
    parts: list[Part] = []
    changes: list[Change] = []
    for prev, x in zip([None, *history[:-1]], history, strict=True):
        if prev is not None and prev.ticker != x.ticker:
            changes.append(Change(x.valid_from, prev.ticker, x.ticker))
        span = _clip(x.valid_from, x.valid_to, rng, asset)
        if span is not None:
            parts.append(Part(x.ticker, span, x.valid_from, x.valid_to))
    return Stitched(ident, history[-1].ticker, tuple(parts), tuple(changes))


def refuse_adjusted(adjust: str) -> None:
    """Stitched reads are raw.

    Raises:
        UsageError: ``adjust`` is not ``none``.
    """
    if adjust != "none":
        raise UsageError("stitched reads are unadjusted: use adjust=none with stitch")


async def require_stored(store: Store, stitched: Stitched, tf: Timeframe) -> None:
    """At least one of the security's tickers holds ``tf`` bars (or was fetched and found empty).

    Raises:
        NotStoredError: none does.
    """
    for p in stitched.parts:
        if await store.coverage(p.ticker, Dataset.BARS, str(tf)):
            return
    names = ", ".join(dict.fromkeys(p.ticker for p in stitched.parts)) or stitched.ticker
    raise NotStoredError(f"no {tf} bars stored for {names} (the tickers of {stitched.ident} in the range)")


async def coverage(store: Store, stitched: Stitched, tf: Timeframe, rng: TimeRange, now_ms: int,
                   asset: AssetClass) -> Coverage:
    """How much of the stitched range is held: each part's ticker over its own days."""
    covered = 0
    gaps = RangeSet()
    for p in stitched.parts:
        held = await store.coverage(p.ticker, Dataset.BARS, str(tf))
        covered += held.clip(p.rng).total_ms
        past = TimeRange(p.rng.start_ms, max(p.rng.start_ms, min(p.rng.end_ms, now_ms)))
        if past.end_ms > past.start_ms:
            gaps = gaps.union(uncovered(asset, tf, past, held))
    return Coverage(stitched.ticker, str(tf), rng.start_ms, rng.end_ms, covered, gaps)


async def iter_stitched(
    store: Store, parts: Sequence[Part], tf: Timeframe, start_ms: int, end_ms: int, *,
    label: str, chunk: int = 100_000,
) -> AsyncIterator[BarBatch]:
    """The parts' stored bars within ``[start_ms, end_ms)``, in time order, labelled ``label``."""
    for p in parts:
        lo, hi = max(start_ms, p.rng.start_ms), min(end_ms, p.rng.end_ms)
        if lo >= hi:
            continue
        async for batch in store.iter_bars(p.ticker, tf, lo, hi, chunk=chunk):
            yield BarBatch.from_columns(label, tf, batch.columns(), batch.source)

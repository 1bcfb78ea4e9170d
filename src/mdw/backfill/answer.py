"""What a read could not answer: unknown tickers, partly held ranges, missing corporate actions.

Every read (``mdw export``, ``GET /v1/bars``, ``wh.bars``) goes through these checks, so the three
interfaces fail and report the same way:

* a ticker the store has never heard of, or a timeframe it never stored for a known ticker, is a
  :class:`~mdw.errors.NotStoredError` naming what is close (a did-you-mean) and what is held;
* a range held only in part is answered with what is held plus a :class:`Coverage` (on stderr,
  in ``df.attrs``, in headers and schema metadata); ``strict`` turns it into an
  :class:`~mdw.errors.IncompleteError`;
* an adjusted read needs the ticker's splits (and dividends for ``all``) fetched over the range:
  the ledger records which ranges of corporate actions were fetched, and
  :func:`missing_actions` says which are not.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date

from mdw.backfill.planner import uncovered
from mdw.domain import DAY_MS, AssetClass, RangeSet, Ticker, Timeframe, TimeRange, from_ms, to_ms
from mdw.errors import IncompleteError, NotStoredError
from mdw.store.base import Dataset, Store

_GAPS_SHOWN = 50
_EVER_MS = 4_102_444_800_000  # 2100-01-01


def _day(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class Coverage:
    """How much of a requested range the store holds for one series.

    ``gaps`` are the tradable parts of the range (up to now) that are not held; closed markets and
    the future are never a gap. ``actions_as_of`` is the last day the corporate actions used for an
    adjusted read were fetched through (None for raw reads).
    """

    ticker: str
    timeframe: str
    start_ms: int
    end_ms: int
    covered_ms: int
    gaps: RangeSet
    adjust: str = "none"
    actions_as_of: date | None = None

    @property
    def missing_ms(self) -> int:
        return self.gaps.total_ms

    @property
    def complete(self) -> bool:
        return not self.gaps

    @property
    def ratio(self) -> float:
        expected = self.covered_ms + self.missing_ms
        return round(self.covered_ms / expected, 6) if expected else 1.0

    def describe(self) -> str:
        """One line for a human: what is missing of the range (or that it is complete)."""
        head = f"{self.ticker} {self.timeframe} {_day(self.start_ms)}..{_day(self.end_ms)} UTC"
        if self.complete:
            return f"{head}: complete"
        first = next(iter(self.gaps))
        more = f" and {len(self.gaps) - 1} more" if len(self.gaps) > 1 else ""
        return (f"{head}: partial, {self.ratio:.1%} held; missing {_day(first.start_ms)}.."
                f"{_day(first.end_ms)} UTC{more} (fetch it with mdw backfill)")

    def to_dict(self) -> dict[str, object]:
        """The metadata form (JSON-safe): in ``df.attrs``, Arrow metadata and HTTP bodies."""
        return {
            "ticker": self.ticker, "timeframe": self.timeframe, "adjust": self.adjust,
            "start_ms": self.start_ms, "end_ms": self.end_ms, "covered_ms": self.covered_ms,
            "missing_ms": self.missing_ms, "complete": self.complete, "ratio": self.ratio,
            "gaps": [[g.start_ms, g.end_ms] for g in list(self.gaps)[:_GAPS_SHOWN]],
            "gap_count": len(self.gaps),
            "actions_as_of": self.actions_as_of.isoformat() if self.actions_as_of else None,
        }


async def known_tickers(store: Store) -> list[str]:
    """Every ticker the store knows: tracked symbols and series with a ledger entry."""
    names = {s.ticker for s in await store.symbols.all()}
    names.update(e.ticker for e in await store.catalog.ledger())
    return sorted(names)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """`` Did you mean AAPL?`` for the closest known names (case-insensitive), or ``""``.

    Names that differ from ``name`` only in case all come first (``kimpl``: ``KIMPL, KIMpL``):
    the vendor's tickers are case-sensitive, so each is a different security.
    """
    by_upper: dict[str, list[str]] = {}
    for c in dict.fromkeys(candidates):
        if c != name:
            by_upper.setdefault(c.upper(), []).append(c)
    close = difflib.get_close_matches(name.upper(), list(by_upper), n=3, cutoff=0.6)
    names = [c for key in close for c in sorted(by_upper[key])]
    return f" Did you mean {', '.join(names[:5])}?" if names else ""


async def require_series(store: Store, tk: Ticker, tf: Timeframe) -> None:
    """Check that the store knows the ticker and holds some bars of this timeframe for it.

    Raises:
        NotStoredError: the ticker is unknown (with a did-you-mean), or none of its ``tf`` bars
            were ever stored (naming the timeframes that are).
    """
    symbol = tk.symbol
    # Cheap checks first: every read makes this one, and counting a series' bars scans them all.
    entries = [e for e in await store.catalog.ledger(symbol) if e.dataset is Dataset.BARS]
    if any(e.timeframe == str(tf) for e in entries):
        return  # fetched (maybe confirmed empty): a known series, answered by its coverage
    if await _any_bar(store, symbol, tf):
        return  # bars held without a ledger range of their own (whole-market days)
    stats = await store.catalog.series(symbol)
    tracked = await store.symbols.get(symbol)
    held = sorted({s.timeframe for s in stats if s.bars} | {e.timeframe for e in entries},
                  key=lambda t: Timeframe.parse(t).sort_key())
    if held:
        raise NotStoredError(f"no {tf} bars stored for {symbol}; stored timeframes: {', '.join(held)}"
                             f" (fetch {tf} with mdw backfill -s {symbol} -t {tf})")
    if tracked is not None:
        raise NotStoredError(f"{symbol} is tracked but no bars are stored yet"
                             f" (fetch them with mdw backfill -s {symbol} -t {tf})")
    hint = did_you_mean(symbol, await known_tickers(store))
    raise NotStoredError(f"unknown ticker {symbol!r}: nothing is stored under it.{hint}".rstrip("."))


async def _any_bar(store: Store, symbol: str, tf: Timeframe) -> bool:
    """Whether one bar of the series is stored (a one-row keyset read, not a count)."""
    chunks = store.iter_bars(symbol, tf, 0, _EVER_MS, chunk=1)
    try:
        async for chunk in chunks:
            return len(chunk) > 0
        return False
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def coverage_of(store: Store, tk: Ticker, tf: Timeframe, rng: TimeRange, now_ms: int) -> Coverage:
    """What the store holds of ``rng`` (the part after ``now_ms`` is never missing)."""
    held = await store.coverage(tk.symbol, Dataset.BARS, str(tf))
    past = TimeRange(rng.start_ms, max(rng.start_ms, min(rng.end_ms, now_ms)))
    gaps = uncovered(tk.asset_class, tf, past, held) if past.end_ms > past.start_ms else RangeSet()
    return Coverage(tk.symbol, str(tf), rng.start_ms, rng.end_ms, held.clip(rng).total_ms, gaps)


def require_complete(cov: Coverage) -> None:
    """``strict``: a partial answer is an error.

    Raises:
        IncompleteError: the range is held only in part.
    """
    if not cov.complete:
        raise IncompleteError(f"strict read refused: {cov.describe()}", cov.to_dict())


def actions_needed(adjust: str) -> tuple[Dataset, ...]:
    """The corporate-action datasets an adjusted read needs."""
    if adjust == "splits":
        return (Dataset.SPLITS,)
    if adjust == "all":
        return (Dataset.SPLITS, Dataset.DIVIDENDS)
    return ()


def actions_span(rng: TimeRange, now_ms: int) -> TimeRange:
    """The UTC days of corporate actions an adjusted read of ``rng`` needs: its first day up to the
    earlier of its end and today (the corporate-action endpoints filter by date)."""
    first = to_ms(from_ms(rng.start_ms).date())
    last = to_ms(from_ms(min(rng.end_ms, now_ms)).date())
    return TimeRange(first, max(first + DAY_MS, last))


async def missing_actions(store: Store, tk: Ticker, adjust: str, rng: TimeRange,
                          now_ms: int) -> tuple[list[Dataset], date | None]:
    """Which corporate actions an adjusted read lacks over ``rng``, and the day they are held to.

    Only stocks have corporate actions; other asset classes need none.
    """
    if tk.asset_class is not AssetClass.STOCKS:
        return [], None
    span = actions_span(rng, now_ms)
    lacking: list[Dataset] = []
    ends: list[int] = []
    for dataset in actions_needed(adjust):
        held = await store.coverage(tk.symbol, dataset)
        if RangeSet.of([span]) - held:
            lacking.append(dataset)
        mine = [r for r in held if r.start_ms <= span.start_ms < r.end_ms]
        ends.append(mine[0].end_ms if mine else span.start_ms)
    as_of = from_ms(min(ends) - 1).date() if ends and not lacking else None
    return lacking, as_of


def actions_refusal(tk: Ticker, adjust: str, lacking: list[Dataset], rng: TimeRange) -> IncompleteError:
    """The error of an adjusted read without its corporate actions, saying how to fetch them."""
    kinds = " and ".join(d.value for d in lacking)
    day = from_ms(rng.start_ms).date().isoformat()
    kind = "all" if len(lacking) > 1 else lacking[0].value
    return IncompleteError(
        f"adjust={adjust} needs the {kinds} of {tk.symbol} from {day}, which were never fetched;"
        f" fetch them with mdw corporate-actions -s {tk.symbol} --kind {kind} --start {day}"
        " (or configure a vendor key so adjusted reads fetch them), or read with adjust=none")

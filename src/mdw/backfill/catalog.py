"""Universe definitions as the CLI, HTTP and Python API take them: define, list, show, remove.

One module parses the user's words (``--type CS,ETF``, ``--strikes ATM±20`` ...) into a
:class:`~mdw.backfill.universe.UniverseSpec`, so the three front ends refuse the same bad input
with the same message. Showing a universe reads only the store (no vendor call): its members on
a day come from the reference data the last refresh stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdw.backfill.reference import ReferenceSource, RefreshResult, refresh_contracts, refresh_tickers
from mdw.backfill.universe import OptionsSpec, UniverseSpec, check_name, parse_strikes, resolve
from mdw.errors import UsageError
from mdw.store.base import Store
from mdw.store.refdata import ListingFilter, UniverseRecord

if TYPE_CHECKING:
    from mdw.backfill.plan import BackfillSpec

MAX_TICKERS_FILE = 100_000  # a tickers file longer than this is not a list someone meant


def _words(text: str | Iterable[str] | None, upper: bool = False) -> tuple[str, ...]:
    """``"CS, ETF"`` or ``["CS", "ETF"]`` as ``("CS", "ETF")``; order kept, duplicates dropped."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    words = [p.strip().upper() if upper else p.strip() for p in parts]
    return tuple(dict.fromkeys(w for w in words if w))


def read_tickers_file(path: str | Path) -> tuple[str, ...]:
    """Tickers from a file: one or more per line (comma or blank separated), ``#`` starts a comment.

    Raises:
        UsageError: the file cannot be read, is empty, or is absurdly long.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --tickers-file {str(path)!r}: {exc}") from None
    out: list[str] = []
    for line in text.splitlines():
        out += line.split("#", 1)[0].replace(",", " ").split()
    if not out:
        raise UsageError(f"--tickers-file {str(path)!r} holds no ticker")
    if len(out) > MAX_TICKERS_FILE:
        raise UsageError(f"--tickers-file {str(path)!r} holds {len(out):,} tickers "
                         f"(at most {MAX_TICKERS_FILE:,})")
    return tuple(dict.fromkeys(out))


def define_spec(
    *, market: str | Sequence[str] | None = "stocks", types: str | Sequence[str] | None = None,
    exchanges: str | Sequence[str] | None = None, active_on: date | str | None = None,
    tickers: Sequence[str] = (), include_delisted: bool = True, underlying: str | None = None,
    expiry: str | None = None, strikes: str | int | None = None,
) -> UniverseSpec:
    """The definition the user's words describe.

    Raises:
        UsageError: a bad value, or options flags without their partner (``--underlying`` and
            ``--expiry`` go together; ``--strikes`` needs them).
    """
    if isinstance(active_on, str):
        try:
            active_on = date.fromisoformat(active_on)
        except ValueError:
            raise UsageError(f"invalid --active-on {active_on!r}: expected YYYY-MM-DD") from None
    options = None
    if underlying or expiry:
        if not (underlying and expiry):
            raise UsageError("an options universe needs both --underlying and --expiry")
        if tickers or types or exchanges or active_on:
            raise UsageError("an options universe takes --underlying, --expiry and --strikes only")
        n = strikes if isinstance(strikes, int) else parse_strikes(strikes)
        if n is not None and n < 1:
            raise UsageError("--strikes ATM±N needs N of at least 1")
        options = OptionsSpec(underlying.strip().upper(), expiry.strip(), n)
    elif strikes:
        raise UsageError("--strikes needs --underlying and --expiry")
    markets = _words(market) or ("stocks",)
    return UniverseSpec(markets=tuple(m.lower() for m in markets), types=_words(types, upper=True),
                        exchanges=_words(exchanges, upper=True), tickers=tuple(tickers),
                        active_on=active_on, include_delisted=include_delisted, options=options)


async def define(store: Store, name: str, spec: UniverseSpec) -> UniverseRecord:
    """Create or replace universe ``name`` (a replaced one keeps its backfill history)."""
    old = await store.universes.get(check_name(name))
    body = spec.to_json()
    if old is not None and "backfill" in old.spec:
        body["backfill"] = old.spec["backfill"]
    return await store.universes.save(name, body)


async def remove(store: Store, name: str) -> None:
    """Forget universe ``name`` (its bars stay: they belong to their tickers).

    Raises:
        UsageError: no universe of that name.
    """
    if not await store.universes.delete(check_name(name)):
        raise UsageError(f"no universe named {name!r}")


async def record(store: Store, name: str) -> UniverseRecord:
    """The stored universe ``name``.

    Raises:
        UsageError: no universe of that name (the message lists some known ones).
    """
    found = await store.universes.get(check_name(name))
    if found is None:
        known = [u.name for u in await store.universes.all()]
        hint = f"; known: {', '.join(known[:10])}" if known else "; define one with `mdw universe define`"
        raise UsageError(f"no universe named {name!r}{hint}")
    return found


async def remember_backfill(store: Store, name: str, timeframes: Sequence[str], start: date) -> None:
    """Note on the universe what was backfilled, so ``update --universe`` knows what to keep current."""
    found = await store.universes.get(name)
    if found is None:
        return
    body = dict(found.spec)
    old = body.get("backfill") if isinstance(body.get("backfill"), dict) else {}
    assert isinstance(old, dict)
    tfs = list(dict.fromkeys([*old.get("timeframes", []), *timeframes]))
    first = min(start, date.fromisoformat(old["start"])) if old.get("start") else start
    body["backfill"] = {"timeframes": tfs, "start": first.isoformat()}
    await store.universes.save(name, body)


@dataclass(frozen=True, slots=True)
class UniverseView:
    """A universe as ``show`` prints it: its definition and its members on one day."""

    name: str
    definition: dict[str, Any]
    on: date
    members: list[str]
    refreshed_at_ms: int | None  # when the reference data it was resolved from was refreshed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "definition": self.definition, "on": self.on.isoformat(),
                "member_count": len(self.members), "members": self.members,
                "reference_refreshed_at_ms": self.refreshed_at_ms}


async def _refreshed(store: Store, kind: str) -> int | None:
    return next((r.refreshed_at_ms for r in await store.reference.refreshes() if r.kind == kind), None)


async def show(store: Store, name: str, on: date, today: date) -> UniverseView:
    """The universe's members on day ``on``, from the stored reference data (no vendor call).

    Raises:
        UsageError: unknown universe, or no reference data stored yet.
    """
    rec = await record(store, name)
    spec = UniverseSpec.from_json(rec.spec)
    if spec.options is not None:
        lo, hi = spec.options.expiry_days()
        contracts = await store.reference.contracts(spec.options.underlying, lo, hi)
        kind = f"options:{spec.options.underlying}"
        live = [c.ticker for c in contracts if c.expiration_date >= on]
        return UniverseView(name, rec.spec, on, live, await _refreshed(store, kind))
    refreshed = await _refreshed(store, "tickers")
    if refreshed is None:
        raise UsageError("no reference data stored yet: run `mdw reference refresh` (or a backfill)")
    candidates = await store.reference.listings(spec.listing_filter(on, on))
    related = await store.reference.listings(ListingFilter(first=on, last=on)) if spec.tickers else []
    found = resolve(spec, candidates, on, on, today, related=related)
    return UniverseView(name, rec.spec, on, sorted({m.ticker.symbol for m in found.members}), refreshed)


async def size_over_time(store: Store, name: str, first: date, last: date, points: int = 60,
                         today: date | None = None) -> list[tuple[date, int]]:
    """The universe's member count on ``points`` days spread evenly over ``[first, last]``."""
    rec = await record(store, name)
    spec = UniverseSpec.from_json(rec.spec)
    step = max(1, ((last - first).days + 1) // max(1, points))
    days = [first + timedelta(days=i) for i in range(0, (last - first).days + 1, step)]
    if days and days[-1] != last:
        days.append(last)
    if spec.options is not None:
        lo, hi = spec.options.expiry_days()
        contracts = await store.reference.contracts(spec.options.underlying, lo, hi)
        return [(d, sum(1 for c in contracts if c.expiration_date >= d)) for d in days]
    candidates = await store.reference.listings(spec.listing_filter(first, last))
    related = await store.reference.listings(ListingFilter(first=first, last=last)) if spec.tickers else []
    found = resolve(spec, candidates, first, last, today or last, related=related)
    # each member comes clipped to its listed days: a day's size is the members alive that day
    return [(d, sum(1 for m in found.members if m.first <= d <= m.last)) for d in days]


async def refresh_reference(
    store: Store, client: ReferenceSource, today: date
) -> dict[str, RefreshResult | int]:
    """Refresh the tickers, and the chain of every options universe (contracts list and expire daily)."""
    out: dict[str, RefreshResult | int] = {"tickers": await refresh_tickers(store, client, today=today)}
    for rec in await store.universes.all():
        spec = UniverseSpec.from_json(rec.spec)
        if spec.options is None:
            continue
        lo, hi = spec.options.expiry_days()
        found = await refresh_contracts(store, client, spec.options.underlying, lo, hi, today=today)
        out[f"options:{spec.options.underlying}:{spec.options.expiry}"] = len(found)
    return out


async def refresh_if_stale(store: Store, client: ReferenceSource, today: date, days: int) -> bool:
    """Refresh the reference data when its last refresh is ``days`` or more days old (or never ran)."""
    import time

    at = await _refreshed(store, "tickers")
    if at is not None and (time.time() * 1000 - at) < days * 86_400_000:
        return False
    await refresh_reference(store, client, today)
    return True


async def update_template(store: Store, name: str, today: date, default_days: int) -> BackfillSpec:
    """What ``mdw update --universe NAME`` asks for: the universe's backfilled timeframes from its
    first backfilled day (else daily bars over ``default_days``), up to today."""
    from mdw.backfill.plan import BackfillSpec
    from mdw.domain import parse_timeframes
    from mdw.store.base import RunKind

    rec = await record(store, name)
    done = rec.spec.get("backfill") if isinstance(rec.spec.get("backfill"), dict) else {}
    assert isinstance(done, dict)
    tfs = [str(t) for t in done.get("timeframes", [])] or ["1d"]
    start = date.fromisoformat(done["start"]) if done.get("start") else today - timedelta(days=default_days)
    return BackfillSpec((), tuple(parse_timeframes(tfs)), start, today, kind=RunKind.UPDATE)


@dataclass(frozen=True, slots=True)
class UniverseCoverage:
    """How much of a universe's backfilled range the store holds, per timeframe.

    ``members`` counts the tickers listed at some time between the first backfilled day and
    ``last``; ``complete`` those whose every tradable moment while listed is held, ``partial``
    those holding some of it. ``ratio`` is the held share of all members' tradable time.
    """

    name: str
    timeframe: str
    first: date
    last: date
    members: int
    complete: int
    partial: int
    ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {"universe": self.name, "timeframe": self.timeframe, "first": self.first.isoformat(),
                "last": self.last.isoformat(), "members": self.members, "complete": self.complete,
                "partial": self.partial, "missing": self.members - self.complete - self.partial,
                "ratio": self.ratio}


async def coverage(
    store: Store, today: date, *, first: date | None = None, last: date | None = None,
    timeframes: Sequence[str] = (),
) -> list[UniverseCoverage]:
    """Coverage of every universe, from the stored reference data and one read of the whole ledger.

    By default each backfilled universe over its backfilled timeframes, from its first backfilled
    day to ``today``; with ``first`` every universe over ``[first, last or today]`` at
    ``timeframes`` (else its backfilled ones, else ``1d``).
    """
    from collections import defaultdict

    from mdw.backfill.planner import uncovered
    from mdw.domain import RangeSet, Timeframe, TimeRange, day_range_ms, parse_ticker
    from mdw.store.base import Dataset

    held: dict[tuple[str, str], list[TimeRange]] = defaultdict(list)
    for e in await store.catalog.ledger():
        if e.dataset is Dataset.BARS:
            held[(e.ticker, e.timeframe)].append(TimeRange(e.start_ms, e.end_ms))
    out: list[UniverseCoverage] = []
    for rec in await store.universes.all():
        done = rec.spec.get("backfill") if isinstance(rec.spec.get("backfill"), dict) else {}
        assert isinstance(done, dict)
        if first is None and not done.get("start"):
            continue
        spec = UniverseSpec.from_json(rec.spec)
        lo_day = first or date.fromisoformat(str(done["start"]))
        hi_day = min(last or today, today)
        if spec.options is not None:
            lo, hi = spec.options.expiry_days()
            contracts = await store.reference.contracts(spec.options.underlying, lo, hi)
            spans = [(c.ticker, lo_day, min(hi_day, c.expiration_date)) for c in contracts]
        else:
            candidates = await store.reference.listings(spec.listing_filter(lo_day, hi_day))
            related = (await store.reference.listings(ListingFilter(first=lo_day, last=hi_day))
                       if spec.tickers else [])
            found = resolve(spec, candidates, lo_day, hi_day, today, related=related)
            spans = [(m.ticker.symbol, m.first, m.last) for m in found.members]
        for tf_text in (timeframes or done.get("timeframes") or ["1d"]):
            tf = Timeframe.parse(str(tf_text))
            complete = partial = 0
            want_ms = have_ms = 0
            for ticker, lo_day, hi_day in spans:
                if hi_day < lo_day:
                    continue
                asset = parse_ticker(ticker).asset_class
                rng = day_range_ms(lo_day, hi_day, asset.tz)
                got = RangeSet.of(held.get((ticker, str(tf)), []))
                missing = uncovered(asset, tf, rng, got).total_ms
                have = got.clip(rng).total_ms
                want_ms += have + missing
                have_ms += have
                if not missing:
                    complete += 1
                elif have:
                    partial += 1
            ratio = round(have_ms / want_ms, 6) if want_ms else 1.0
            out.append(UniverseCoverage(rec.name, str(tf), lo_day, hi_day, len(spans), complete, partial,
                                        ratio))
    return out

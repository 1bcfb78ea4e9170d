"""Named universes: what a definition says, and which tickers it holds on which days.

A universe is resolved *as of each date* of a range: a ticker is a member on the days it was
listed and matched the definition, so a 2015-2020 backfill holds a name delisted in 2018 up to
its delisting and a name listed in 2019 from its listing (no survivorship bias). Each member
comes with the days of the range it was listed, and the backfill asks for exactly those.

Options universes name one underlying's chain: ``--underlying SPY --expiry 2024-12`` is every
contract expiring in December 2024; ``--strikes ATM±20`` keeps, per expiry, the 20 strikes on
each side of the one nearest the underlying's close on the last session before the backfill's
first day (see :func:`atm_strikes`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mdw.domain import AssetClass, Ticker
from mdw.errors import UsageError
from mdw.store.refdata import ListingFilter, OptionContract, TickerListing

MARKETS = ("stocks", "otc", "crypto", "fx")
_ASSET = {"stocks": AssetClass.STOCKS, "otc": AssetClass.STOCKS, "crypto": AssetClass.CRYPTO,
          "fx": AssetClass.FOREX}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STRIKES_RE = re.compile(r"^ATM\s*(?:±|\+-|\+/-|\+-)\s*(\d{1,4})$", re.IGNORECASE)
_EXPIRY_RE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def check_name(name: str) -> str:
    """A universe name: letters, digits, ``_ . -``, at most 64, starting with a letter or digit.

    Raises:
        UsageError: anything else.
    """
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"invalid universe name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
    return name


@dataclass(frozen=True, slots=True)
class OptionsSpec:
    """One underlying's chain: contracts expiring in ``expiry`` (a month or a day)."""

    underlying: str
    expiry: str
    strikes: int | None = None  # ATM±N: N strikes on each side of the money; None: all

    def expiry_days(self) -> tuple[date, date]:
        """The first and last expiration day the chain takes."""
        m = _EXPIRY_RE.fullmatch(self.expiry)
        if m is None:
            raise UsageError(f"invalid --expiry {self.expiry!r}: expected YYYY-MM or YYYY-MM-DD")
        year, month = int(m[1]), int(m[2])
        try:
            if m[3]:
                day = date(year, month, int(m[3]))
                return day, day
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        except ValueError:
            raise UsageError(f"invalid --expiry {self.expiry!r}: no such day") from None


def parse_strikes(text: str | None) -> int | None:
    """``ATM±20`` (also ``ATM+-20``) as 20; empty as None (every strike).

    Raises:
        UsageError: another form.
    """
    if not text:
        return None
    m = _STRIKES_RE.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"invalid --strikes {text!r}: expected ATM±N (or ATM+-N), e.g. ATM±20")
    return int(m[1])


@dataclass(frozen=True, slots=True)
class UniverseSpec:
    """A universe's definition; every empty filter matches everything.

    Attributes:
        markets: the vendor's markets (``stocks``, ``otc``, ``crypto``, ``fx``).
        types: the vendor's ticker types (``CS``, ``ETF``, ``ADRC``, ``PFD`` ...).
        exchanges: primary exchanges (MIC: ``XNAS``, ``XNYS`` ...).
        tickers: only these tickers (exact case), with the other tickers of their securities.
        active_on: only the securities listed on this day (with all their tickers).
        include_delisted: False keeps only securities still listed today (a screener's view,
            with survivorship bias); the default keeps every name on the days it was listed.
        options: an options chain instead of tickers.
    """

    markets: tuple[str, ...] = ("stocks",)
    types: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    active_on: date | None = None
    include_delisted: bool = True
    options: OptionsSpec | None = None

    def __post_init__(self) -> None:
        bad = [m for m in self.markets if m not in MARKETS]
        if bad:
            raise UsageError(f"unknown market {bad[0]!r}; expected one of {', '.join(MARKETS)}")
        if self.options is not None:
            self.options.expiry_days()  # a bad expiry fails at definition, not at the backfill

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"markets": list(self.markets), "types": list(self.types),
                               "exchanges": list(self.exchanges), "tickers": list(self.tickers),
                               "active_on": self.active_on.isoformat() if self.active_on else None,
                               "include_delisted": self.include_delisted}
        if self.options is not None:
            out["options"] = {"underlying": self.options.underlying, "expiry": self.options.expiry,
                              "strikes": self.options.strikes}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UniverseSpec:
        """The spec a stored definition describes.

        Raises:
            UsageError: the definition is not one this version understands.
        """
        try:
            opts = data.get("options")
            active = data.get("active_on")
            return cls(
                markets=tuple(str(x) for x in data.get("markets", ("stocks",))),
                types=tuple(str(x) for x in data.get("types", ())),
                exchanges=tuple(str(x) for x in data.get("exchanges", ())),
                tickers=tuple(str(x) for x in data.get("tickers", ())),
                active_on=date.fromisoformat(str(active)) if active else None,
                include_delisted=bool(data.get("include_delisted", True)),
                options=OptionsSpec(str(opts["underlying"]), str(opts["expiry"]),
                                    None if opts.get("strikes") is None else int(opts["strikes"]))
                if isinstance(opts, Mapping) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"unreadable universe definition: {exc}") from None

    def listing_filter(self, first: date, last: date) -> ListingFilter:
        """The store query that finds the candidates listed during ``[first, last]``.

        A ticker list is looked up over all time: a name given as today's ticker finds its
        security, whose earlier tickers join on their own days (see :func:`resolve`).
        """
        if self.tickers:
            return ListingFilter(markets=self.markets, types=self.types, exchanges=self.exchanges,
                                 tickers=self.tickers)
        return ListingFilter(markets=self.markets, types=self.types, exchanges=self.exchanges,
                             first=first, last=last)


@dataclass(frozen=True, slots=True)
class Member:
    """A ticker of a universe and the days of the range it is a member on (inclusive)."""

    ticker: Ticker
    first: date
    last: date
    composite_figi: str | None = None


@dataclass(slots=True)
class Resolution:
    """A universe over a range: its members, and what the definition asked for that was not found."""

    members: list[Member] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def spans(self) -> dict[str, tuple[date, date]]:
        """Each member ticker's days; a ticker listed twice in the range takes their hull."""
        out: dict[str, tuple[date, date]] = {}
        for m in self.members:
            old = out.get(m.ticker.symbol)
            out[m.ticker.symbol] = (m.first, m.last) if old is None else (min(old[0], m.first),
                                                                          max(old[1], m.last))
        return out


def _security(x: TickerListing) -> str:
    return x.composite_figi or f"ticker:{x.ticker}"


def resolve(
    spec: UniverseSpec, candidates: Iterable[TickerListing], first: date, last: date, today: date,
    *, related: Iterable[TickerListing] = (),
) -> Resolution:
    """The members of ``spec`` over ``[first, last]``: each candidate clipped to its listed days.

    Args:
        candidates: listings the store found for ``spec.listing_filter(first, last)``.
        related: for a ticker list, the other listings of the named securities (their other
            tickers), which join the universe on their own listed days.
        today: what "still listed" means for ``include_delisted=False``.
    """
    pool = [*candidates]
    if spec.tickers:
        named = {_security(x) for x in pool}
        pool += [x for x in related if _security(x) in named]
    if spec.active_on is not None:
        on = {_security(x) for x in pool if x.listed_on(spec.active_on)}
        pool = [x for x in pool if _security(x) in on]
    if not spec.include_delisted:
        alive = {_security(x) for x in pool if x.listed_on(today)}
        pool = [x for x in pool if _security(x) in alive]
    seen: set[tuple[str, date]] = set()
    members: list[Member] = []
    for x in sorted(pool, key=lambda x: (x.ticker, x.valid_from)):
        days = x.clip(first, last)
        if days is None or (x.ticker, x.valid_from) in seen:
            continue
        seen.add((x.ticker, x.valid_from))
        members.append(Member(Ticker(x.ticker, _ASSET.get(x.market, AssetClass.STOCKS)), days[0], days[1],
                              x.composite_figi))
    found = {x.ticker for x in pool}
    return Resolution(members, [t for t in spec.tickers if t not in found])


def sizes(listings: Sequence[TickerListing], days: Sequence[date]) -> list[int]:
    """How many of ``listings`` were listed on each of ``days`` (the universe's size over time)."""
    return [sum(1 for x in listings if x.listed_on(d)) for d in days]


def atm_strikes(contracts: Sequence[OptionContract], price: float, n: int) -> list[OptionContract]:
    """The contracts whose strike is among the ``n`` strikes on each side of the one nearest ``price``.

    Strikes are taken per expiration (each expiry has its own ladder), calls and puts alike.
    """
    out: list[OptionContract] = []
    by_expiry: dict[date, list[OptionContract]] = {}
    for c in contracts:
        by_expiry.setdefault(c.expiration_date, []).append(c)
    for group in by_expiry.values():
        ladder = sorted({c.strike_price for c in group})
        if not ladder:
            continue
        at = min(range(len(ladder)), key=lambda i: (abs(ladder[i] - price), ladder[i]))
        keep = set(ladder[max(0, at - n): at + n + 1])
        out.extend(c for c in group if c.strike_price in keep)
    return sorted(out, key=lambda c: c.ticker)

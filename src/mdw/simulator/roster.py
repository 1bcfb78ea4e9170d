"""The market's roster: every stock security the simulator can list, in one compact table per seed.

The first 300 securities are the *legacy* names (the ~150 real-looking stocks, 20 ETFs and 130
synthetic names the simulator always had): listed for the whole domain, never renamed, their
data unchanged. After them come up to 11,700 *market* securities drawn from the seed: common
stocks, ETFs, ADRs, preferreds (mixed-case tickers such as ``KIMpL``) and OTC names, each with a
listing date, perhaps a delisting, perhaps one ticker change, and a heavy-tailed liquidity (a few
hundred trade every minute, most in a small share of minutes, some a few times a day).

A universe of ``n_stocks`` is the first ``n_stocks`` securities, so a bigger universe only adds
names: a ticker's data never depends on ``n_stocks``. Building the table costs tens of
milliseconds once per process and seed; nothing else is computed per ticker until asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np

from mdw.simulator import sessions
from mdw.simulator.names import ETFS, REAL_STOCKS, company_name, stable_hash, synthetic_stocks

MAX_STOCKS = 12_000
MARKET_STOCKS = 8_000  # `mdw simulate`'s default: about 5,800 listed at the end of 2026
LEGACY_COUNT = 300
LAST_LISTING = date(2026, 10, 30)  # market securities list between 2000 and this day
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DOMAIN_FIRST = date(2000, 1, 3)  # the first session of the domain


@dataclass(frozen=True, slots=True)
class Listing:
    """One ticker's life as the symbol of one security.

    A renamed security has two listings sharing ``entity``: the old ticker up to the change
    (``end``), the new one from it (``start``).
    """

    ticker: str
    entity: int  # the security; its price path, FIGI and CIK belong to it, not to the ticker
    kind: str  # the vendor's `type`: CS, ETF, ADRC, PFD or OS
    market: str  # "stocks" or "otc"
    exchange: str | None  # primary exchange MIC; None for OTC names
    start: date  # the first day with bars under this ticker
    end: date | None  # the first day without bars (exclusive); None: listed through 2040
    list_date: date  # the security's listing date (the first ticker's, for a renamed one)
    name: str
    legacy: bool
    cik: str
    composite_figi: str
    share_class_figi: str
    base_price: float = 0.0  # market securities only; legacy ones take theirs from `profile`
    daily_vol: float = 0.0
    trades_per_min: float = 0.0
    trade_size: float = 0.0
    previous: str | None = None  # the ticker this one replaced
    following: str | None = None  # the ticker that replaced this one

    def listed_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def overlaps(self, first: date, last: date) -> bool:
        """Whether the ticker is listed on any day of ``[first, last]``."""
        return self.start <= last and (self.end is None or self.end > first)

    @property
    def last_day(self) -> date | None:
        """The last session this ticker traded (None while it is still listed)."""
        return None if self.end is None else sessions.last_session_before(self.end)


class Roster:
    """Every security of a seed, legacy first, then the market in drawing order.

    The market part (tens of milliseconds to build) is drawn on first use, so a simulator of
    the legacy names alone never pays for it.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.legacy = tuple(_legacy(seed))
        self._legacy_by_ticker = {r.ticker: r for r in self.legacy}
        self._built: _Index | None = None
        self._prefixes: dict[int, tuple[Listing, ...]] = {}

    @property
    def _index(self) -> _Index:
        if self._built is None:
            self._built = _Index([*self.legacy, *_market(self.seed)])
        return self._built

    @property
    def listings(self) -> tuple[Listing, ...]:
        """Every listing, grouped by security, ascending."""
        return self._index.listings

    def get(self, ticker: str) -> Listing | None:
        """The listing of a ticker (case-sensitive: ``KIMpL`` and ``KIMPL`` are two securities)."""
        row = self._legacy_by_ticker.get(ticker)
        return row if row is not None else self._index.by_ticker.get(ticker)

    def universe(self, n_stocks: int) -> tuple[Listing, ...]:
        """The listings of the first ``n_stocks`` securities (both tickers of a renamed one)."""
        cached = self._prefixes.get(n_stocks)
        if cached is None:
            cached = self._prefixes[n_stocks] = self._prefix(n_stocks)
        return cached

    def _prefix(self, n_stocks: int) -> tuple[Listing, ...]:
        if n_stocks <= LEGACY_COUNT:
            real = len(REAL_STOCKS) + len(ETFS)
            return self.legacy[:min(n_stocks, real)] + self.legacy[real:real + max(0, n_stocks - real)]
        index = self._index
        return index.listings[:int(np.searchsorted(index.entities, n_stocks, side="left"))]

    def of_entity(self, entity: int) -> tuple[Listing, ...]:
        """Every ticker the security has had, oldest first."""
        if entity < LEGACY_COUNT:
            return self.legacy[entity:entity + 1]
        return self._index.by_entity.get(entity, ())

    def by_figi(self, figi: str) -> tuple[Listing, ...]:
        return self._index.by_figi.get(figi, ())


class _Index:
    def __init__(self, listings: list[Listing]) -> None:
        self.listings = tuple(listings)
        self.by_ticker = {r.ticker: r for r in listings}
        by_entity: dict[int, list[Listing]] = {}
        for row in listings:
            by_entity.setdefault(row.entity, []).append(row)
        self.by_entity = {k: tuple(v) for k, v in by_entity.items()}
        self.by_figi = {v[0].composite_figi: v for v in self.by_entity.values()}
        self.entities = np.asarray([row.entity for row in listings], dtype=np.int64)


@functools.lru_cache(maxsize=8)
def roster(seed: int) -> Roster:
    """The roster of ``seed`` (one per process and seed)."""
    return Roster(seed)


def _ids(h: int) -> tuple[str, str, str]:
    return f"{h % 10**10:010d}", f"BBG{h % 10**9:09d}", f"BBG{(h >> 7) % 10**9:09d}"


def _legacy(seed: int) -> Iterator[Listing]:
    names = [*REAL_STOCKS, *ETFS, *synthetic_stocks(seed, LEGACY_COUNT - len(REAL_STOCKS) - len(ETFS))]
    for entity, ticker in enumerate(names):
        h = stable_hash("ticker", seed, ticker)
        etf = ticker in ETFS
        cik, figi, share = _ids(h)
        listed = date(1980 + h % 20, 1 + (h >> 5) % 12, 1 + (h >> 9) % 28)
        yield Listing(ticker, entity, "ETF" if etf else "CS", "stocks",
                      "ARCX" if etf else ("XNAS" if h % 2 else "XNYS"), _DOMAIN_FIRST, None, listed,
                      company_name(ticker), True, cik, figi, share)


# kind -> (share of securities, log10 trades/minute range, price range, daily vol range, trade size)
_KINDS: dict[str, tuple[float, tuple[float, float], tuple[float, float], tuple[float, float], float]] = {
    "CS": (0.66, (-2.6, 1.0), (1.0, 300.0), (0.012, 0.04), 150.0),
    "ETF": (0.11, (-2.2, 1.0), (10.0, 300.0), (0.006, 0.02), 150.0),
    "ADRC": (0.04, (-2.0, 0.7), (5.0, 120.0), (0.012, 0.03), 150.0),
    "PFD": (0.01, (-2.5, -0.5), (18.0, 28.0), (0.003, 0.008), 80.0),
    "OTC": (0.18, (-3.0, 0.3), (0.002, 15.0), (0.03, 0.09), 5000.0),
}
_EXCHANGES = {"CS": ("XNYS", "XNAS", "XNAS", "XNYS", "XASE"), "ETF": ("ARCX", "ARCX", "BATS", "XNAS"),
              "ADRC": ("XNYS", "XNAS"), "PFD": ("XNYS", "XNYS", "XNAS")}


@dataclass(frozen=True, slots=True)
class _Fixed:
    ticker: str
    kind: str
    exchange: str | None
    start: date
    last: date | None
    tpm: float
    price: float
    renamed: tuple[str, date] | None = None
    root: str | None = None


# The first market securities are fixed, so that docs and tests can name them: a preferred
# `KIMpL` beside a distinct common stock `KIMPL`, a ticker change, and a delisting.
_FIXED = (
    _Fixed("KIM", "CS", "XNYS", _DOMAIN_FIRST, None, 4.0, 20.0),
    _Fixed("KIMpL", "PFD", "XNYS", date(2017, 8, 14), None, 0.05, 23.0, root="KIM"),
    _Fixed("KIMPL", "CS", "XNAS", date(2021, 3, 1), None, 0.02, 8.0),
    _Fixed("ALFA", "CS", "XNAS", date(2010, 3, 1), None, 0.6, 40.0, renamed=("ALPH", date(2022, 6, 13))),
    _Fixed("GONE", "CS", "XNYS", date(2005, 5, 2), date(2019, 3, 29), 0.2, 12.0),
)


class _Names:
    """Distinct tickers: upper-case ones never collide case-insensitively with another name."""

    def __init__(self, seed: int, taken: set[str], count: int) -> None:
        self.rng = np.random.default_rng([seed, stable_hash("market-names")])
        self.taken = {t.upper() for t in taken}
        # one row of pre-drawn letters per security keeps the common case free of numpy calls
        letters = self.rng.integers(0, 26, (count, 6)).tolist()
        self.pool = ["".join(_LETTERS[i] for i in row) for row in letters]

    def claim(self, name: str) -> str:
        self.taken.add(name.upper())
        return name

    def draw(self, i: int, letters: int, prefix: str = "", suffix: str = "") -> str:
        """``prefix`` + ``letters`` capitals + ``suffix``, not yet taken in any case.

        Short names run out (there are 26 one-letter tickers), so every 20 misses add a letter.
        """
        name = prefix + self.pool[i][:letters] + suffix
        attempt = 0
        while name.upper() in self.taken:
            attempt += 1
            letters += attempt % 20 == 0
            name = prefix + self.pool[(i + 7919 * attempt) % len(self.pool)][:letters] + suffix
        return self.claim(name)


@dataclass(frozen=True, slots=True)
class _Draws:
    """Every random attribute of the market securities, drawn at once (one array per attribute)."""

    kind: list[str]
    tpm: list[float]
    price: list[float]
    vol: list[float]
    size: list[float]
    start: list[int]  # ordinal of the first session
    end: list[int]  # ordinal of the first day without bars; 0 = never delisted
    list_date: list[int]
    rename: list[int]  # ordinal of the ticker change; 0 = none
    pick: list[float]  # a uniform for choices (name length, exchange, preferred's root)
    pick2: list[float]


def _draw(seed: int, count: int) -> _Draws:
    rng = np.random.default_rng([seed, stable_hash("market-roster")])
    u = rng.random((12, count))
    kinds = list(_KINDS)
    bounds = np.cumsum([_KINDS[k][0] for k in kinds])
    k_idx = np.minimum(np.searchsorted(bounds, u[0]), len(kinds) - 1)
    table = np.asarray([[t[1][0], t[1][1], t[2][0], t[2][1], t[3][0], t[3][1], t[4]]
                        for t in (_KINDS[k] for k in kinds)])[k_idx]
    lo_tpm, hi_tpm, lo_p, hi_p, lo_v, hi_v, size = table.T
    first, last = _DOMAIN_FIRST.toordinal(), LAST_LISTING.toordinal()
    pre = u[5] < 0.4
    start = np.where(pre, first, sessions.on_or_after((first + (last - first) * u[6]).astype(np.int64)))
    pre_list = np.asarray([date(1970 + int(a * 30), 1 + int(b * 12), 1 + int(c * 28)).toordinal()
                           for a, b, c in zip(u[6].tolist(), u[7].tolist(), u[8].tolist(), strict=True)])
    life = 120 + (-np.log(np.maximum(u[10], 1e-12)) * 6 * 365).astype(np.int64)
    last_day = sessions.before(start + life)
    delisted = (u[9] < 0.33) & (last_day < date(2040, 6, 1).toordinal()) & (last_day > start)
    end = np.where(delisted, last_day + 1, 0)
    stop = np.minimum(np.where(end > 0, end, last), last)
    span = stop - start
    renamed = (kinds.index("CS") == k_idx) & (span >= 3 * 365) & (u[10] < 0.08) & (u[8] < 0.6)
    change = sessions.on_or_after(start + 365 + ((span - 730) * (u[10] / 0.08)).astype(np.int64))
    return _Draws(
        kind=[kinds[k] for k in k_idx.tolist()],
        tpm=(10 ** (lo_tpm + (hi_tpm - lo_tpm) * u[1])).tolist(),
        price=np.exp(np.log(lo_p) + np.log(hi_p / lo_p) * u[2]).tolist(),
        vol=(lo_v + (hi_v - lo_v) * u[3]).tolist(),
        size=(size * (0.3 + 1.4 * u[4])).tolist(),
        start=start.tolist(), end=end.tolist(),
        list_date=np.where(pre, pre_list, start).tolist(),
        rename=np.where(renamed, change, 0).tolist(),
        pick=u[11].tolist(), pick2=u[7].tolist(),
    )


def _market(seed: int) -> list[Listing]:
    count = MAX_STOCKS - LEGACY_COUNT
    d = _draw(seed, count)
    names = _Names(seed, {*REAL_STOCKS, *ETFS, *synthetic_stocks(seed, LEGACY_COUNT - 170)}, count)
    rows: list[Listing] = []
    commons: list[Listing] = []  # roots for preferreds
    by_ticker: dict[str, Listing] = {}
    for i in range(count):
        entity = LEGACY_COUNT + i
        cik, figi, share = _ids(stable_hash("entity", seed, entity))
        fixed = _FIXED[i] if i < len(_FIXED) else None
        kind, tpm, price = d.kind[i], d.tpm[i], d.price[i]
        start = date.fromordinal(d.start[i])
        end = date.fromordinal(d.end[i]) if d.end[i] else None
        list_date = date.fromordinal(d.list_date[i])
        change = date.fromordinal(d.rename[i]) if d.rename[i] else None
        if fixed:
            kind, start, tpm, price = fixed.kind, fixed.start, fixed.tpm, fixed.price
            end = None if fixed.last is None else fixed.last + timedelta(days=1)
            list_date = date(1995, 6, 1) if start == _DOMAIN_FIRST else start
            change = fixed.renamed[1] if fixed.renamed else None
        root: Listing | None = None
        if kind == "PFD":
            root = by_ticker.get(fixed.root) if fixed and fixed.root else (
                commons[int(d.pick[i] * len(commons))] if commons else None)
            if root is None or (root.end is not None and root.end <= start):
                kind = "CS"
            else:
                start = max(start, root.start)
                if root.end is not None and (end is None or root.end < end):
                    end = root.end
                list_date = start if start > _DOMAIN_FIRST else list_date
                cik = root.cik
        if kind != "CS":
            change = None
        market = "otc" if kind == "OTC" else "stocks"
        vendor_type = "OS" if kind == "OTC" else kind
        if fixed:
            ticker = names.claim(fixed.ticker)
        elif kind == "PFD" and root is not None:
            ticker = names.draw(i, 1, prefix=root.ticker + "p")
        elif kind == "OTC":
            ticker = names.draw(i, 4, suffix="F" if d.pick[i] < 0.6 else "Y")
            vendor_type = "OS" if ticker.endswith("F") else "ADRC"
        else:
            lengths = (3, 4) if kind != "CS" else (3, 3, 4, 4, 4, 4, 5)
            ticker = names.draw(i, lengths[int(d.pick[i] * len(lengths)) % len(lengths)])
        exchange = None if market == "otc" else (
            fixed.exchange if fixed else _EXCHANGES[kind][int(d.pick2[i] * len(_EXCHANGES[kind]))])
        proto = Listing(ticker, entity, vendor_type, market, exchange, start, end, list_date,
                        _name(ticker, vendor_type, root), False, cik, figi, share, price, d.vol[i], tpm,
                        d.size[i])
        if change is None:
            rows.append(proto)
            by_ticker[ticker] = proto
            if vendor_type == "CS" and market == "stocks":
                commons.append(proto)
            continue
        new = names.claim(fixed.renamed[0]) if fixed and fixed.renamed else names.draw(i, len(ticker) + 1)
        rows.append(replace(proto, end=change, following=new))
        rows.append(replace(proto, ticker=new, start=change, name=_name(new, vendor_type, None),
                            previous=ticker))
    return rows


def _name(ticker: str, kind: str, root: Listing | None) -> str:
    if kind == "PFD" and root is not None:
        return f"{root.name} {ticker[-1]} Preferred"
    if kind == "ETF":
        return f"{ticker} Synthetic Sector ETF"
    if kind in ("ADRC", "OS"):
        return f"{ticker} Synthetic International Ltd."
    return company_name(ticker)

"""The simulated universe: which tickers are listed, and each ticker's deterministic profile.

Every well-formed ticker has a profile (price level, volatility, liquidity), derived from the seed
and the ticker's name alone, so a ticker outside the listed universe still gets bars.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from mdw.domain import AssetClass, parse_ticker
from mdw.errors import UsageError


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


REAL_STOCKS = _words(
    "AAPL MSFT NVDA AMZN GOOGL GOOG META TSLA BRK.B AVGO JPM LLY V UNH XOM MA JNJ PG HD COST MRK "
    "ABBV CVX CRM BAC NFLX KO PEP AMD ADBE WMT TMO LIN MCD CSCO ACN ABT ORCL DHR WFC INTU DIS TXN "
    "VZ CMCSA PM NEE AMGN IBM PFE QCOM UNP CAT INTC SPGI HON LOW GE BA AMAT NOW RTX GS UPS ISRG "
    "BKNG SBUX PLD ELV MS BLK MDT DE T GILD LMT ADP SYK TJX MDLZ AXP CVS VRTX MMC ADI C REGN SCHW "
    "CB ZTS MO BMY PGR LRCX SO CI DUK BSX EOG SLB FI ETN NOC MU KLAC ICE APD CL SNPS CDNS ITW WM "
    "SHW CME HCA EQIX PANW F GM UBER ABNB PYPL SQ SHOP SNOW PLTR COIN RIVN LCID SOFI HOOD RBLX DKNG "
    "ROKU ZM DOCU TWLO NET CRWD DDOG MDB OKTA SIRI GME AMC BB NOK SNAP PINS LYFT "
)
ETFS = _words(
    "SPY QQQ IWM DIA VTI VOO EEM EFA GLD SLV TLT HYG LQD XLF XLE XLK XLV XLI XLY XLP "
)
REAL_CRYPTO = _words(
    "BTCUSD ETHUSD SOLUSD XRPUSD ADAUSD DOGEUSD DOTUSD LTCUSD LINKUSD AVAXUSD BCHUSD XLMUSD UNIUSD "
    "ATOMUSD ETCUSD FILUSD AAVEUSD ALGOUSD MATICUSD SHIBUSD "
)
REAL_FX = _words(
    "EURUSD GBPUSD USDJPY USDCHF AUDUSD USDCAD NZDUSD EURGBP EURJPY GBPJPY "
)
_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_BASE_PRICES = {
    "AAPL": 190.0,
    "MSFT": 380.0,
    "NVDA": 120.0,
    "AMZN": 170.0,
    "GOOGL": 150.0,
    "GOOG": 151.0,
    "META": 450.0,
    "TSLA": 220.0,
    "BRK.B": 400.0,
    "SPY": 480.0,
    "QQQ": 420.0,
    "IWM": 200.0,
    "KO": 60.0,
    "JNJ": 155.0,
    "XOM": 105.0,
    "SIRI": 25.0,
    "GME": 20.0,
    "X:BTCUSD": 45000.0,
    "X:ETHUSD": 2500.0,
    "X:SOLUSD": 100.0,
    "X:DOGEUSD": 0.09,
    "X:SHIBUSD": 0.00001,
    "C:EURUSD": 1.09,
    "C:GBPUSD": 1.27,
    "C:USDJPY": 145.0,
    "C:USDCHF": 0.88,
    "C:EURJPY": 158.0,
}


def stable_hash(*parts: object) -> int:
    """A 63-bit hash that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True, slots=True)
class Profile:
    """How one ticker trades in the simulation."""

    ticker: str
    asset: AssetClass
    base_price: float  # level the log price reverts to (split-adjusted, as of the far future)
    daily_vol: float  # standard deviation of daily log returns
    trades_per_min: float  # mean trades per regular-hours minute (thin names are low)
    trade_size: float  # mean shares (or coins, or quotes) per trade
    decimals: int  # price rounding

    @property
    def has_volume(self) -> bool:
        return self.asset is not AssetClass.INDICES


@functools.lru_cache(maxsize=8192)
def profile(seed: int, ticker: str) -> Profile:
    """The profile of a vendor ticker (``AAPL``, ``X:BTCUSD`` ...).

    Raises:
        UsageError: the ticker is not well formed.
    """
    tk = parse_ticker(ticker)
    if tk.symbol != ticker:
        raise UsageError(f"not a vendor ticker: {ticker!r}")
    rng = np.random.default_rng([seed, stable_hash("profile", ticker)])
    u = rng.random(6)
    asset = tk.asset_class
    known = ticker in _BASE_PRICES
    if asset is AssetClass.CRYPTO:
        price = _BASE_PRICES.get(ticker, float(10 ** (u[0] * 4 - 1)))
        vol, tpm, size = 0.03 + 0.02 * u[1], 2.0 + 20 * u[2] ** 2, 0.05 + u[3]
    elif asset is AssetClass.FOREX:
        price = _BASE_PRICES.get(ticker, 0.5 + 1.5 * float(u[0]))
        vol, tpm, size = 0.004 + 0.004 * u[1], 20.0 + 30 * u[2], 1.0
    elif asset is AssetClass.INDICES:
        price = 1000.0 + 4000.0 * float(u[0])
        vol, tpm, size = 0.01, 1.0, 1.0
    else:
        price = _BASE_PRICES.get(ticker, float(np.exp(np.log(5.0) + u[0] * np.log(80.0))))
        vol = 0.012 + 0.02 * u[1]
        liquid = known or ticker in REAL_STOCKS or ticker in ETFS
        tpm = (20.0 + 80.0 * u[2]) if liquid else (0.3 + 12.0 * u[2] ** 2)
        if asset is AssetClass.OPTIONS:
            price, tpm = 1.0 + 20 * float(u[0]), 0.2 + u[2]
        size = 50.0 + 250.0 * u[3]
    decimals = 2 if price >= 1000 else 4 if price >= 0.01 else 8
    return Profile(ticker, asset, float(price), float(vol), float(tpm), float(size), decimals)


@functools.lru_cache(maxsize=64)
def synthetic_stocks(seed: int, count: int) -> tuple[str, ...]:
    """``count`` made-up stock tickers (four or five letters), distinct from the real-looking ones."""
    rng = np.random.default_rng([seed, stable_hash("synthetic-universe")])
    taken = set(REAL_STOCKS) | set(ETFS)
    out: list[str] = []
    while len(out) < count:
        length = 4 if rng.random() < 0.7 else 5
        name = "".join(rng.choice(_LETTERS, size=length).tolist())
        if name not in taken:
            taken.add(name)
            out.append(name)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def listed(seed: int, asset: AssetClass, n_stocks: int, n_crypto: int, n_fx: int) -> tuple[str, ...]:
    """The tickers of ``asset`` that reference data lists and grouped daily includes, sorted."""
    if asset is AssetClass.STOCKS:
        real = [*REAL_STOCKS, *ETFS]
        names = real[:n_stocks] + list(synthetic_stocks(seed, max(0, n_stocks - len(real))))
        return tuple(sorted(names))
    if asset is AssetClass.CRYPTO:
        pairs = dict.fromkeys(REAL_CRYPTO[:n_crypto])
        for name in synthetic_stocks(seed + 1, 4 * max(0, n_crypto - len(pairs))):
            if len(pairs) >= n_crypto:
                break
            pairs.setdefault(f"{name[:3]}USD")
        return tuple(sorted("X:" + p for p in pairs))
    if asset is AssetClass.FOREX:
        return tuple(sorted("C:" + p for p in REAL_FX[:n_fx]))
    return ()


def company_name(ticker: str) -> str:
    if ticker in ETFS:
        return f"{ticker} Synthetic Index ETF"
    if ticker.startswith("X:"):
        return f"{ticker[2:-3]} - United States dollar"
    if ticker.startswith("C:"):
        return f"{ticker[2:5]} - {ticker[5:]}"
    return f"{ticker.replace('.', ' ')} Synthetic Holdings Inc."

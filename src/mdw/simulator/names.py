"""Names of the legacy securities, and the stable hash every random draw of the simulator is keyed by.

The legacy names are the ~150 real-looking stocks, 20 ETFs and the synthetic names the simulator
had before it simulated a whole market; their data never changes (tests and docs rely on it).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np


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
BASE_PRICES = {
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


def company_name(ticker: str) -> str:
    if ticker in ETFS:
        return f"{ticker} Synthetic Index ETF"
    if ticker.startswith("X:"):
        return f"{ticker[2:-3]} - United States dollar"
    if ticker.startswith("C:"):
        return f"{ticker[2:5]} - {ticker[5:]}"
    return f"{ticker.replace('.', ' ')} Synthetic Holdings Inc."

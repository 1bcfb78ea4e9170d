"""Counter-based randomness: a value at (key, stream, index) without generating anything before it.

The market's thousands of names cannot each keep a 40-year price path in memory (the 300 legacy
names do: 120 KB each), so their daily price level is *value noise*: seeded random knots at
spacings of 1, 4, 16 ... 1024 days, linearly interpolated and summed. Any day's level costs a few
hashes, for one day or a vector of them, and the path is the same whichever days are asked for.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_TO_UNIT = 1.0 / float(1 << 53)
_OCTAVES = (1, 4, 16, 64, 256, 1024)  # days between knots
# amplitude per octave is c * sqrt(spacing): the daily changes then have about the wanted
# volatility (variance 2 c^2 sum(1/spacing) = 1 for c = 0.61), and the level wanders about
# 22 daily volatilities over the years, as a mean-reverting price does.
_AMP = 0.61
_SPACINGS = np.asarray(_OCTAVES, dtype=np.int64)
_WEIGHTS = (_AMP * np.sqrt(_SPACINGS.astype(np.float64)))[:, None]
_OCTAVE_TAGS = np.tile(np.arange(len(_OCTAVES), dtype=np.int64) << 40, 2)[:, None]
_SQRT3 = float(np.sqrt(3.0))


def mix(x: U64) -> U64:
    """splitmix64's finaliser: a bijective, well-mixed hash of 64-bit integers (wraps on overflow)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return np.asarray(z ^ (z >> _S31), dtype=np.uint64)


Key = int | U64  # one key, or one per index (the same bits either way)


def _keyed(key: Key, stream: int, index: I64) -> U64:
    salt = np.uint64((stream * 0x9E3779B1) & 0xFFFFFFFFFFFFFFFF)
    if isinstance(key, np.ndarray):
        keyed: U64 = (key.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D)) ^ salt
        return mix(index.astype(np.uint64) ^ keyed)
    return mix(index.astype(np.uint64) ^ (np.uint64((key * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF) ^ salt))


def uniform(key: Key, stream: int, index: I64) -> F64:
    """Uniforms in [0, 1), one per index, fixed by (key, stream, index)."""
    return (_keyed(key, stream, index) >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def normal(key: Key, stream: int, index: I64) -> F64:
    """Approximately standard normal values (Irwin-Hall of a hash's four 16-bit parts), one per index."""
    parts = _keyed(key, stream, index).view(np.uint16).reshape(-1, 4)
    return np.asarray((parts.sum(axis=1, dtype=np.float64) / 65536.0 - 2.0) * _SQRT3, dtype=np.float64)


def level_noise(key: Key, days: I64) -> F64:
    """A smooth, mean-reverting random path with unit daily volatility, at the given day indexes.

    Every octave's two knots around each day are hashed in one pass (the octave is in the high
    bits of the hashed index), which is what makes a block of days cost about what one day does.
    """
    spacing = _SPACINGS[:, None]
    knot = days[None, :] // spacing
    frac = (days[None, :] - knot * spacing) / spacing
    stacked = np.concatenate([knot, knot + 1]) + _OCTAVE_TAGS
    keys = np.broadcast_to(key, stacked.shape).ravel() if isinstance(key, np.ndarray) else key
    values = normal(keys, 100, stacked.ravel()).reshape(2 * len(_OCTAVES), len(days))
    lo, hi = values[:len(_OCTAVES)], values[len(_OCTAVES):]
    return np.asarray(((lo + (hi - lo) * frac) * _WEIGHTS).sum(axis=0), dtype=np.float64)

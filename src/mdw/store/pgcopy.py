"""PostgreSQL binary COPY, encoded and decoded with numpy (no per-row Python objects).

Within one batch the ticker, timeframe and source are constant, so every row has a fixed width
once rows are grouped by which of ``v``/``vw``/``n``/``otc`` are NULL (a missing ``n`` is
``MISSING_N``, a missing ``otc`` flag ``MISSING_OTC``; ``otc`` is a one-byte boolean).
Each group is one structured array whose bytes are the COPY rows. Reading works the other way:
``COALESCE`` makes the rows fixed-width and ``np.frombuffer`` turns the stream into columns.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mdw.domain import BAR_COLUMNS, BarBatch, Timeframe

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
WRITE_COLUMNS = ("ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "source", "otc")
_WIDTH = {"otc": 1}  # boolean; every other value column is 8 bytes
_WIRE = {"t": ">i8", "n": ">i8", "otc": "u1"}


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def encode_rows(ticker: str, timeframe: str, batch: BarBatch) -> bytes:
    """The binary COPY rows (no header) of ``batch`` in :data:`WRITE_COLUMNS` order."""
    n = len(batch)
    if not n:
        return b""
    texts = {"ticker": _text(ticker), "timeframe": _text(timeframe), "source": _text(batch.source)}
    if not all(texts.values()):
        raise ValueError("binary COPY of an empty ticker, timeframe or source")
    v_null = np.isnan(batch.v)
    vw_null = np.isnan(batch.vw)
    n_null = batch.n < 0  # MISSING_N
    otc_null = batch.otc < 0  # MISSING_OTC
    parts: list[bytes] = []
    for otc_missing in (True, False) if otc_null.any() else (False,):
        if not otc_missing and otc_null.all():
            continue
        for v_missing in (False, True):
            for vw_missing in (False, True):
                for n_missing in (False, True):
                    mask = (v_null == v_missing) & (vw_null == vw_missing) & (n_null == n_missing) & (
                        otc_null == otc_missing)
                    count = int(mask.sum())
                    if count:
                        null = {"v": v_missing, "vw": vw_missing, "n": n_missing, "otc": otc_missing}
                        parts.append(_group(batch, mask if count < n else None, count, texts, null))
    return b"".join(parts)


def _group(
    batch: BarBatch, mask: npt.NDArray[np.bool_] | None, count: int, texts: dict[str, bytes],
    null: dict[str, bool],
) -> bytes:
    fields: list[tuple[str, str]] = [("nf", ">i2")]
    for col in WRITE_COLUMNS:
        fields.append((f"len_{col}", ">i4"))
        if col in texts:
            fields.append((col, f"S{len(texts[col])}"))
        elif not null.get(col, False):
            fields.append((col, _WIRE.get(col, ">f8")))
    rows = np.empty(count, dtype=np.dtype(fields))
    rows["nf"] = len(WRITE_COLUMNS)
    for col in WRITE_COLUMNS:
        if col in texts:
            rows[f"len_{col}"] = len(texts[col])
            rows[col] = texts[col]
        elif null.get(col, False):
            rows[f"len_{col}"] = -1
        else:
            rows[f"len_{col}"] = _WIDTH.get(col, 8)
            values = getattr(batch, col)
            rows[col] = values if mask is None else values[mask]
    return rows.tobytes()


def encode(ticker: str, timeframe: str, batch: BarBatch) -> bytes:
    """A complete binary COPY stream (header, rows, trailer) of one batch."""
    return HEADER + encode_rows(ticker, timeframe, batch) + TRAILER


# -- reading --------------------------------------------------------------------------------------

_READ_COLUMNS = ("t, o, h, l, c, COALESCE(v, 'NaN'::float8), COALESCE(vw, 'NaN'::float8), COALESCE(n, -1),"
                 " COALESCE(otc::int4::int8, -1)")
_WHERE = " FROM bars WHERE ticker = $1 AND timeframe = $2 AND t >= $3 AND t < $4 ORDER BY t"
READ_SQL = f"SELECT {_READ_COLUMNS}{_WHERE}"
# The stored rows of a span plus whether each one's source differs from $5 (for the write diff).
DIFF_SQL = f"SELECT {_READ_COLUMNS}, (source IS DISTINCT FROM $5)::int::int8 AS other{_WHERE}"
_KINDS = {
    "t": ">i8",
    "o": ">f8",
    "h": ">f8",
    "l": ">f8",
    "c": ">f8",
    "v": ">f8",
    "vw": ">f8",
    "n": ">i8",
    "otc": ">i8",
    "other": ">i8",
}


def _dtype(names: tuple[str, ...]) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nf", ">i2")]
    for name in names:
        fields += [(f"len_{name}", ">i4"), (name, _KINDS[name])]
    return np.dtype(fields)


_READ_DTYPE = _dtype(("t", "o", "h", "l", "c", "v", "vw", "n", "otc"))
_DIFF_DTYPE = _dtype(("t", "o", "h", "l", "c", "v", "vw", "n", "otc", "other"))


def _rows(data: bytes | bytearray | memoryview, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Fixed-width binary COPY rows (no NULLs by construction) as a structured array."""
    body = len(data) - len(HEADER) - len(TRAILER)
    if body <= 0:
        return np.empty(0, dtype=dtype)
    if body % dtype.itemsize:
        raise ValueError(f"binary COPY body of {body} bytes is not a whole number of bar rows")
    return np.frombuffer(data, dtype=dtype, count=body // dtype.itemsize, offset=len(HEADER))


def _batch(ticker: str, timeframe: Timeframe, rows: npt.NDArray[np.void]) -> BarBatch:
    if not len(rows):
        return BarBatch.empty(ticker, timeframe)
    kinds = {"t": np.int64, "n": np.int64, "otc": np.int8}
    cols = {name: rows[name].astype(kinds.get(name, np.float64)) for name in BAR_COLUMNS}
    return BarBatch.from_columns(ticker, timeframe, cols)


def decode(ticker: str, timeframe: Timeframe, data: bytes | bytearray | memoryview) -> BarBatch:
    """Columns from a binary COPY of :data:`READ_SQL`."""
    return _batch(ticker, timeframe, _rows(data, _READ_DTYPE))


def decode_diff(
    ticker: str, timeframe: Timeframe, data: bytes | bytearray | memoryview
) -> tuple[BarBatch, npt.NDArray[np.bool_]]:
    """The stored bars of a :data:`DIFF_SQL` COPY, and which of them have another source."""
    rows = _rows(data, _DIFF_DTYPE)
    return _batch(ticker, timeframe, rows), rows["other"].astype(bool)

"""PostgreSQL binary COPY, encoded and decoded with numpy (no per-row Python objects).

Within one batch the ticker, timeframe and source are constant, so every row has a fixed width
once rows are grouped by which of ``v``/``vw`` are NULL. Each group is one structured array whose
bytes are the COPY rows. Reading works the other way: ``COALESCE`` makes the rows fixed-width and
``np.frombuffer`` turns the stream into columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mdw.domain import BarBatch, Timeframe

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
WRITE_COLUMNS = ("ticker", "timeframe", "t", "o", "h", "l", "c", "v", "vw", "n", "source")
_FLOATS = ("o", "h", "l", "c")


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
    parts: list[bytes] = []
    for v_missing in (False, True):
        for vw_missing in (False, True):
            mask = (v_null == v_missing) & (vw_null == vw_missing)
            count = int(mask.sum())
            if count:
                parts.append(
                    _group(
                        batch, mask if count < n else None, count, texts, {"v": v_missing, "vw": vw_missing}
                    )
                )
    return b"".join(parts)


def _group(batch: BarBatch, mask: Any, count: int, texts: dict[str, bytes], null: dict[str, bool]) -> bytes:
    fields: list[tuple[str, str]] = [("nf", ">i2")]
    for col in WRITE_COLUMNS:
        fields.append((f"len_{col}", ">i4"))
        if col in texts:
            fields.append((col, f"S{len(texts[col])}"))
        elif not null.get(col, False):
            fields.append((col, ">i8" if col in ("t", "n") else ">f8"))
    rows = np.empty(count, dtype=np.dtype(fields))
    rows["nf"] = len(WRITE_COLUMNS)
    for col in WRITE_COLUMNS:
        if col in texts:
            rows[f"len_{col}"] = len(texts[col])
            rows[col] = texts[col]
        elif null.get(col, False):
            rows[f"len_{col}"] = -1
        else:
            rows[f"len_{col}"] = 8
            values = getattr(batch, col)
            rows[col] = values if mask is None else values[mask]
    return rows.tobytes()


def encode(ticker: str, timeframe: str, batch: BarBatch) -> bytes:
    """A complete binary COPY stream (header, rows, trailer) of one batch."""
    return HEADER + encode_rows(ticker, timeframe, batch) + TRAILER


# -- reading --------------------------------------------------------------------------------------

READ_SQL = (
    "SELECT t, o, h, l, c, COALESCE(v, 'NaN'::float8), COALESCE(vw, 'NaN'::float8), n FROM bars"
    " WHERE ticker = $1 AND timeframe = $2 AND t >= $3 AND t < $4 ORDER BY t"
)
_READ_DTYPE = np.dtype(
    [("nf", ">i2")]
    + [
        item
        for name, kind in (
            ("t", ">i8"),
            ("o", ">f8"),
            ("h", ">f8"),
            ("l", ">f8"),
            ("c", ">f8"),
            ("v", ">f8"),
            ("vw", ">f8"),
            ("n", ">i8"),
        )
        for item in ((f"len_{name}", ">i4"), (name, kind))
    ]
)


def decode(ticker: str, timeframe: Timeframe, data: bytes | bytearray | memoryview) -> BarBatch:
    """Columns from a binary COPY of :data:`READ_SQL` (fixed-width rows: no NULLs by construction)."""
    body = len(data) - len(HEADER) - len(TRAILER)
    if body <= 0:
        return BarBatch.empty(ticker, timeframe)
    if body % _READ_DTYPE.itemsize:
        raise ValueError(f"binary COPY body of {body} bytes is not a whole number of bar rows")
    rows = np.frombuffer(data, dtype=_READ_DTYPE, count=body // _READ_DTYPE.itemsize, offset=len(HEADER))
    return BarBatch(
        ticker,
        timeframe,
        t=rows["t"].astype(np.int64),
        o=rows["o"].astype(np.float64),
        h=rows["h"].astype(np.float64),
        l=rows["l"].astype(np.float64),
        c=rows["c"].astype(np.float64),
        v=rows["v"].astype(np.float64),
        vw=rows["vw"].astype(np.float64),
        n=rows["n"].astype(np.int64),
    )

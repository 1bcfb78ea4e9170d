"""Bar encoders: JSON rows for a bounded page, CSV and Arrow IPC streamed chunk by chunk.

Encoding is columnar where it can be: numpy columns go straight to Arrow arrays (NaN volumes
become nulls) and to msgspec structs for JSON, never through pydantic models per bar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from mdw.domain import BAR_COLUMNS, BarBatch
from mdw.store.arrow import arrow_arrays

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class Bar(msgspec.Struct, frozen=True):
    """One bar in a JSON page; ``v`` and ``vw`` are null when the vendor has none."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    c: float
    v: float
    vw: float
    n: int


def json_rows(batch: BarBatch) -> list[Bar]:
    """The batch as row structs (msgspec writes NaN as null)."""
    return [Bar(*row) for row in zip(batch.t.tolist(), batch.o.tolist(), batch.h.tolist(), batch.l.tolist(),
                                     batch.c.tolist(), batch.v.tolist(), batch.vw.tolist(), batch.n.tolist(),
                                     strict=True)]


_ENCODER = msgspec.json.Encoder()


def encode_json(value: object) -> bytes:
    """JSON of a response body: plain dicts and lists, msgspec structs, numbers, strings."""
    return _ENCODER.encode(value)


def _record_batch(batch: BarBatch) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(arrow_arrays(batch), names=list(BAR_COLUMNS))


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("t", pa.int64()), ("o", pa.float64()), ("h", pa.float64()), ("l", pa.float64()),
                      ("c", pa.float64()), ("v", pa.float64()), ("vw", pa.float64()), ("n", pa.int64())])


class _Collect:
    """A write-only file object for pyarrow's writers: collects what they write until drained."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


async def arrow_stream(chunks: AsyncIterator[BarBatch]) -> AsyncIterator[bytes]:
    """An Arrow IPC stream: the schema, then one record batch per chunk, then end-of-stream."""
    import pyarrow as pa

    sink = _Collect()
    writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), arrow_schema())
    yield sink.drain()
    async for chunk in chunks:
        if len(chunk):
            writer.write_batch(_record_batch(chunk))
            yield sink.drain()
    writer.close()
    yield sink.drain()


async def csv_stream(chunks: AsyncIterator[BarBatch]) -> AsyncIterator[bytes]:
    """CSV with a header ``t,o,h,l,c,v,vw,n`` (t in epoch ms; empty v/vw when missing)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    yield (",".join(BAR_COLUMNS) + "\n").encode()
    async for chunk in chunks:
        if len(chunk):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([_record_batch(chunk)]), sink, write_options=options)
            yield sink.getvalue().to_pybytes()

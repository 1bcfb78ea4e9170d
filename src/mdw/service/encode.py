"""HTTP bodies: JSON of any response, and bars streamed chunk by chunk as CSV or Arrow IPC.

The bars' columns, names, rounding and metadata are :class:`mdw.bar_schema.BarSchema`'s, the one
schema every interface uses; this module only frames them for HTTP (a header line, an IPC stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from mdw.bar_schema import BarSchema
from mdw.domain import BarBatch

ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

_ENCODER = msgspec.json.Encoder()


def encode_json(value: object) -> bytes:
    """JSON of a response body: plain dicts and lists, msgspec structs, numbers, strings."""
    return _ENCODER.encode(value)


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


async def arrow_stream(schema: BarSchema, chunks: AsyncIterator[BarBatch]) -> AsyncIterator[bytes]:
    """An Arrow IPC stream: the schema (with its metadata), one record batch per chunk, end-of-stream."""
    import pyarrow as pa

    sink = _Collect()
    writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), schema.arrow_schema())
    yield sink.drain()
    async for chunk in chunks:
        if len(chunk):
            writer.write_batch(schema.record_batch(chunk))
            yield sink.drain()
    writer.close()
    yield sink.drain()


async def csv_stream(schema: BarSchema, chunks: AsyncIterator[BarBatch]) -> AsyncIterator[bytes]:
    """CSV with the schema's header line, then one block of rows per chunk."""
    yield schema.csv_header()
    async for chunk in chunks:
        if len(chunk):
            yield schema.csv(chunk)

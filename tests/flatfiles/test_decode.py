"""Decoding flat files: exact bars, the vendor's spellings, flat memory, and bad files refused."""

from __future__ import annotations

import gzip
import io
import threading
from datetime import date

import numpy as np
import pytest

from mdw.domain import MISSING_N, NEW_YORK, BarBatch, Timeframe, local_midnight_ms
from mdw.errors import VendorTransientError
from mdw.flatfiles.decode import ChunkReader, DecodeStats, Gunzip, decode
from mdw.flatfiles.keys import dataset_named
from mdw.simulator.flatfiles import FlatFiles
from mdw.simulator.market import Market

NOW = local_midnight_ms(date(2024, 4, 2), NEW_YORK)
DAY = date(2024, 3, 7)
ONE_MINUTE = Timeframe(1, "m")


def _files(**kwargs: int) -> FlatFiles:
    stocks, crypto = kwargs.get("stocks", 8), kwargs.get("crypto", 3)
    return FlatFiles(Market(42, now_ms=NOW, n_stocks=stocks, n_crypto=crypto, n_fx=0))


def _decoded(data: bytes, tf: Timeframe = ONE_MINUTE, **kwargs: int) -> dict[str, BarBatch]:
    parts: dict[str, list[BarBatch]] = {}
    for block in decode(io.BytesIO(data), tf, **kwargs):
        for batch in block:
            parts.setdefault(batch.ticker, []).append(batch)
    return {t: BarBatch.concat(b) for t, b in parts.items()}


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


@pytest.mark.parametrize("prefix", ["us_stocks_sip/minute_aggs_v1", "us_stocks_sip/day_aggs_v1",
                                    "global_crypto/minute_aggs_v1"])
def test_decode_gives_the_exact_bars_of_the_file_when_read_whole(prefix: str) -> None:
    """Every ticker's t, o, h, l, c, v, n equal the ground truth; vw is missing; source is flatfile."""
    files = _files()
    ds = dataset_named(prefix)
    truth = files.bars(ds, DAY)
    got = _decoded(files.render(ds, DAY), ds.timeframe)
    assert set(got) == set(truth) and truth
    for ticker, expected in truth.items():
        bars = got[ticker]
        assert bars.source == "flatfile" and np.isnan(bars.vw).all()
        assert bars.take(slice(None)).with_source("rest").timeframe == expected.timeframe
        for name in ("t", "o", "h", "l", "c", "v", "n"):
            assert np.array_equal(getattr(bars, name), getattr(expected, name)), (ticker, name)
        assert not bars.problems()


def test_decode_spells_crypto_pairs_as_the_rest_api_does() -> None:
    """X:BTC-USD in a file becomes X:BTCUSD; an undashed file decodes the same."""
    text = ("ticker,volume,open,close,high,low,window_start,transactions\n"
            "X:BTC-USD,1.5,100,101,102,99,1709769600000000000,3\n")
    plain = text.replace("X:BTC-USD", "X:BTCUSD")
    assert list(_decoded(_gz(text))) == list(_decoded(_gz(plain))) == ["X:BTCUSD"]


def test_decode_keeps_memory_flat_by_yielding_small_blocks() -> None:
    """With a 64 KiB block no yielded block holds more rows than 64 KiB of CSV can carry."""
    files = _files(stocks=40)
    ds = dataset_named("us_stocks_sip/minute_aggs_v1")
    data = files.render(ds, DAY)
    stats = DecodeStats()
    biggest = 0
    for block in decode(io.BytesIO(data), ONE_MINUTE, block_size=64 * 1024, stats=stats):
        biggest = max(biggest, sum(len(b) for b in block))
    assert stats.blocks > 20
    assert biggest <= 64 * 1024 // 40  # a row is more than 40 bytes of text
    assert stats.rows == sum(len(b) for b in files.bars(ds, DAY).values())


def test_decode_sorts_rows_when_the_file_is_not_grouped_by_ticker() -> None:
    """Interleaved tickers and times out of order come back grouped and sorted, nothing lost."""
    text = ("ticker,volume,open,close,high,low,window_start,transactions\n"
            "BBB,10,5,5,5,5,1709820060000000000,1\n"
            "AAA,10,5,5,5,5,1709820120000000000,1\n"
            "BBB,10,5,5,5,5,1709820000000000000,1\n"
            "AAA,10,5,5,5,5,1709820000000000000,1\n")
    got = _decoded(_gz(text))
    assert got["AAA"].t.tolist() == [1709820000000, 1709820120000]
    assert got["BBB"].t.tolist() == [1709820000000, 1709820060000]


def test_decode_flags_a_timestamp_that_is_not_a_whole_millisecond() -> None:
    """A window_start with sub-millisecond digits fails the bar check instead of being rounded."""
    text = ("ticker,volume,open,close,high,low,window_start,transactions\n"
            "AAA,10,5,5,5,5,1709820000000000001,1\n")
    bars = _decoded(_gz(text))["AAA"]
    assert [p.reason for p in bars.problems()] == ["timestamp not aligned to 1m"]


def test_decode_reads_index_files_without_volume_or_transactions() -> None:
    """An indices file (ticker,open,close,high,low,window_start) gives NaN volume and missing trades."""
    text = "ticker,open,close,high,low,window_start\nI:SPX,5000.5,5001,5002,4999,1709820000000000000\n"
    bars = _decoded(_gz(text))["I:SPX"]
    assert np.isnan(bars.v).all() and bars.n.tolist() == [MISSING_N] and bars.c.tolist() == [5001.0]


@pytest.mark.parametrize("data", [b"not gzip at all", _gz("ticker,volume\nAAA,1\n")[:-12],
                                  _gz("name,price\nAAA,1\n")])
def test_decode_refuses_a_file_that_is_cut_corrupt_or_of_another_shape(data: bytes) -> None:
    """Garbage, a truncated gzip, or a CSV without the aggregate columns raise VendorTransientError."""
    with pytest.raises(VendorTransientError):
        _decoded(data)


def test_decode_reads_consecutive_gzip_members_as_one_file() -> None:
    """A file written as several gzip members (as gzip allows) decodes to the same bars as one member."""
    files = _files()
    ds = dataset_named("us_stocks_sip/minute_aggs_v1")
    text = gzip.decompress(files.render(ds, DAY))
    cut = text.index(b"\n", len(text) // 2) + 1
    members = gzip.compress(text[:cut]) + gzip.compress(text[cut:])
    whole, parts = _decoded(gzip.compress(text)), _decoded(members)
    assert set(whole) == set(parts) and whole
    for ticker, bars in whole.items():
        assert np.array_equal(bars.t, parts[ticker].t) and np.array_equal(bars.c, parts[ticker].c)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_gunzip_refuses_a_stream_that_ends_inside_a_member(keep: float) -> None:
    """Cut anywhere before its trailer, the file is an error, never a shorter whole file."""
    files = _files()
    data = files.render(dataset_named("us_stocks_sip/minute_aggs_v1"), DAY)
    reader = Gunzip(io.BytesIO(data[: int(len(data) * keep)]), chunk=4096)
    with pytest.raises(OSError, match="cut short"):
        while reader.read(65536):
            pass


def test_gunzip_starts_with_short_reads_that_double_up_to_the_size_asked() -> None:
    """The first block is small (the writer starts at once), then the reads fill what pyarrow asks."""
    text = gzip.decompress(_files().render(dataset_named("us_stocks_sip/minute_aggs_v1"), DAY))
    assert len(text) > 64 * 1024
    reader = Gunzip(io.BytesIO(gzip.compress(text)), chunk=4096, first_read=4096)
    sizes = [len(reader.read(16384)) for _ in range(5)]
    assert sizes == [4096, 8192, 16384, 16384, 16384]
    rest = reader.read()
    assert b"".join([text[:4096 + 8192 + 3 * 16384], rest]) == text
    assert Gunzip(io.BytesIO(gzip.compress(text)), first_read=4096).read() == text  # read all: all


def test_chunk_reader_streams_chunks_fed_from_another_thread() -> None:
    """A feeder thread hands in 1 KiB chunks; the decoder reads the same bars as from bytes."""
    files = _files(stocks=4)
    ds = dataset_named("us_stocks_sip/day_aggs_v1")
    data = files.render(ds, DAY)
    reader = ChunkReader(depth=2)

    def feed() -> None:
        for i in range(0, len(data), 1024):
            reader.feed(data[i:i + 1024])
        reader.finish()

    feeder = threading.Thread(target=feed)
    feeder.start()
    got = {b.ticker: b for block in decode(reader, ds.timeframe) for b in block}
    feeder.join(timeout=10)
    assert set(got) == set(files.bars(ds, DAY))


def test_chunk_reader_raises_the_feeders_error_in_the_reader() -> None:
    """A download that fails mid-file ends the decode with that error."""
    reader = ChunkReader()
    reader.feed(_gz("ticker,volume,open,close,high,low,window_start,transactions\n")[:10])
    reader.fail(VendorTransientError("dropped"))
    with pytest.raises(VendorTransientError):
        list(decode(reader, ONE_MINUTE))


def test_decode_marks_only_batches_that_can_break_an_invariant_as_suspect() -> None:
    """The block's vectorised pass flags the ticker with a bad bar and clears the clean one."""
    text = ("ticker,volume,open,close,high,low,window_start,transactions\n"
            "AAA,10,5,5,5,5,1709820000000000000,1\nAAA,10,5,5,4,6,1709820060000000000,1\n"
            "BBB,10,5,5,5,5,1709820000000000000,1\nBBB,10,5,5,5,5,1709820060000000000,1\n")
    blocks = list(decode(io.BytesIO(_gz(text)), ONE_MINUTE))
    flags = {b.ticker: s for block in blocks for b, s in zip(block.batches, block.suspect, strict=True)}
    assert flags == {"AAA": True, "BBB": False}
    files = _files(stocks=20)
    ds = dataset_named("us_stocks_sip/minute_aggs_v1")
    for block in decode(io.BytesIO(files.render(ds, DAY)), ONE_MINUTE, block_size=64 * 1024):
        for batch, suspect in zip(block.batches, block.suspect, strict=True):
            assert suspect or not batch.problems()

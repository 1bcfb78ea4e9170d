"""The NYSE session table: computed by the pure calendar, cached on disk by the injected loader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mdw import calendar, calendar_cache
from mdw.calendar import SessionRow, build_sessions, nyse_session, use_sessions


@pytest.fixture
def restore_loader() -> Iterator[None]:
    """Whatever a test injects, the calendar reads the default table again afterwards."""
    saved = calendar._loader
    try:
        yield
    finally:
        use_sessions(saved)
        calendar_cache._installed.clear()


def test_use_sessions_makes_every_lookup_read_the_injected_table(restore_loader: None) -> None:
    """The calendar answers from the injected loader, so a session can exist only there."""
    ms = 1_704_898_800_000  # a made-up session on Saturday 2024-01-13: the real NYSE was closed
    use_sessions(lambda: [("2024-01-13", ms, ms + 1, ms + 2, ms + 3)])
    session = nyse_session(date(2024, 1, 13))
    assert session is not None and session.regular_close_ms == ms + 2
    assert nyse_session(date(2024, 1, 12)) is None  # a real session, absent from the injected table


def test_disk_cached_writes_the_table_once_then_reads_it_back(tmp_path: Path, restore_loader: None) -> None:
    """The first load builds and writes the file; a later load returns what the file says."""
    load = calendar_cache.disk_cached(tmp_path)
    first = load()
    path = calendar_cache.cache_file(tmp_path)
    assert path is not None and path.exists() and tuple(first) == build_sessions()
    doctored: list[SessionRow] = [("2024-01-13", 1, 2, 3, 4)]
    path.write_text(json.dumps(doctored), encoding="utf-8")
    assert list(calendar_cache.disk_cached(tmp_path)()) == doctored


@pytest.mark.parametrize("content", ["", "{not json", "[]", '[["2024-01-02", 1]]', '{"rows": 1}'])
def test_disk_cached_rebuilds_when_the_file_is_damaged(
    tmp_path: Path, restore_loader: None, content: str
) -> None:
    """A truncated, empty or foreign cache file is rebuilt and rewritten, never trusted."""
    path = calendar_cache.cache_file(tmp_path)
    assert path is not None
    path.write_text(content, encoding="utf-8")
    assert tuple(calendar_cache.disk_cached(tmp_path)()) == build_sessions()
    assert json.loads(path.read_text(encoding="utf-8"))[0] == list(build_sessions()[0])


def test_install_wires_the_disk_cache_into_the_calendar(tmp_path: Path, restore_loader: None) -> None:
    """After install(), lookups go through the file, and installing again keeps the loaded table."""
    path = calendar_cache.cache_file(tmp_path)
    assert path is not None
    path.write_text(json.dumps([["2024-01-13", 10, 20, 30, 40]]), encoding="utf-8")
    calendar_cache.install(tmp_path)
    session = nyse_session(date(2024, 1, 13))
    assert session is not None and session.extended_close_ms == 40
    path.unlink()
    calendar_cache.install(tmp_path)  # the same directory: nothing is reloaded
    assert nyse_session(date(2024, 1, 13)) is not None and not path.exists()

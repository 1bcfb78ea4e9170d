"""Operator mistakes are one ``mdw: error:`` line and the documented exit code, never a traceback.

Exit code 2 is a usage or configuration error: a database path that is a directory or not a
database, a server that cannot be reached, a database or role that does not exist, an in-memory
database for a command that writes, a bad ``--host`` or a port in use, an output file that
cannot be created.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from tests.conftest import _pg_base

from .conftest import Result, cli_env, mdw

START = ["--start", "2024-01-02", "--end", "2024-01-03"]
CLOSED = "http://127.0.0.1:9"  # a vendor that is never reached: the error comes first


def _one_line(result: Result, code: int, *words: str) -> None:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    lines = result.stderr_lines
    assert len(lines) == 1 and lines[0].startswith("mdw: error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]


def _env(url: str) -> dict[str, str]:
    return cli_env(None, url, POLYGON_API_KEY="k", POLYGON_BASE_URL=CLOSED, MDW_LOG_FORMAT="console")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [
    ["serve", "--no-scheduler"], ["status"], ["status", "--runs"], ["backfill", "-s", "AAPL", *START],
], ids=["serve", "status", "status-runs", "backfill"])
@pytest.mark.parametrize("kind", ["directory", "not-sqlite"])
async def test_cli_database_path_that_is_a_directory_or_not_sqlite_exits_2(
    command: list[str], kind: str, tmp_path: Path
) -> None:
    """A directory or a text file as the SQLite database is a configuration error: exit 2, one line."""
    target = tmp_path / "warehouse.db"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_text("these are not the bytes of a SQLite database\n" * 20)
    url = f"sqlite:///{target}"
    result = await mdw(*command, "--database-url", url, "--port", str(_free_port()), env=_env(url)) \
        if command[0] == "serve" else await mdw(*command, "--database-url", url, env=_env(url))
    _one_line(result, 2, str(target), "directory" if kind == "directory" else "not a SQLite database")
    if kind == "not-sqlite":
        assert target.read_text().startswith("these are not")  # left as it was


@pytest.mark.parametrize("command", [
    ["serve", "--no-scheduler"], ["status"], ["backfill", "-s", "AAPL", *START],
], ids=["serve", "status", "backfill"])
@pytest.mark.parametrize("case", ["unreachable", "missing-database", "unknown-role"])
async def test_cli_postgres_that_cannot_be_opened_exits_2(
    command: list[str], case: str, pg_server: str
) -> None:
    """An unreachable server, a database or a role that does not exist: exit 2 with one line naming it."""
    host = _pg_base().split("@", 1)[1]
    url, word = {
        "unreachable": ("postgresql://postgres@127.0.0.1:9/mdw", "cannot reach the server"),
        "missing-database": (f"postgresql://postgres@{host}/mdw_missing_{uuid.uuid4().hex[:8]}",
                             "does not exist"),
        "unknown-role": (f"postgresql://mdw_no_role_{uuid.uuid4().hex[:8]}@{host}/postgres", "role"),
    }[case]
    extra = ["--port", str(_free_port())] if command[0] == "serve" else []
    result = await mdw(*command, "--database-url", url, *extra, env=_env(url))
    _one_line(result, 2, word)


@pytest.mark.parametrize("command", [
    ["backfill", "-s", "AAPL", *START], ["update"], ["corporate-actions", "-s", "AAPL"],
    ["keys", "create"], ["serve", "--no-scheduler"],
], ids=["backfill", "update", "corporate-actions", "keys-create", "serve"])
@pytest.mark.parametrize("url", ["sqlite://", "sqlite://:memory:"])
async def test_cli_command_that_writes_refuses_an_in_memory_database(command: list[str], url: str) -> None:
    """``sqlite://`` would take a backfill's bars and lose them at exit: refused, exit 2, one line."""
    result = await mdw(*command, "--database-url", url, env=_env(url))
    _one_line(result, 2, "in-memory")


async def test_cli_dry_run_still_plans_on_an_in_memory_database() -> None:
    """A dry run writes nothing, so ``sqlite://`` stays fine for it."""
    url = "sqlite://"
    result = await mdw("backfill", "-s", "AAPL", *START, "--dry-run", "--database-url", url, env=_env(url))
    assert result.code == 0, result.stderr


@pytest.mark.parametrize("host", ["no-such-host.invalid", "256.1.1.1", "192.0.2.1"])
async def test_cli_serve_on_a_bad_host_exits_2(host: str, tmp_path: Path) -> None:
    """A host that does not resolve, or an address this machine does not have: exit 2, one line."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = await mdw("serve", "--no-scheduler", "--host", host, "--port", str(_free_port()), env=_env(url))
    _one_line(result, 2, host)


async def test_cli_serve_on_a_port_in_use_exits_2(tmp_path: Path) -> None:
    """A port another socket listens on: exit 2 with one line naming it, before the database is opened."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await mdw("serve", "--no-scheduler", "--host", "127.0.0.1", "--port", str(port),
                           env=_env(url))
    _one_line(result, 2, f"127.0.0.1:{port}")
    assert not (tmp_path / "x.db").exists()


async def test_cli_report_and_export_to_a_path_that_cannot_be_created_exit_2(tmp_path: Path) -> None:
    """``--report /proc/x.json`` and ``export -o /proc/x.csv``: refused before anything runs or is read."""
    db = tmp_path / "x.db"
    url = f"sqlite:///{db}"
    result = await mdw("backfill", "-s", "AAPL", *START, "--report", "/proc/mdw-x.json",
                       "--database-url", url, env=_env(url))
    _one_line(result, 2, "--report", "/proc")
    assert not db.exists()
    result = await mdw("export", "-s", "AAPL", *START, "-o", "/proc/mdw-x.csv", "--database-url", url,
                       env=_env(url))
    _one_line(result, 2, "/proc/mdw-x.csv")

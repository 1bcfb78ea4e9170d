"""Every command checks its settings and flags before it opens or creates a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import cli_env, mdw

START = ["--start", "2024-01-02"]


@pytest.mark.parametrize(
    ("env_extra", "args"),
    [
        ({"MDW_RATE_LIMIT": "fast"}, ["backfill", "-s", "AAPL", *START, "--dry-run"]),
        ({"MDW_LOG_LEVEL": "loud"}, ["status"]),
        ({}, ["backfill", "-s", "AAPL", "--start", "2024-01-05", "--end", "2024-01-01", "--dry-run"]),
        ({}, ["backfill", "-s", "AAPL", *START, "--report", "/etc/hostname/r.json"]),
        ({}, ["backfill", "-s", "AAPL", *START, "--refetch", "--distributed"]),
        ({"POLYGON_API_KEY": ""}, ["backfill", "-s", "AAPL", *START]),
        ({}, ["update", "--days", "0"]),
        ({}, ["corporate-actions", "-s", "AAPL", "--start", "2099-01-01", "--dry-run"]),
        ({}, ["export", "-s", "AAPL", *START, "--format", "xlsx"]),
        ({}, ["export", "-s", "AAPL", *START, "--adjust", "some"]),
        ({}, ["export", "-s", "AAPL", *START, "--format", "parquet"]),
        ({}, ["export", "-s", "AAPL", "--start", "2024-01-05", "--end", "2024-01-01"]),
        ({}, ["status", "-s", "A A"]),
        ({}, ["status", "--queue"]),
        ({}, ["keys", "create", "--scope", "root"]),
    ],
    ids=["rate-env", "log-level-env", "reversed-range", "report-path", "refetch-distributed", "no-key",
         "update-days", "actions-future", "export-format", "export-adjust", "parquet-stdout",
         "export-range", "status-ticker", "queue-sqlite", "keys-scope"],
)
async def test_cli_creates_no_database_when_a_setting_or_flag_is_bad(
    env_extra: dict[str, str], args: list[str], tmp_path: Path
) -> None:
    """Exit 2 with one line on stderr, and the database file was never created."""
    db = tmp_path / "x.db"
    extra = {"POLYGON_API_KEY": "k", "MDW_LOG_FORMAT": "console", **env_extra}
    env = cli_env(None, f"sqlite:///{db}", **extra)
    result = await mdw(*args, "--database-url", f"sqlite:///{db}", env=env)
    assert result.code == 2, (result.stdout, result.stderr)
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith("mdw: error:"), result.stderr
    assert not db.exists()


@pytest.mark.parametrize("args", [["status"], ["status", "--runs"], ["export", "-s", "AAPL", *START]],
                         ids=["status", "status-runs", "export"])
async def test_cli_read_command_refuses_naming_the_absolute_path_when_the_database_is_missing(
    args: list[str], tmp_path: Path
) -> None:
    """A read of a missing SQLite file exits 2 naming its resolved path and the slashes rule."""
    url = "sqlite:///sub/x.db"  # three slashes: relative to the working directory
    env = cli_env(None, url, POLYGON_API_KEY="k", MDW_LOG_FORMAT="console")
    result = await mdw(*args, "--database-url", url, env=env, cwd=str(tmp_path))
    assert result.code == 2, (result.stdout, result.stderr)
    assert len(result.stderr_lines) == 1, result.stderr
    assert f"database '{tmp_path / 'sub' / 'x.db'}' does not exist" in result.stderr
    assert "sqlite:////sub/x.db is the absolute path /sub/x.db" in result.stderr
    assert not (tmp_path / "sub").exists()


async def test_cli_dry_run_plans_an_empty_warehouse_and_creates_nothing_when_the_database_is_missing(
    tmp_path: Path,
) -> None:
    """``--dry-run`` on a database that does not exist yet plans everything as missing and creates no file."""
    db = tmp_path / "x.db"
    env = cli_env(None, f"sqlite:///{db}", POLYGON_API_KEY="k", MDW_LOG_FORMAT="console")
    result = await mdw("backfill", "-s", "AAPL", *START, "--end", "2024-01-05", "--dry-run", env=env)
    assert result.code == 0, result.stderr
    assert "total requests: 1" in result.stdout + result.stderr
    assert "planned as an empty warehouse" in result.stderr
    assert not db.exists()

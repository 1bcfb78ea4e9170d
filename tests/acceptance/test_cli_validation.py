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

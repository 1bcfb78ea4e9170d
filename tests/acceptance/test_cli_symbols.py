"""``mdw symbols add/list/rm`` and ``mdw actions list`` (#21): tracking from the CLI, actions unfetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mdw.simulator import SimServer

from .conftest import cli_env, mdw


async def test_cli_symbols_add_list_rm_track_and_untrack_without_fetching(db_url: str, opened: Any) -> None:
    """add records symbols (no vendor key needed), list shows them, rm untracks; an unknown name exits 2."""
    env = cli_env(None, db_url)
    added = await mdw("symbols", "add", "AAPL,X:BTCUSD", "-t", "1d,1h", "--start", "2024-01-02",
                      "--name", "core", env=env)
    assert added.code == 0, added.stderr
    assert added.stdout.splitlines() == ["tracking AAPL 1d,1h from 2024-01-02",
                                         "tracking X:BTCUSD 1d,1h from 2024-01-02"]
    listed = await mdw("symbols", "list", "--json", env=env)
    assert listed.code == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"ticker": "AAPL", "asset_class": "stocks", "active": True, "timeframes": ["1d", "1h"],
         "start_date": "2024-01-02", "name": "core"},
        {"ticker": "X:BTCUSD", "asset_class": "crypto", "active": True, "timeframes": ["1d", "1h"],
         "start_date": "2024-01-02", "name": "core"},
    ]
    wrong = await mdw("symbols", "rm", "AAPL,AAPLL", env=env)
    assert wrong.code == 2 and wrong.stdout == ""
    assert wrong.stderr_lines == ["mdw: error: not a tracked symbol: AAPLL. Did you mean AAPL?"]
    removed = await mdw("symbols", "rm", "AAPL", env=env)
    assert removed.code == 0 and removed.stdout.strip() == "untracked AAPL"
    store = await opened(db_url)
    assert [(i.ticker, i.active) for i in await store.symbols.all()] == [("AAPL", False), ("X:BTCUSD", True)]
    table = await mdw("symbols", "list", "--active", env=env)
    assert table.code == 0
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["ticker", "X:BTCUSD"]
    bad = await mdw("symbols", "add", "AAPL", "-t", "7x", env=env)
    assert bad.code == 2 and len(bad.stderr_lines) == 1


async def test_cli_symbols_list_never_creates_a_database(tmp_path: Path) -> None:
    """A read on a missing SQLite file exits 2 naming the path and leaves nothing behind."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    out = await mdw("symbols", "list", env=cli_env(None, url))
    assert out.code == 2 and str(tmp_path / "none.db") in out.stderr
    assert not (tmp_path / "none.db").exists()


async def test_cli_actions_list_prints_stored_actions_and_names_the_unfetched(
    sqlite_url: str, sim: SimServer
) -> None:
    """After corporate-actions, list shows the simulator's splits offline; a never-fetched ticker is named."""
    env = cli_env(sim, sqlite_url)
    fetched = await mdw("corporate-actions", "-s", "AAPL", "--start", "2019-01-01", env=env)
    assert fetched.code == 0, fetched.stderr
    offline = cli_env(None, sqlite_url)  # no vendor key: list never fetches
    out = await mdw("actions", "list", "-s", "AAPL", "--kind", "splits", "--json", env=offline)
    assert out.code == 0, out.stderr
    truth = sorted(s.execution_date.isoformat() for s in sim.market.splits("AAPL"))
    rows = json.loads(out.stdout)
    assert [r["date"] for r in rows] == [d for d in truth if d >= "2019-01-01"]
    assert rows[0]["value"] == "4-for-1" and rows[0]["fetched_for"].startswith("2019-01-01..")
    both = await mdw("actions", "list", "-s", "AAPL,MSFT", env=offline)
    assert both.code == 0
    note = "mdw: MSFT: splits never fetched; `mdw corporate-actions -s MSFT` fetches them"
    assert note in both.stderr_lines
    assert any(line.split()[:2] == ["AAPL", "dividend"] for line in both.stdout.splitlines())
    none = await mdw("actions", "list", "-s", "MSFT", env=offline)
    assert none.code == 1

"""API keys: 401 for missing, wrong or revoked keys, 403 for read keys on admin routes, CLI key commands."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog

from mdw.cli import main
from mdw.service.auth import new_key, verify
from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]
ADMIN_ROUTES = [("POST", "/v1/backfills", {"symbols": ["AAPL"], "start": "2024-01-02"}),
                ("POST", "/v1/symbols", {"ticker": "AAPL", "backfill": False}),
                ("PATCH", "/v1/symbols/AAPL", {"active": False}),
                ("DELETE", "/v1/symbols/AAPL", None)]


def test_verify_accepts_only_the_live_key_it_was_made_from() -> None:
    """A key verifies against its record; a changed secret, an unknown id or a revoked record do not."""
    key, record = new_key("read", "", 0)
    assert verify(key, record) == record
    assert verify(key[:-1] + ("A" if key[-1] != "A" else "B"), record) is None
    assert verify(new_key("read", "", 0)[0], record) is None
    assert verify(key, None) is None
    revoked = type(record)(**{**{f: getattr(record, f) for f in record.__slots__}, "revoked_at_ms": 1})
    assert verify(key, revoked) is None
    assert record.hash.startswith("pbkdf2_sha256$") and key.split("_")[-1] not in record.hash


async def test_admin_routes_refuse_missing_wrong_revoked_and_read_keys(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """Every admin route answers 401 without or with a bad key and 403 with a read-scoped key."""
    svc = await service_factory(sim)
    await svc.state.store.keys.revoke(svc.read_key_id)
    revoked = svc.read_key
    reader, reader_rec = new_key("read", "", 0)
    await svc.state.store.keys.add(reader_rec)
    for method, path, body in ADMIN_ROUTES:
        for headers, status, code in [({}, 401, "unauthorized"),
                                      ({"X-API-Key": "mdw_000000000000_" + "x" * 43}, 401, "unauthorized"),
                                      ({"X-API-Key": "garbage"}, 401, "unauthorized"),
                                      ({"Authorization": f"Bearer {revoked}"}, 401, "unauthorized"),
                                      ({"X-API-Key": reader}, 403, "forbidden")]:
            got, err = await svc.send(method, path, json=body, headers=headers)
            assert (got, err["error"]["code"]) == (status, code), (method, path, headers)
    got, created = await svc.send("POST", "/v1/symbols", json={"ticker": "AAPL", "backfill": False},
                                  headers={"Authorization": f"Bearer {svc.admin_key}"})
    assert got == 201 and created["symbol"]["ticker"] == "AAPL"
    assert (await svc.get("/v1/symbols"))[0] == 200  # reads stay open with auth = "admin"


async def test_auth_all_needs_a_key_for_reads_too(sim: SimServer, service_factory: ServiceFactory) -> None:
    """With auth = "all" a read without a key is 401 and a read key is enough."""
    svc = await service_factory(sim, auth="all")
    status, body, _ = await svc.get("/v1/symbols")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert (await svc.get("/v1/symbols", headers={"X-API-Key": svc.read_key}))[0] == 200
    assert (await svc.get("/healthz"))[0] == 200


def test_keys_cli_creates_lists_and_revokes(tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`mdw keys create` prints a key once, `list` shows its id but no secret, `revoke` ends it."""
    # In process, the CLI would point the process-wide loggers at capsys' stream, which pytest
    # closes after this test; later tests' log lines would then fail. Keep logging as it is, and
    # capture the log lines (the first open's migration) that would otherwise land on stdout.
    import mdw.logs

    monkeypatch.setattr(mdw.logs, "configure", lambda *args, **kwargs: None)  # the CLI imports it per run
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    with structlog.testing.capture_logs():
        main(["keys", "create", "--scope", "admin", "--name", "ops", "--database-url", db])
    key = capsys.readouterr().out.strip()
    match = re.fullmatch(r"mdw_([0-9a-f]{12})_(\S+)", key)
    assert match
    main(["keys", "list", "--database-url", db])
    listing = capsys.readouterr().out
    assert match[1] in listing and "admin" in listing and match[2] not in listing
    main(["keys", "revoke", match[1], "--database-url", db])
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["keys", "revoke", "nosuchkey", "--database-url", db])
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:
        main(["keys", "create", "--scope", "root", "--database-url", db])
    assert exc.value.code == 2

"""Security: the vendor key never leaks, mdw's own keys are hashed, constant-time and revocable, and no
request input reaches a shell or an interpreter.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from mdw.config import load_settings
from mdw.service import auth
from mdw.service.app import create_app
from mdw.service.auth import new_key
from mdw.simulator import FaultConfig

from .conftest import cli_env, raw_rows, run_mdw
from .serving import serve

KEY = "sk-live-RELIABILITY-7f3a9c1e5b2d4f60"


async def test_vendor_key_never_appears_in_any_output_when_run_hits_faults_and_failures(
    sim_factory: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CLI output, the JSON report, the runs table, service responses and log records never hold the key."""
    sim = await sim_factory(keys={KEY: "unlimited"}, not_found_tickers=frozenset({"NOPE"}),  # type: ignore[operator]
                            faults=FaultConfig(error_rate=0.2, reset_rate=0.1, truncate_rate=0.1))
    url = f"sqlite:///{tmp_path / 'sec.db'}"
    env = cli_env(sim.base_url, KEY, url, MDW_LOG_LEVEL="DEBUG", MDW_RETRY_ATTEMPTS="3")
    captured: list[str] = []
    report = tmp_path / "report.json"
    code, out, err = await run_mdw("backfill", "--symbols", "AAPL,NOPE,X:BTCUSD", "--timeframes", "1h,1d",
                                   "--start", "2024-03-04", "--end", "2024-03-08", "--corporate-actions",
                                   "--report", str(report), env=env)
    captured += [out, err, report.read_text()]
    assert code == 1 and "NOPE" in out and sum(sim.stats()["faults"].values()) > 0
    bad = cli_env(sim.base_url, KEY + "-wrong", url, MDW_LOG_LEVEL="DEBUG")
    code2, out2, err2 = await run_mdw("backfill", "--symbols", "MSFT", "--start", "2024-03-04", "--end",
                                      "2024-03-05", env=bad)
    captured += [out2, err2]
    assert code2 == 1
    captured += [json.dumps(r) for r in await raw_rows(url, "SELECT * FROM runs")]
    caplog.set_level(logging.DEBUG)
    settings = load_settings(None, database_url=url, polygon_api_key=KEY, polygon_base_url=sim.base_url,
                             rate_limit="unlimited", scheduler=False, retry_attempts=2, log_level="DEBUG")
    admin, rec = new_key("admin", "sec", 0)
    async with serve(create_app(settings)) as base, aiohttp.ClientSession() as http:
        from mdw.store import open_store

        async with await open_store(url) as store:
            await store.keys.add(rec)
        async with http.post(f"{base}/v1/backfills", headers={"X-API-Key": admin},
                             json={"symbols": ["NOPE", "JPM"], "start": "2024-03-04",
                                   "end": "2024-03-06"}) as r:
            captured.append(await r.text())
        for path in ["/v1/backfills", "/metrics", "/v1/overview", "/v1/vendor/history", "/v1/alerts",
                     "/readyz", "/openapi.json", "/v1/bars/AAPL?timeframe=1h&start=2024-03-04"]:
            async with http.get(base + path) as resp:
                captured.append(await resp.text())
                assert resp.status < 500, path
    captured += [caplog.text, *(r.getMessage() for r in caplog.records)]
    captured += [json.dumps(r, default=str) for r in await raw_rows(url, "SELECT * FROM runs")]
    blob = "\n".join(captured)
    assert len(blob) > 10_000 and "retry" in blob.lower()  # a real amount of output was searched
    assert KEY not in blob
    assert KEY[8:] not in blob  # not even without its prefix


async def test_api_keys_are_hashed_at_rest_and_compared_in_constant_time_when_stored(tmp_path: Path) -> None:
    """The api_keys row holds a salted PBKDF2 digest, never the secret; verify uses hmac.compare_digest."""
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    env = cli_env(None, None, url)
    code, out, err = await run_mdw("keys", "create", "--scope", "admin", "--name", "ops", env=env)
    assert code == 0, err
    plaintext = out.strip().splitlines()[-1]
    secret = plaintext.split("_", 2)[2]
    rows = await raw_rows(url, "SELECT * FROM api_keys")
    assert len(rows) == 1
    row_text = " ".join(str(v) for v in rows[0])
    assert secret not in row_text and plaintext not in row_text
    assert "pbkdf2_sha256$" in row_text
    source = inspect.getsource(auth.verify)
    calls = {n.func.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)}
    assert "compare_digest" in calls and "hash ==" not in source and "== expected" not in source
    code, out, _ = await run_mdw("keys", "revoke", plaintext.split("_")[1], env=env)
    assert code == 0
    [row] = await raw_rows(url, "SELECT revoked_at_ms FROM api_keys")
    assert row[0] is not None
    from mdw.store import open_store

    async with await open_store(url) as store:
        assert await auth.authenticate(store.keys, plaintext) is None  # revoked keys no longer verify


async def test_every_mutating_route_rejects_missing_wrong_revoked_and_read_keys(tmp_path: Path) -> None:
    """Every non-GET route in the OpenAPI spec (not a hand-kept list) answers 401/403 without an admin key."""
    url = f"sqlite:///{tmp_path / 'routes.db'}"
    settings = load_settings(None, database_url=url, rate_limit="unlimited", scheduler=False)
    from mdw.store import open_store

    store = await open_store(url)
    read, read_rec = new_key("read", "", 0)
    gone, gone_rec = new_key("admin", "", 0)
    for rec in (read_rec, gone_rec):
        await store.keys.add(rec)
    await store.keys.revoke(gone_rec.id)
    async with serve(create_app(settings, store=store)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/openapi.json") as resp:
            spec = await resp.json()
        routes = [(m.upper(), p.replace("{ticker}", "AAPL").replace("{run_id}", "x"))
                  for p, ops in spec["paths"].items() for m in ops if m in ("post", "put", "patch", "delete")]
        assert len(routes) >= 4
        for method, path in routes:
            for headers, want in [({}, 401), ({"X-API-Key": "mdw_000000000000_" + "x" * 43}, 401),
                                  ({"X-API-Key": gone}, 401), ({"Authorization": f"Bearer {gone}"}, 401),
                                  ({"X-API-Key": read}, 403)]:
                async with http.request(method, base + path, headers=headers, json={}) as resp:
                    assert resp.status == want, (method, path, headers, resp.status)
    assert await store.symbols.all() == []
    await store.close()


FORBIDDEN_CALLS = {"eval", "exec", "compile", "system", "popen", "spawn", "execv", "execve", "execvp",
                   "create_subprocess_shell", "create_subprocess_exec", "run", "Popen", "call", "check_call",
                   "check_output", "getoutput", "getstatusoutput", "__import__", "import_module", "loads"}
FORBIDDEN_MODULES = {"subprocess", "pickle", "marshal", "shelve", "pty", "commands"}


def test_nothing_reachable_from_the_service_runs_code_or_shell_commands() -> None:
    """No module the service imports calls a shell, an interpreter or an unpickler on anything."""
    import sys

    import mdw.service.app  # loads the service and everything it reaches

    root = Path(mdw.service.app.__file__).parent.parent
    loaded = [m for name, m in sys.modules.items() if name.startswith("mdw.") and getattr(m, "__file__", None)
              and not name.startswith(("mdw.cli", "mdw.simulator"))]
    assert any(m.__name__ == "mdw.service.routes_bars" for m in loaded)
    problems: list[str] = []
    for module in loaded:
        path = Path(module.__file__)
        if root not in path.parents:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom)
                                                        and node.module else [])
                problems += [f"{module.__name__}: imports {n}" for n in names
                             if n.split(".")[0] in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                attr_of_name = isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name)
                owner = fn.value.id if attr_of_name else ""  # type: ignore[union-attr]
                if name in ("eval", "exec", "compile", "__import__") and not owner:
                    problems.append(f"{module.__name__}:{node.lineno}: {name}()")
                risky_owner = owner in ("os", "subprocess", "pickle", "marshal", "importlib")
                if risky_owner and name in FORBIDDEN_CALLS:
                    problems.append(f"{module.__name__}:{node.lineno}: {owner}.{name}()")
    assert not problems, problems

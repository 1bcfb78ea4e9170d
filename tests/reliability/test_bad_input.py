"""Bad input: fuzzed CLI flags, schemathesis against the OpenAPI spec, injection strings, a corrupt mdw.toml.

Every refusal is a clean one: exit 2 with one ``mdw: error:`` line (CLI) or a JSON 4xx (API), never a
traceback or a 5xx, and the database is intact afterwards.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from mdw.config import load_settings
from mdw.service.app import create_app
from mdw.service.auth import new_key
from mdw.simulator import SimServer
from mdw.store import open_store

from .conftest import assert_exact, cli_env, run_mdw, spec_of, total_bars
from .serving import serve

BF = ["backfill", "--symbols", "AAPL", "--start", "2024-01-02"]
SQLI = ["AAPL'; DROP TABLE bars; --", "AAPL\" OR 1=1 --", "'; DELETE FROM api_keys; --", "X:BTC'||'USD",
        "$(touch /tmp/mdw-pwned)", "`id`", "__import__('os').system('id')"]
TRAVERSAL = ["../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2fetc%2fpasswd", "AAPL/../../x"]

# (id, argv) — every one must exit 2 with exactly one clear line
FUZZ: list[tuple[str, list[str]]] = [
    *[(f"ticker-{i}", ["backfill", "--symbols", t, "--start", "2024-01-02"]) for i, t in enumerate(
        ["", ",", "$$$", "A A", "X:", "X:BTC:USD", "🚀", "A" * 300, "AAPL;ls", *SQLI, *TRAVERSAL])],
    *[(f"date-{i}", [*BF[:3], "--start", d]) for i, d in enumerate(
        ["2024-13-01", "2024-02-30", "0000-01-01", "24-01-02", "tomorrow", "2024-01-02T25:00", "-1", ""])],
    ("end-before-start", [*BF, "--end", "2023-01-01"]),
    ("start-year-1", [*BF[:3], "--start", "0001-01-01"]),
    ("end-year-9999", [*BF, "--end", "9999-12-31"]),
    ("export-end-year-9999", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "9999-12-31"]),
    *[(f"timeframe-{i}", [*BF, "--timeframes", tf]) for i, tf in enumerate(
        ["0m", "-5m", "1x", "1.5h", "m", "$(id)", "99999999999999999999m", "1d;rm -rf /"])],
    *[(f"rate-{i}", [*BF, "--rate-limit", r]) for i, r in enumerate(
        ["fast", "-5/min", "0/s", "5/fortnight", "1e309/s", "5//min"])],
    *[(f"base-url-{i}", [*BF, "--base-url", u]) for i, u in enumerate(
        ["not a url", "ftp://x", "http://", "javascript:alert(1)"])],
    *[(f"db-url-{i}", [*BF, "--database-url", u]) for i, u in enumerate(
        ["mysql://x", "sqlite", "", "postgresql", "file:///etc/passwd"])],
    ("asset", [*BF, "--asset", "bonds"]),
    ("export-format", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "--format", "xml"]),
    ("export-adjust", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "--adjust", "some"]),
    ("export-dir", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "-o", "/"]),
    ("export-nul", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "-o", "/tmp/x\x01/../y"]),
    ("export-missing-dir", ["export", "--symbols", "AAPL", "--start", "2024-01-02", "-o", "/no/such/f.csv"]),
]
QUICK_FUZZ = {"ticker-0", "ticker-6", "ticker-9", "ticker-13", "date-1", "date-5", "timeframe-2",
              "timeframe-7", "rate-4", "start-year-1", "end-year-9999", "base-url-3", "db-url-4",
              "export-dir"}


async def _fuzz(cases: list[tuple[str, list[str]]], tmp_path: Path) -> list[str]:
    """Run every case (four at a time) and return the problems found.

    The vendor is a closed port with one attempt, so a case wrongly accepted fails fast (exit 1).
    """
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    await (await open_store(url)).close()  # migrated up front: its one-time log line is not an error
    env = cli_env("http://127.0.0.1:9", "reliability-key", url, MDW_RETRY_ATTEMPTS="1")
    gate = asyncio.Semaphore(4)

    async def one(name: str, argv: list[str]) -> str | None:
        async with gate:
            code, out, err = await run_mdw(*argv, env=env, cwd=str(tmp_path))
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("{")]
        if code != 2 or len(lines) != 1 or not lines[0].startswith("mdw: error:") or "Traceback" in err + out:
            return f"{name}: exit {code}, stderr {err[-400:]!r}"
        return None

    found = await asyncio.gather(*(one(n, a) for n, a in cases))
    return [f for f in found if f]


async def test_cli_refuses_fuzzed_flags_with_exit_2_and_one_line_when_quick_sample(tmp_path: Path) -> None:
    """A sample of bad tickers, dates, timeframes, rates, URLs and paths: exit 2, one clear line each."""
    problems = await _fuzz([c for c in FUZZ if c[0] in QUICK_FUZZ], tmp_path)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
async def test_cli_refuses_fuzzed_flags_with_exit_2_and_one_line_when_full_table(tmp_path: Path) -> None:
    """The whole table (about fifty cases): exit 2 and exactly one clear line each, never a traceback."""
    assert len(FUZZ) >= 40
    problems = await _fuzz(FUZZ, tmp_path)
    print(f"\n[cli fuzz] {len(FUZZ)} cases, {len(problems)} problems")
    assert not problems, "\n".join(problems)


async def test_corrupt_config_file_gives_one_clear_line_when_toml_is_broken(tmp_path: Path) -> None:
    """Broken TOML, a wrong type and an unknown key in mdw.toml each exit 2 with one line naming the file."""
    env = cli_env(None, "k", f"sqlite:///{tmp_path / 'c.db'}")
    for name, text in [("broken", "[mdw\nrate_limit = "), ("type", "[mdw]\nmax_in_flight = 'many'\n"),
                       ("unknown", "[mdw]\nrate_limt = '5/min'\n"), ("binary", "\x00\xff\xfe")]:
        path = tmp_path / f"{name}.toml"
        path.write_bytes(text.encode("latin-1"))
        code, _, err = await run_mdw(*BF, "--dry-run", "--config", str(path), env=env)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("{")]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("mdw: error:"), (name, err)
        assert "Traceback" not in err
        (tmp_path / "mdw.toml").write_bytes(text.encode("latin-1"))  # the default file in the cwd too
        code, _, err = await run_mdw(*BF, "--dry-run", env=env, cwd=str(tmp_path))
        assert code == 2 and "Traceback" not in err, (name, err)
        assert "mdw.toml" in err or "max_in_flight" in err, (name, err)  # names the file or the setting


async def test_injection_strings_are_refused_and_db_intact_when_sent_to_api(
    sim: SimServer, tmp_path: Path
) -> None:
    """SQL-injection and path-traversal strings in tickers, ids and static paths: 4xx, nothing changes."""
    url = f"sqlite:///{tmp_path / 'inj.db'}"
    spec = spec_of("AAPL", "1h", "2024-01-02", "2024-01-05", grouped_daily=False)
    settings = load_settings(None, database_url=url, polygon_api_key=sim.key, polygon_base_url=sim.base_url,
                             rate_limit="unlimited", scheduler=False)
    store = await open_store(url)
    admin, rec = new_key("admin", "inj", 0)
    await store.keys.add(rec)
    hdr = {"X-API-Key": admin}
    async with serve(create_app(settings, store=store)) as base, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/backfills", headers=hdr, json={
                "symbols": ["AAPL"], "timeframes": ["1h"], "start": "2024-01-02", "end": "2024-01-05"}) as r:
            run_id = (await r.json())["run_id"]
        await store_run_done(http, base, run_id)
        bars_before = await total_bars(url)
        statuses: list[tuple[str, int]] = []
        for bad in [*SQLI, *TRAVERSAL]:
            q = quote(bad, safe="")
            for method, path, body in [
                ("GET", f"/v1/bars/{q}", None), ("GET", f"/v1/bars/AAPL?timeframe={q}", None),
                ("GET", f"/v1/symbols/{q}", None), ("GET", f"/v1/coverage/{q}", None),
                ("GET", f"/v1/dividends/{q}", None), ("GET", f"/v1/backfills/{q}", None),
                ("DELETE", f"/v1/symbols/{q}", None), ("PATCH", f"/v1/symbols/{q}", {"active": False}),
                ("POST", "/v1/symbols", {"ticker": bad, "backfill": False}),
                ("POST", "/v1/backfills", {"symbols": [bad], "start": "2024-01-02"}),
                ("GET", f"/static/{q}", None), ("GET", f"/static/..%2f..%2f{q}", None),
            ]:
                async with http.request(method, base + path, json=body, headers=hdr) as resp:
                    text = await resp.text()
                    statuses.append((f"{method} {path}", resp.status))
                    assert resp.status < 500, (method, path, text[:300])
                    assert "root:x:0:0" not in text and "[fonts]" not in text
                    if method != "GET" or path.startswith("/v1/bars/AAPL"):
                        assert 400 <= resp.status < 500, (method, path, resp.status, text[:200])
        assert await total_bars(url) == bars_before
        assert len(await store.keys.all()) == 1
        await assert_exact(store, sim, spec)
        async with http.get(f"{base}/v1/symbols") as resp:
            tickers = [s["ticker"] for s in (await resp.json())["symbols"]]
        assert tickers == ["AAPL"], tickers
    await store.close()
    print(f"\n[injection] {len(statuses)} requests, statuses {sorted({s for _, s in statuses})}")


async def store_run_done(http: aiohttp.ClientSession, base: str, run_id: str) -> None:
    for _ in range(300):
        async with http.get(f"{base}/v1/backfills/{run_id}") as resp:
            if (await resp.json())["status"] not in ("running", "queued"):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the backfill did not finish")


EXCLUDED_CHECKS = "positive_data_acceptance"  # schemas do not yet carry every rule the handlers apply
# Left out of the fuzz, each for its own reason and each checked below or elsewhere: the routes that
# ask the vendor while they answer can only say 502 (documented) with the vendor on a closed port,
# and the live stream is a never-ending response (its 400s and 409 are tested in tests/stream).
UNFUZZED = ("/v1/reference/refresh", "/v1/universes/{name}/backfill", "/v1/stream/bars")


@pytest.mark.parametrize(("phases", "examples"), [
    pytest.param("examples,fuzzing", "6", id="quick"),
    pytest.param("examples,fuzzing", "60", id="soak", marks=pytest.mark.slow),
])
async def test_schemathesis_finds_the_api_true_to_its_openapi_document_when_fuzzing(
    tmp_path: Path, phases: str, examples: str
) -> None:
    """Schemathesis, seeded and bounded, with its checks: no 5xx, every status and auth rule documented.

    The vendor URL is a closed port, so a generated backfill (of any range) fails at once instead
    of asking a simulator for decades of minutes. One worker: schemathesis's workers are threads, and
    on CPython 3.11 two threads inside ``ast.parse`` (hypothesis parses lambdas to describe strategies)
    share the interpreter's AST recursion counter, so a garbage collection that switches threads
    mid-parse raises "SystemError: AST constructor recursion depth mismatch" (reproduced standalone).
    """
    url = f"sqlite:///{tmp_path / 'st.db'}"
    settings = load_settings(None, database_url=url, rate_limit="unlimited", scheduler=False,
                             polygon_api_key="reliability-key", polygon_base_url="http://127.0.0.1:9",
                             retry_attempts=1)
    store = await open_store(url)
    admin, rec = new_key("admin", "st", 0)
    await store.keys.add(rec)
    st = str(Path(sys.executable).with_name("schemathesis"))
    async with serve(create_app(settings, store=store)) as base:
        proc = await asyncio.create_subprocess_exec(
            st, "run", f"{base}/openapi.json", "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
            "--max-examples", examples,
            "--seed", "9", "--workers", "1", "--phases", phases,
            *(arg for path in UNFUZZED for arg in ("--exclude-path", path)),
            "-H", f"X-API-Key: {admin}",
            "--request-timeout", "20", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
        async with aiohttp.ClientSession(headers={"X-API-Key": admin}) as http:
            async with http.get(f"{base}/openapi.json") as resp:
                doc = await resp.json()
            async with http.post(f"{base}/v1/reference/refresh") as resp:
                status, body = resp.status, await resp.json()
    await store.close()
    assert "502" in doc["paths"]["/v1/reference/refresh"]["post"]["responses"]
    assert status == 502 and body["error"]["code"] == "vendor_error", body  # the vendor is unreachable
    text = out.decode()
    summary = [ln for ln in text.splitlines() if "passed" in ln or "failed" in ln or "error" in ln.lower()]
    print("\n[schemathesis] " + " | ".join(summary[-3:]))
    assert proc.returncode == 0, text[-4000:]

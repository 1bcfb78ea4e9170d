"""Every route through real HTTP (uvicorn + aiohttp) against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from mdw.domain import Timeframe, from_ms, to_ms
from mdw.simulator.server import SimServer

ServiceFactory = Callable[..., Awaitable[Any]]

WEEK = {"symbols": ["AAPL", "X:BTCUSD"], "timeframes": ["1d", "1m"], "start": "2024-01-02",
        "end": "2024-01-05", "corporate_actions": True}


async def test_bars_formats_and_paging_return_the_simulators_bars(sim: SimServer,
                                                                  service_factory: ServiceFactory) -> None:
    """JSON pages joined by cursor, CSV and Arrow all hold exactly the simulator's raw bars."""
    svc = await service_factory(sim)
    run = await svc.backfill(WEEK)
    assert run["status"] == "ok"
    assert run["progress"]["series_done"] == run["progress"]["series_total"] > 0
    start, end = to_ms("2024-01-02T05:00:00Z"), to_ms("2024-01-04T05:00:00Z")
    truth = sim.market.aggregates("AAPL", Timeframe(1, "m"), start, end)
    query = f"/v1/bars/AAPL?timeframe=1m&start={start}&end={end}"
    rows: list[dict[str, float]] = []
    cursor = ""
    pages = 0
    while True:
        status, page, headers = await svc.get(query + "&limit=700" + cursor)
        assert status == 200 and page["stale"] is False and page["coverage"]["complete"] is True
        rows.extend(page["bars"])
        pages += 1
        if page["next_cursor"] is None:
            break
        assert headers["X-Next-Cursor"] == page["next_cursor"]
        cursor = "&cursor=" + page["next_cursor"]
    assert pages == -(-len(truth) // 700)
    iso = [from_ms(t).isoformat().replace("+00:00", "Z") for t in truth.t.tolist()]
    assert list(rows[0]) == ["timestamp", "open", "high", "low", "close", "volume", "vwap", "trades", "otc"]
    assert [r["timestamp"] for r in rows] == iso
    assert [r["close"] for r in rows] == truth.c.tolist()
    status, data, headers = await svc.get(query + "&format=arrow")
    assert status == 200 and headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(data).read_all()
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == truth.t.tolist()
    assert table.column("vwap").to_pylist() == truth.vw.tolist()
    meta = table.schema.metadata
    assert (meta[b"mdw.ticker"], meta[b"mdw.timeframe"], meta[b"mdw.adjustment"]) == (b"AAPL", b"1m", b"none")
    assert json.loads(meta[b"mdw.coverage"])["complete"] is True and meta[b"mdw.as_of"]
    status, data, _ = await svc.get(query + "&format=csv")
    csv = pacsv.read_csv(io.BytesIO(data))
    assert csv.column_names == ["timestamp", "open", "high", "low", "close", "volume", "vwap", "trades",
                                "otc"]
    assert csv.column("open").to_pylist() == truth.o.tolist()
    assert data.split(b"\n")[1].startswith(iso[0].encode() + b",")
    status, page, _ = await svc.get(query + "&names=vendor&limit=3")
    assert [r["t"] for r in page["bars"]] == truth.t[:3].tolist()
    assert [r["c"] for r in page["bars"]] == truth.c[:3].tolist()
    status, data, _ = await svc.get(query + "&names=vendor&format=csv")
    assert pacsv.read_csv(io.BytesIO(data)).column("t").to_pylist() == truth.t.tolist()
    status, daily, _ = await svc.get("/v1/bars/AAPL?timeframe=1d&start=2024-01-02&end=2024-01-04")
    assert [(r["timestamp"], r["date"]) for r in daily["bars"]] == [
        ("2024-01-02T05:00:00Z", "2024-01-02"), ("2024-01-03T05:00:00Z", "2024-01-03"),
        ("2024-01-04T05:00:00Z", "2024-01-04")]
    status, bad, _ = await svc.get(query + "&names=short")
    assert status == 400 and bad["error"]["code"]
    status, data, headers = await svc.get(query + "&format=arrow&limit=500")
    assert pa.ipc.open_stream(data).read_all().num_rows <= 500 and "X-Next-Cursor" in headers


async def test_symbols_routes_track_patch_and_delete(sim: SimServer, service_factory: ServiceFactory) -> None:
    """POST tracks and backfills, GET lists with series, PATCH changes, DELETE untracks and purges."""
    svc = await service_factory(sim)
    body = {"ticker": "MSFT", "timeframes": ["1d"], "start": "2024-01-02"}
    status, created = await svc.send("POST", "/v1/symbols", json=body, headers=svc.admin)
    assert status == 201 and created["run_id"]
    await svc.state.runs.wait_idle()
    status, listed, _ = await svc.get("/v1/symbols")
    msft = next(s for s in listed["symbols"] if s["ticker"] == "MSFT")
    assert msft["timeframes"] == ["1d"] and msft["series"][0]["bars"] > 0
    status, patched = await svc.send("PATCH", "/v1/symbols/MSFT", json={"timeframes": ["1d", "1h"]},
                                     headers=svc.admin)
    assert status == 200 and patched["symbol"]["timeframes"] == ["1d", "1h"]
    status, one, _ = await svc.get("/v1/symbols/MSFT")
    assert status == 200 and one["timeframes"] == ["1d", "1h"]
    status, deleted = await svc.send("DELETE", "/v1/symbols/MSFT?purge=true", headers=svc.admin)
    assert status == 200 and deleted["purged"] is True
    status, bars, _ = await svc.get("/v1/bars/MSFT?timeframe=1d&start=2024-01-02&end=2024-12-31")
    assert status == 404 and bars["error"]["code"] == "not_found"  # purged: nothing stored under it (#21)
    status, missing = await svc.send("PATCH", "/v1/symbols/ZZZZ", json={"active": False}, headers=svc.admin)
    assert status == 404 and missing["error"]["code"] == "not_found"
    audit = await svc.state.store.audit.recent()
    assert {"symbols.create", "symbols.update", "symbols.delete"} <= {str(a.get("action")) for a in audit}


async def test_actions_coverage_and_runs_routes_describe_what_was_fetched(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """Dividends, splits, coverage (with heat map) and the runs list reflect a finished backfill."""
    svc = await service_factory(sim)
    ticker = next(t for t in sim.market.universe() if sim.market.dividends(t) and sim.market.splits(t))
    run = await svc.backfill({"symbols": [ticker], "timeframes": ["1d"], "start": "2000-01-03",
                              "end": "2024-01-05", "corporate_actions": True})
    status, divs, _ = await svc.get(f"/v1/dividends/{ticker}")
    assert status == 200 and len(divs["dividends"]) > 0
    assert {d["id"] for d in divs["dividends"]} <= {d.id for d in sim.market.dividends(ticker)}
    status, splits, _ = await svc.get(f"/v1/splits/{ticker}")
    expected = [s for s in sim.market.splits(ticker) if s.execution_date.isoformat() <= "2024-01-05"]
    assert [s["execution_date"] for s in splits["splits"]][: len(expected)] == [
        s.execution_date.isoformat() for s in expected]
    status, cov, _ = await svc.get(f"/v1/coverage/{ticker}?timeframe=1d&start=2024-01-01&end=2024-01-09")
    states = {c["day"]: c["state"] for c in cov["heatmap"]["sessions"]}
    assert states["2024-01-03"] == "covered" and states["2024-01-08"] == "missing"
    assert "2024-01-06" not in states  # a Saturday holds no session
    status, runs, _ = await svc.get("/v1/backfills?limit=5")
    assert status == 200 and runs["runs"][0]["id"] == run["id"]
    status, err, _ = await svc.get("/v1/backfills/doesnotexist")
    assert status == 404 and err["error"]["code"] == "not_found"


async def test_operations_routes_report_health_readiness_metrics_and_overview(
    sim: SimServer, service_factory: ServiceFactory
) -> None:
    """healthz, readyz, metrics, overview, vendor history and alerts answer with their contents."""
    svc = await service_factory(sim)
    await svc.backfill({"symbols": ["AAPL"], "timeframes": ["1d"], "start": "2024-01-02",
                        "end": "2024-01-05"})
    assert (await svc.get("/healthz"))[:2] == (200, {"status": "ok"})
    status, ready, _ = await svc.get("/readyz")
    assert status == 200 and ready["checks"]["migrations"]["ok"]
    assert ready["checks"]["last_run"]["status"] == "ok"
    status, text, _ = await svc.get("/metrics")
    metrics = text.decode()
    for name in ("mdw_vendor_requests_total", "mdw_vendor_rate_limited_total", "mdw_vendor_retries_total",
                 "mdw_vendor_breaker_state", "mdw_rows_written_total", "mdw_run_duration_seconds_count",
                 "mdw_series_freshness_seconds{", "mdw_http_request_duration_seconds_bucket{"):
        assert name in metrics, name
    assert 'route="/v1/backfills/{run_id}"' in metrics
    status, overview, _ = await svc.get("/v1/overview")
    assert overview["series"]["bars"] == 4 and overview["vendor"]["totals"]["requests"] >= 1
    assert overview["runs"]["recent"][0]["status"] == "ok"
    status, history, _ = await svc.get("/v1/vendor/history?minutes=60")
    assert status == 200 and history["budget"]["plan"] == "unlimited"
    assert (await svc.get("/v1/alerts"))[1] == {"alerts": []}


async def test_bad_input_gets_a_json_4xx_never_a_5xx(sim: SimServer, service_factory: ServiceFactory) -> None:
    """Malformed tickers, timeframes, times, cursors and bodies, and unknown routes, get JSON 4xx errors."""
    svc = await service_factory(sim)
    for path, code in [("/v1/bars/B%40D!", "bad_ticker"), ("/v1/bars/AAPL?timeframe=7x", "bad_timeframe"),
                       ("/v1/bars/AAPL?start=yesterday", "bad_time"),
                       ("/v1/bars/AAPL?cursor=zzz", "bad_cursor"),
                       ("/v1/bars/AAPL?start=2024-02-01&end=2024-01-01", "bad_range"),
                       ("/v1/bars/AAPL?limit=0", "bad_request"), ("/v1/bars/AAPL?limit=60000", "bad_limit"),
                       ("/v1/bars/AAPL?format=xml", "bad_request"), ("/v1/nope", "not_found")]:
        status, body, _ = await svc.get(path)
        assert 400 <= status < 500 and body["error"]["code"] == code, (path, body)
    status, body = await svc.send("POST", "/v1/backfills", json={"symbols": []}, headers=svc.admin)
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = await svc.send("POST", "/v1/backfills", data=b"{not json", headers=svc.admin)
    assert status == 400
    status, body = await svc.send("POST", "/v1/backfills", json={**WEEK, "distributed": True},
                                  headers=svc.admin)
    assert status == 501 and body["error"]["code"] == "distributed_unavailable"

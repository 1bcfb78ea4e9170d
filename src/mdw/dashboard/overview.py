"""The overview page, rendered on the server from the public API so it works without JavaScript.

It asks ``GET /v1/stats``, ``GET /readyz`` and ``GET /v1/backfills`` in process and prints what
they say; each number carries ``data-field`` naming the API field it shows, so a browser test
(or a curious user) can check it against the API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from html import escape
from typing import Any

from starlette.types import ASGIApp

from mdw.dashboard.inprocess import ApiResponse, api_get
from mdw.dashboard.layout import page


def _int(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, int | float) else "–"


def _time(ms: Any) -> str:
    if not isinstance(ms, int):
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    s = max(0, round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _card(label: str, field: str, value: Any, shown: str, note: str = "", cls: str = "") -> str:
    return (f'<div class="card"><div class="label">{escape(label)}</div>'
            f'<div class="value {cls}" data-field="{escape(field)}" data-value="{escape(str(value))}">'
            f'{escape(shown)}</div>{f"<div class=note>{escape(note)}</div>" if note else ""}</div>')


def _problem(what: str, res: ApiResponse) -> str:
    err = res.body.get("error", {}) if isinstance(res.body, dict) else {}
    message = err.get("message") or f"HTTP {res.status}"
    hint = " Reads on this server need an API key." if res.status == 401 else ""
    return f'<p class="error">{escape(what)}: {escape(str(message))}.{hint}</p>'


def _cards(stats: dict[str, Any], ready: dict[str, Any]) -> str:
    vendor = stats.get("vendor_last_hour", {})
    breaker = str(ready.get("breaker", "unknown"))
    share = vendor.get("budget_share")
    share_text = f"{share * 100:.1f} %" if isinstance(share, int | float) else "–"
    stale = stats.get("stale_series", 0)
    def num(label: str, field: str, src: dict[str, Any], note: str = "", cls: str = "") -> str:
        return _card(label, field, src.get(field), _int(src.get(field)), note, cls)

    return '<div class="cards">' + "".join((
        num("Symbols tracked", "symbols_tracked", stats),
        num("Series tracked", "series_tracked", stats, f"{_int(stats.get('series_stored'))} stored"),
        num("Bars stored", "bars_stored", stats),
        num("Stale series", "stale_series", stats, f"behind by more than {_age(stats.get('stale_after_s'))}",
            "stale" if stale else "fresh"),
        _card("Vendor breaker", "breaker", breaker, breaker.replace("_", "-"), "", f"state-{breaker}"),
        num("Requests, last hour", "requests", vendor, f"over {_int(vendor.get('runs'))} runs"),
        num("429s, last hour", "rate_limited", vendor),
        num("Retries, last hour", "retries", vendor),
        _card("Rate budget used", "budget_share", share, share_text,
              f"of {_int(vendor.get('allowance'))} requests/h allowed by {vendor.get('plan', '?')}"),
)) + "</div>"


def _table(table_id: str, heads: tuple[str, ...], rows: list[str]) -> str:
    """A table; a heading that starts with ``#`` is a right-aligned number column."""
    th = "".join(f'<th class="num" scope="col">{h[1:]}</th>' if h.startswith("#")
                 else f'<th scope="col">{h}</th>' for h in heads)
    return (f'<div class="table-wrap"><table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _runs_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return '<p class="muted">No runs recorded yet.</p>'
    rows = []
    for r in runs:
        started, finished = r.get("started_at_ms"), r.get("finished_at_ms")
        took = (finished - started) / 1000 if isinstance(started, int) and isinstance(finished, int) else None
        status = str(r.get("status", "?"))
        rows.append(
            f'<tr data-run="{escape(str(r.get("id", "")))}"><td>{_time(started)}</td>'
            f'<td>{escape(str(r.get("kind", "")))}</td>'
            f'<td><span class="badge outcome-{escape(status)}">{escape(status)}</span></td>'
            f'<td class="num">{_age(took) if took is not None else "running"}</td>'
            f'<td><a href="/v1/backfills/{escape(str(r.get("id", "")))}">report (JSON)</a></td></tr>')
    return _table("runs", ("Started", "Kind", "Outcome", "#Took", "Report"), rows)


def _series_table(series: list[dict[str, Any]]) -> str:
    if not series:
        return ('<p class="muted">No series stored yet. Track a symbol on the '
                '<a href="/admin">Admin</a> page.</p>')
    rows = []
    for s in series:
        stale = bool(s.get("stale"))
        tk, tf = str(s.get("ticker", "")), str(s.get("timeframe", ""))
        rows.append(
            f'<tr class="{"is-stale" if stale else ""}" data-series="{escape(tk)}/{escape(tf)}">'
            f'<td><a href="/chart?ticker={escape(tk)}&amp;timeframe={escape(tf)}">{escape(tk)}</a></td>'
            f'<td>{escape(tf)}</td><td class="num" data-field="bars">{_int(s.get("bars"))}</td>'
            f'<td>{_time(s.get("first_t"))}</td><td>{_time(s.get("last_t"))}</td>'
            f'<td class="num">{_age(s.get("lag_s"))}</td><td>{_time(s.get("fetched_at_ms"))}</td>'
            f'<td>{"<span class=stale>stale</span>" if stale else "<span class=fresh>fresh</span>"}'
            f'{"" if s.get("tracked", True) else " <span class=muted>(not tracked)</span>"}</td></tr>')
    heads = ("Ticker", "Timeframe", "#Bars", "First bar", "Last bar", "#Behind by", "Fetched", "Freshness")
    return _table("series", heads, rows)


async def render_overview(app: ASGIApp, headers: dict[str, str]) -> str:
    """The overview page for a request that came with ``headers`` (its credentials are reused)."""
    stats, ready, runs = await asyncio.gather(
        api_get(app, "/v1/stats", headers=headers),
        api_get(app, "/readyz", headers=headers),
        api_get(app, "/v1/backfills", {"limit": "10"}, headers=headers),
    )
    parts = ["<h1>Overview</h1>"]
    ready_body: dict[str, Any] = ready.body if isinstance(ready.body, dict) else {}
    if not stats.ok:
        parts.append(_problem("Could not read /v1/stats", stats))
    else:
        parts.append(_cards(stats.body, ready_body))
    if not ready.ok and ready.status != 503:
        parts.append(_problem("Could not read /readyz", ready))
    elif ready.status == 503:
        parts.append('<p class="error">Not ready: see <a href="/readyz">/readyz</a>.</p>')
    leader = ready_body.get("leader")
    age = ready_body.get("last_run_age_s")
    parts.append(f'<p class="muted">Scheduler leader: {escape(str(leader))} · last run '
                 f'{_age(age) + " ago" if age is not None else "never"} · '
                 'vendor counts come from the run reports of every process, spread over each run.</p>')
    parts.append('<h2>Last runs</h2>')
    if runs.ok:
        body = runs.body
        items = body.get("runs", []) if isinstance(body, dict) else body
        parts.append(_runs_table(list(items or [])) + '<p><a href="/runs">Live progress and all runs</a></p>')
    else:
        parts.append(_problem("Could not read /v1/backfills", runs))
    parts.append('<h2>Freshness per series</h2>')
    if stats.ok:
        parts.append(_series_table(list(stats.body.get("series", []))))
    parts.append('<p class="muted">Every number on this page comes from the public API: '
                 '<a href="/v1/stats">/v1/stats</a>, <a href="/readyz">/readyz</a> and '
                 '<a href="/v1/backfills">/v1/backfills</a> (<a href="/docs">API docs</a>).</p>')
    return page("Overview", "/", "\n".join(parts))

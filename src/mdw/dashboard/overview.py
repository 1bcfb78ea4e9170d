"""The overview page, rendered on the server from the public API so it works without JavaScript.

It asks ``GET /v1/stats``, ``GET /v1/symbols``, ``GET /readyz`` and ``GET /v1/backfills`` in
process and prints what they say; each number carries ``data-field`` naming the API field it
shows, so a browser test (or a curious user) can check it against the API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from html import escape

from starlette.types import ASGIApp

from mdw.dashboard.inprocess import ApiResponse, api_get
from mdw.dashboard.layout import page
from mdw.domain import Timeframe

# A decoded JSON object of the API: values are checked with isinstance where they are used.
Obj = dict[str, object]


def _obj(value: object) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _int(n: object) -> str:
    return f"{int(n):,}" if isinstance(n, int | float) else "–"


def _time(ms: object) -> str:
    if not isinstance(ms, int):
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(seconds: object) -> str:
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


def _card(label: str, field: str, value: object, shown: str, note: str = "", cls: str = "") -> str:
    return (f'<div class="card"><div class="label">{escape(label)}</div>'
            f'<div class="value {cls}" data-field="{escape(field)}" data-value="{escape(str(value))}">'
            f'{escape(shown)}</div>{f"<div class=note>{escape(note)}</div>" if note else ""}</div>')


def _problem(what: str, res: ApiResponse) -> str:
    err = _obj(_obj(res.body).get("error"))
    message = err.get("message") or f"HTTP {res.status}"
    hint = " Reads on this server need an API key." if res.status == 401 else ""
    return f'<p class="error">{escape(what)}: {escape(str(message))}.{hint}</p>'


def _cards(ov: Obj) -> str:
    series = _obj(ov.get("series"))
    vendor = _obj(ov.get("vendor"))
    hour = _obj(vendor.get("last_hour"))
    budget = _obj(vendor.get("budget"))
    breaker = str(vendor.get("breaker", "unknown"))
    share = budget.get("share")
    share_text = f"{share * 100:.1f} %" if isinstance(share, int | float) else "–"
    allowed = budget.get("allowed_per_min")
    plan_note = (f"{_int(budget.get('used_last_min'))} of {_int(allowed)} requests/min allowed by "
                 f"{budget.get('plan', '?')}, last minute" if allowed else f"plan {budget.get('plan', '?')}")
    stale = series.get("stale", 0)
    no_client = "" if vendor.get("configured") else "no vendor key configured"

    def num(label: str, field: str, src: Obj, note: str = "", cls: str = "") -> str:
        return _card(label, field, src.get(field), _int(src.get(field)), note, cls)

    return '<div class="cards">' + "".join((
        num("Symbols tracked", "tracked_symbols", series, f"{_int(series.get('symbols'))} known"),
        num("Series stored", "series", series),
        num("Bars stored", "bars", series),
        num("Stale series", "stale", series, f"behind by more than {_age(series.get('stale_after_s'))}",
            "stale" if stale else "fresh"),
        _card("Vendor breaker", "breaker", breaker, breaker.replace("_", "-"), no_client, f"state-{breaker}"),
        num("Requests, last hour", "requests", hour, no_client),
        num("429s, last hour", "rate_limited", hour),
        num("Retries, last hour", "retries", hour),
        _card("Rate budget used", "share", share, share_text, plan_note),
    )) + "</div>"


def _stream_cards(ov: Obj) -> str:
    """The vendor's WebSocket, when this server streams (``MDW_STREAM``): ``stream`` of the overview."""
    st = _obj(ov.get("stream"))
    if not st.get("enabled"):
        return ""
    feeds = [_obj(f) for f in _obj(st.get("feeds")).values()]
    drops = sum(d for f in feeds if isinstance(d := f.get("disconnects"), int))
    rec = _obj(st.get("reconcile"))
    connected = bool(st.get("connected"))
    lag = st.get("lag_ms")
    rate = st.get("messages_per_s")
    errors = "; ".join(str(f.get("last_error")) for f in feeds if f.get("last_error"))
    return "<h2>Stream</h2>" + '<div class="cards">' + "".join((
        _card("Stream", "stream_connected", connected, "connected" if connected else "disconnected",
              errors, "fresh" if connected else "stale"),
        _card("Messages/s", "messages_per_s", rate, f"{rate:,.1f}" if isinstance(rate, int | float) else "–",
              "last 10 s"),
        _card("Lag", "lag_ms", lag, _age(lag / 1000) if isinstance(lag, int | float) else "–",
              "last batch stored after its minute ended"),
        _card("Last message", "last_message_ms", st.get("last_message_ms"),
              _time(st.get("last_message_ms"))),
        _card("Bars stored", "bars_stored", st.get("bars_stored"), _int(st.get("bars_stored")),
              "provisional until reconciled"),
        _card("Disconnects", "disconnects", drops, _int(drops), "each followed by a reconnect"),
        _card("Reconciled through", "through_ms", rec.get("through_ms"), _time(rec.get("through_ms")),
              f"{_int(rec.get('bars_corrected'))} corrected, {_int(rec.get('bars_filled'))} filled"),
    )) + "</div>"


def _table(table_id: str, heads: tuple[str, ...], rows: list[str]) -> str:
    """A table; a heading that starts with ``#`` is a right-aligned number column."""
    th = "".join(f'<th class="num" scope="col">{h[1:]}</th>' if h.startswith("#")
                 else f'<th scope="col">{h}</th>' for h in heads)
    return (f'<div class="table-wrap"><table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _stale_note(ov: Obj) -> str:
    """Why series are stale and what brings them up to now: red numbers alone read as breakage.

    A database made by ``mdw demo`` (or any backfill of a past period) ends where its range ends,
    so every series is stale until something fetches up to now; who does that depends on this server.
    """
    series = _obj(ov.get("series"))
    stale = series.get("stale")
    if not isinstance(stale, int) or stale <= 0:
        return ""
    sched = _obj(ov.get("scheduler"))
    keyed = bool(_obj(ov.get("vendor")).get("configured"))
    if sched.get("enabled") and keyed:
        who = "The scheduler of this server is bringing tracked symbols up to now."
    elif not keyed:
        who = ("This server has no vendor key, so nothing fetches newer bars: configure one "
               "(POLYGON_API_KEY) or run <code>mdw update</code> where one is set.")
    else:
        who = ("The scheduler is off on this server: run <code>mdw update</code> to fetch up to now, "
               "or serve with the scheduler on.")
    return (f'<p class="notice" id="stale-note">{stale:,} series are stale: their stored bars end more than '
            f'{escape(_age(series.get("stale_after_s")))} of trading time before now (a demo database ends '
            f'where its backfill range ended). {who}</p>')


def _runs_table(runs: list[object]) -> str:
    if not runs:
        return '<p class="muted">No runs recorded yet.</p>'
    rows = []
    for r in map(_obj, runs):
        started, finished = r.get("started_at_ms"), r.get("finished_at_ms")
        took = (finished - started) / 1000 if isinstance(started, int) and isinstance(finished, int) else None
        status = str(r.get("status", "?"))
        rows.append(
            f'<tr data-run="{escape(str(r.get("id", "")))}"><td>{_time(started)}</td>'
            f'<td>{escape(str(r.get("kind", "")))}</td>'
            f'<td><span class="badge outcome-{escape(status)}">{escape(status)}</span></td>'
            f'<td class="num">{_age(took) if took is not None else "running"}</td>'
            f'<td class="num">{_int(r.get("requests"))}</td>'
            f'<td class="num">{_int(r.get("bars_fetched"))}</td>'
            f'<td><a href="/runs?run={escape(str(r.get("id", "")))}">report</a></td></tr>')
    return _table("runs", ("Started", "Kind", "Outcome", "#Took", "#Requests", "#Bars", "Report"), rows)


def _series_rows(symbols: list[object]) -> list[Obj]:
    """Every stored or tracked series of ``GET /v1/symbols``, one row each."""
    rows: list[Obj] = []
    for sym in map(_obj, symbols):
        seen = set()
        for s in map(_obj, _list(sym.get("series"))):
            seen.add(s.get("timeframe"))
            rows.append({**s, "ticker": sym.get("ticker"), "tracked": bool(sym.get("active"))})
        for tf in _list(sym.get("timeframes")):
            if tf not in seen and sym.get("active"):
                rows.append({"ticker": sym.get("ticker"), "timeframe": tf, "bars": 0, "stale": True,
                             "tracked": True})
    return sorted(rows, key=lambda r: (str(r["ticker"]), _tf_order(r["timeframe"])))


def _tf_order(tf: object) -> tuple[int, tuple[object, ...], str]:
    """Timeframes in their natural order (1m < 5m < 1h < 1d < 1w), unparsable ones last."""
    try:
        return (0, tuple(Timeframe.parse(str(tf)).sort_key()), str(tf))
    except Exception:  # a timeframe this version cannot parse still gets a row, at the end
        return (1, (), str(tf))


def _series_table(series: list[Obj]) -> str:
    if not series:
        return ('<p class="muted">No series stored yet. Track a symbol on the '
                '<a href="/admin">Admin</a> page.</p>')
    groups: dict[str, list[str]] = {}
    for s in series:
        stale = bool(s.get("stale", True))
        tk, tf = str(s.get("ticker", "")), str(s.get("timeframe", ""))
        rows = groups.setdefault(tk, [])
        # One group per symbol: its name heads the group's first row, its timeframes follow in order.
        name = (f'<a href="/chart?ticker={escape(tk)}&amp;timeframe={escape(tf)}">{escape(tk)}</a>'
                if not rows else f'<span class="muted">{escape(tk)}</span>')
        rows.append(
            f'<tr class="{"is-stale" if stale else ""}" data-series="{escape(tk)}/{escape(tf)}">'
            f'<td>{name}</td>'
            f'<td><a href="/chart?ticker={escape(tk)}&amp;timeframe={escape(tf)}">{escape(tf)}</a></td>'
            f'<td class="num" data-bars="{escape(str(s.get("bars")))}">{_int(s.get("bars"))}</td>'
            f'<td>{_time(s.get("first_t"))}</td><td>{_time(s.get("last_t"))}</td>'
            f'<td class="num">{_age(s.get("lag_s"))}</td><td>{_time(s.get("fetched_at_ms"))}</td>'
            f'<td>{"<span class=stale>stale</span>" if stale else "<span class=fresh>fresh</span>"}'
            f'{"" if s.get("tracked", True) else " <span class=muted>(not tracked)</span>"}</td></tr>')
    heads = ("Ticker", "Timeframe", "#Bars", "First bar", "Last bar", "#Behind by", "Fetched", "Freshness")
    th = "".join(f'<th class="num" scope="col">{h[1:]}</th>' if h.startswith("#")
                 else f'<th scope="col">{h}</th>' for h in heads)
    bodies = "".join(f'<tbody class="group" data-ticker="{escape(tk)}">{"".join(rows)}</tbody>'
                     for tk, rows in groups.items())
    stale_n = sum(1 for s in series if s.get("stale", True))
    filter_box = (
        '<form class="controls" id="series-filter-form" role="search">'
        '<label>Filter <input type="search" id="series-filter" placeholder="ticker, timeframe or stale"'
        ' autocomplete="off" size="28"></label>'
        f'<span class="muted" id="series-count" aria-live="polite">{len(series)} series in {len(groups)}'
        f' symbols, {stale_n} stale</span></form>')
    return (filter_box + f'<div class="table-wrap"><table id="series"><thead><tr>{th}</tr></thead>'
            + bodies + "</table></div>")


async def render_overview(app: ASGIApp, headers: dict[str, str]) -> str:
    """The overview page for a request that came with ``headers`` (its credentials are reused)."""
    ov, symbols = await asyncio.gather(
        api_get(app, "/v1/overview", headers=headers),
        api_get(app, "/v1/symbols", headers=headers),
    )
    parts = ["<h1>Overview</h1>"]
    body = _obj(ov.body) if ov.ok else {}
    if not ov.ok:
        parts.append(_problem("Could not read /v1/overview", ov))
    else:
        parts.append(_cards(body))
        parts.append(_stale_note(body))
        parts.append(_stream_cards(body))
        sched = _obj(body.get("scheduler"))
        leader = ("off" if not sched.get("enabled")
                  else "this process leads" if sched.get("leader") else "another process leads")
        parts.append(f'<p class="muted">Scheduler: {escape(leader)} · vendor counts are this server\'s own '
                     'client (runs of other processes are in their run reports).</p>')
        parts.append("<h2>Last runs</h2>")
        parts.append(_runs_table(_list(_obj(body.get("runs")).get("recent")))
                     + '<p><a href="/runs">Live progress and every run report</a></p>')
    parts.append("<h2>Freshness per series</h2>")
    if symbols.ok and isinstance(symbols.body, dict):
        parts.append(_series_table(_series_rows(_list(symbols.body.get("symbols")))))
    else:
        parts.append(_problem("Could not read /v1/symbols", symbols))
    parts.append('<p class="muted">Every number on this page comes from the public API: '
                 '<a href="/v1/overview">/v1/overview</a> and <a href="/v1/symbols">/v1/symbols</a> '
                 '(<a href="/docs">API docs</a>).</p>')
    return page("Overview", "/", "\n".join(parts), script="overview.js")

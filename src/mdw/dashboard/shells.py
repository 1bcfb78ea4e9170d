"""The interactive pages: static HTML frames that small ES modules fill from the public API.

They hold no data, so they render instantly; the module of each page then asks ``/v1`` for what
it shows, exactly as any API client would.
"""

from __future__ import annotations

from html import escape

from mdw.dashboard.layout import NOSCRIPT, PAGES, page

_KEY_FORM = """
<form class="controls" id="key-form" autocomplete="off">
  <label>Admin key
    <input type="password" name="key" autocomplete="off" spellcheck="false" size="34"
      placeholder="mdw_…" aria-describedby="key-help"></label>
  <label class="inline"><input type="checkbox" name="keep"> keep for this tab</label>
  <button type="submit">Use key</button>
  <button type="button" class="secondary" name="forget">Forget key</button>
</form>
<p class="muted" id="key-help">The key is sent only in the Authorization header of this page's own
API calls. It is kept in memory, or in this tab's session storage if you tick the box; never in
the URL or local storage. Create one with <code>mdw keys create --scope admin</code>.</p>
"""


def coverage_page() -> str:
    body = f"""<h1>Coverage</h1>
{NOSCRIPT}
<form class="controls" id="coverage-form">
  <label>Timeframe <select name="timeframe" id="cov-timeframe"></select></label>
  <label>From <input type="date" name="start" id="cov-start"></label>
  <label>To <input type="date" name="end" id="cov-end"></label>
  <button type="submit">Show</button>
</form>
<div class="legend-row" aria-label="Legend">
  <span><span class="cell covered"></span>covered</span>
  <span><span class="cell empty"></span>confirmed empty by the vendor</span>
  <span><span class="cell partial"></span>partly covered</span>
  <span><span class="cell missing"></span>missing (the calendar expects bars)</span>
  <span><span class="cell failed"></span>failed in a run</span>
  <span><span class="cell outside_plan"></span>outside plan (before the key's plan history; not a gap)</span>
</div>
<p id="cov-status" class="muted" aria-live="polite">Loading…</p>
<p id="cov-result" hidden aria-live="polite"></p>
<div class="heatmap" id="heatmap"></div>
<dialog id="gap-dialog" aria-labelledby="gap-title">
  <form method="dialog" id="gap-form">
    <h2 id="gap-title">Backfill this gap?</h2>
    <p id="gap-text"></p>
    <label>Admin key <input type="password" name="key" autocomplete="off" spellcheck="false"></label>
    <p class="muted">Used for this request only unless a key is already set on the Admin page.</p>
    <div class="controls">
      <button type="submit" value="backfill" id="gap-go">Start backfill</button>
      <button type="submit" value="cancel" class="secondary" formnovalidate>Cancel</button>
    </div>
  </form>
</dialog>
"""
    return page("Coverage", "/coverage", body, script="coverage.js")


def universes_page() -> str:
    body = f"""<h1>Universes</h1>
{NOSCRIPT}
<form class="controls" id="universe-form">
  <label>Universe <select name="name" id="uni-name"></select></label>
  <label>Timeframes <input name="timeframes" id="uni-timeframes" value="1d" size="10"></label>
  <label>From <input type="date" name="start" id="uni-start"></label>
  <label>To <input type="date" name="end" id="uni-end"></label>
  <button type="submit">Show</button>
</form>
<p id="uni-status" class="muted" aria-live="polite">Loading…</p>
<section aria-labelledby="size-h">
  <h2 id="size-h">Members over time</h2>
  <p class="muted">How many tickers the universe held on each day (as of that day: names listed
  later join, delisted names leave).</p>
  <div id="uni-sizes" class="chart-box" role="img" aria-label="Universe size over time"></div>
</section>
<section aria-labelledby="ucov-h">
  <h2 id="ucov-h">Coverage by universe</h2>
  <div class="table-wrap"><table id="uni-coverage">
    <thead><tr><th>Universe</th><th>Timeframe</th><th class="num">Members</th>
    <th class="num">Complete</th><th class="num">Partial</th><th class="num">Missing</th>
    <th class="num">Held</th></tr></thead>
    <tbody><tr><td colspan="7" class="muted">Loading…</td></tr></tbody>
  </table></div>
</section>
"""
    return page("Universes", "/universes", body, script="universes.js")


def runs_page() -> str:
    body = f"""<h1>Runs</h1>
{NOSCRIPT}
<section aria-labelledby="live-h">
  <h2 id="live-h">Running now</h2>
  <div id="live" aria-live="polite"><p class="muted">Loading…</p></div>
</section>
<section aria-labelledby="hist-h">
  <h2 id="hist-h">History</h2>
  <div class="table-wrap"><table id="runs-table">
    <thead><tr><th>Started</th><th>Kind</th><th>Outcome</th><th class="num">Series</th>
    <th class="num">Requests</th><th class="num">Bars</th><th class="num">Duration</th>
    <th>Report</th></tr></thead>
    <tbody><tr><td colspan="8" class="muted">Loading…</td></tr></tbody>
  </table></div>
  <div id="report-view" hidden>
    <h2 id="report-h">Run report</h2>
    <div id="report-body" class="report-body"></div>
    <details><summary>JSON</summary>
    <pre class="report" id="report-json" tabindex="0" aria-labelledby="report-h"></pre></details>
  </div>
</section>
"""
    return page("Runs", "/runs", body, script="runs.js")


def chart_page() -> str:
    body = f"""<h1>Symbol chart</h1>
{NOSCRIPT}
<form class="controls" id="chart-form">
  <label>Ticker <select name="ticker" id="ch-ticker"></select></label>
  <label>Timeframe <select name="timeframe" id="ch-timeframe"></select></label>
  <fieldset class="segmented" id="ch-adjust" style="padding:0;margin:0">
    <legend class="sr-only">Adjustment</legend>
    <label><input type="radio" name="adjust" value="none" checked> Raw</label>
    <label><input type="radio" name="adjust" value="splits"> Splits</label>
    <label><input type="radio" name="adjust" value="all"> Splits + dividends</label>
  </fieldset>
  <label>From <input type="date" name="start" id="ch-start"></label>
  <label>To <input type="date" name="end" id="ch-end"></label>
  <button type="submit">Load</button>
</form>
<p id="chart-summary" aria-live="polite" class="muted">Loading…</p>
<div class="chart-head"><div id="ch-legend" class="chart-legend" aria-live="off"></div>
<span id="ch-zone" class="muted"></span></div>
<div id="chart" role="img" aria-label="Candlestick chart with volume"></div>
<p class="muted">Drag to pan, scroll or pinch to zoom. Older bars load as you pan left;
<span class="badge">S</span> marks a split and <span class="badge">D</span> an ex-dividend date.</p>
"""
    return page("Symbol chart", "/chart", body, script="chart.js")


def admin_page() -> str:
    body = f"""<h1>Admin</h1>
{NOSCRIPT}
{_KEY_FORM}
<p id="admin-result" hidden aria-live="polite"></p>
<fieldset><legend>Track a symbol</legend>
<form class="controls" id="add-form">
  <label>Ticker <input name="ticker" required placeholder="AAPL or X:BTCUSD" size="14"></label>
  <label>Timeframes <input name="timeframes" required value="1d" size="14"></label>
  <label>Start date <input type="date" name="start"></label>
  <button type="submit">Track and backfill</button>
</form></fieldset>
<fieldset><legend>Stop tracking</legend>
<form class="controls" id="remove-form">
  <label>Symbol <select name="ticker" id="remove-ticker" required></select></label>
  <label class="inline"><input type="checkbox" name="purge"> also delete its data</label>
  <button type="submit" class="danger">Stop tracking</button>
</form></fieldset>
<fieldset><legend>Start a backfill</legend>
<form class="controls" id="backfill-form">
  <label>Symbols <input name="symbols" required placeholder="AAPL,MSFT" size="18"></label>
  <label>Timeframes <input name="timeframes" required value="1d" size="10"></label>
  <label>Start <input type="date" name="start" required></label>
  <label>End <input type="date" name="end" required></label>
  <button type="submit">Start backfill</button>
</form></fieldset>
<h2>Tracked symbols</h2>
<div class="table-wrap"><table id="symbols-table">
  <thead><tr><th>Ticker</th><th>Asset class</th><th>Timeframes</th><th>Since</th><th>Active</th></tr></thead>
  <tbody><tr><td colspan="5" class="muted">Loading…</td></tr></tbody>
</table></div>
"""
    return page("Admin", "/admin", body, script="admin.js")


def not_found_page(path: str) -> str:
    """The page for an address the dashboard does not have: says so and links the real pages."""
    links = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in PAGES)
    body = f"""<h1>Page not found</h1>
<p class="error" id="not-found">There is no dashboard page at <code>{escape(path)}</code>.</p>
<p>The pages are:</p>
<ul>{links}</ul>
<p class="muted">The HTTP API lives under <a href="/docs">/docs</a>.</p>
"""
    return page("Page not found", path, body)

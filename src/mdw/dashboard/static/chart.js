// Symbol chart: candlesticks + volume of stored bars, loaded from GET /v1/bars by range.
//
// The first request covers a window ending at the last stored bar (or the chosen range); older
// windows are fetched only when the user pans near the left edge, so a decade of minute bars is
// never pulled at once. Prices come adjusted by the API (adjust=none|splits|all).
// A 1m chart without an end date follows GET /v1/stream/bars (Server-Sent Events, read with fetch
// so the key can be sent) while the service streams: each stored bar is drawn as it arrives.
import { adminKey, api, el, fmtInt } from "./mdw.js";

const form = document.getElementById("chart-form");
const summary = document.getElementById("chart-summary");
const box = document.getElementById("chart");
const tickerSel = document.getElementById("ch-ticker");
const tfSel = document.getElementById("ch-timeframe");
const legend = document.getElementById("ch-legend");
const zoneLabel = document.getElementById("ch-zone");
const adjustSet = document.getElementById("ch-adjust");
const PAGE_LIMIT = 5000;
const WINDOW_BARS = 600;

const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5, mo: 2592e6, q: 7776e6, y: 31536e6 };

function tfMs(tf) {
  const m = /^(\d+)(mo|s|m|h|d|w|q|y)$/.exec(tf);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : 864e5;
}

const isIntraday = (tf) => /^\d+(s|m|h)$/.test(tf);
// US stocks (and their options) trade on New York's clock; crypto, forex and indices are shown in UTC.
const isStock = (ticker) => !/^[XCI]:/.test(ticker);
const zoneOf = (ticker) => (isStock(ticker) ? "America/New_York" : "UTC");
const ZONE_TEXT = { America_New_York: "New York time (America/New_York)", UTC: "UTC" };

// Decimals to show: cents for stocks and indices (4 below $1), pips for forex, and for crypto
// as many as the price needs (BTC in cents, a sub-dollar coin to 6 places).
function precisionOf(ticker, price) {
  const p = Math.abs(price || 0);
  if (/^C:/.test(ticker)) return p >= 20 ? 3 : 5;
  if (/^X:/.test(ticker)) return p >= 1000 ? 2 : p >= 1 ? 4 : 6;
  return p > 0 && p < 1 ? 4 : 2;
}
const fmtPrice = (state, x) => (Number.isFinite(x) ? x.toFixed(state.precision) : "–");

// lightweight-charts draws times as UTC; shift by the market's offset so the axis reads local time.
function zoneOffsetMs(zone, ms) {
  if (zone === "UTC") return 0;
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return local - Math.floor(ms / 1000) * 1000;
}

function localDay(zone, ms) {
  return new Date(ms + zoneOffsetMs(zone, ms)).toISOString().slice(0, 10);
}

function chartTime(state, t) {
  if (!isIntraday(state.timeframe)) return localDay(state.zone, t);
  return Math.floor((t + zoneOffsetMs(state.zone, t)) / 1000);
}

// GET /v1/bars?names=vendor returns a page of bars {t,o,h,l,c,v,vw,n} (t in epoch ms) and the
// cursor of the next page.
function pageRows(data) {
  return { rows: data.bars, next: data.next_cursor };
}

async function fetchBars(state, startMs, endMs, signal) {
  const out = [];
  let cursor = null;
  do {
    const params = {
      timeframe: state.timeframe, adjust: state.adjust, start: startMs, end: endMs,
      limit: PAGE_LIMIT, cursor, names: "vendor",
    };
    const res = await api(`/v1/bars/${encodeURIComponent(state.ticker)}`, { params, signal });
    if (!res.ok) throw new Error(res.error);
    const { rows, next } = pageRows(res.data);
    out.push(...rows);
    cursor = next;
  } while (cursor);
  return out;
}

let lib = null;
async function loadLibrary() {
  if (lib) return lib;
  try {
    lib = await import("./vendor/lightweight-charts.mjs");
  } catch {
    throw new Error("the charting library is not built: run `make web` (npm ci + build in web/)");
  }
  return lib;
}

let current = null; // the chart state of the ticker/timeframe/adjust on screen

async function coverageBounds(ticker, timeframe) {
  const res = await api(`/v1/coverage/${encodeURIComponent(ticker)}`, { params: { timeframe } });
  if (!res.ok) return null;
  const ranges = coverageRanges(res.data, timeframe);
  if (!ranges.length) return null;
  return { first: Math.min(...ranges.map((r) => r[0])), last: Math.max(...ranges.map((r) => r[1])) };
}

// Coverage ranges [start_ms, end_ms) of the bars of one timeframe, whatever the grouping.
function coverageRanges(data, timeframe) {
  return (data.entries ?? [])
    .filter((r) => r.dataset === "bars" && r.timeframe === timeframe)
    .map((r) => [r.start_ms, r.end_ms]);
}

async function markersFor(state) {
  const [splits, dividends] = await Promise.all([
    api(`/v1/splits/${encodeURIComponent(state.ticker)}`),
    api(`/v1/dividends/${encodeURIComponent(state.ticker)}`),
  ]);
  const list = (res, key) => (res.ok ? res.data[key] : []);
  const out = [];
  for (const s of list(splits, "splits")) {
    out.push({ day: s.execution_date, kind: "S", text: `S ${s.split_to}:${s.split_from}`, color: "#6a1b9a" });
  }
  for (const d of list(dividends, "dividends")) {
    out.push({ day: d.ex_dividend_date, kind: "D", text: `D ${d.cash_amount}`, color: "#00695c" });
  }
  return out;
}

function placeMarkers(state) {
  const bars = state.bars;
  if (!bars.length) { state.markerApi.setMarkers([]); box.dataset.markers = "0"; return; }
  const placed = [];
  for (const m of state.events) {
    // A marker sits on the first bar of its day (or the first after it, across holidays).
    const dayMs = Date.parse(`${m.day}T00:00:00Z`);
    const idx = bars.findIndex((b) => Date.parse(`${localDay(state.zone, b.t)}T00:00:00Z`) >= dayMs);
    if (idx < 0 || (idx === 0 && Date.parse(`${localDay(state.zone, bars[0].t)}T00:00:00Z`) > dayMs)) continue;
    placed.push({ time: chartTime(state, bars[idx].t), position: "aboveBar", color: m.color,
      shape: m.kind === "S" ? "arrowDown" : "circle", text: m.text });
  }
  placed.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  state.markerApi.setMarkers(placed);
  box.dataset.markers = String(placed.length);
}

function render(state) {
  const candles = state.bars.map((b) => ({ time: chartTime(state, b.t), open: b.o, high: b.h, low: b.l, close: b.c }));
  const volume = state.bars.map((b) => ({
    time: chartTime(state, b.t), value: Number.isFinite(b.v) ? b.v : 0,
    color: b.c >= b.o ? "rgba(38,166,154,.45)" : "rgba(239,83,80,.45)",
  }));
  state.candles.setData(candles);
  state.volume.setData(volume);
  placeMarkers(state);
  describe(state);
}

function describe(state) {
  const n = state.bars.length;
  box.dataset.candles = String(state.candles.data().length);
  box.dataset.adjust = state.adjust;
  if (!n) {
    summary.textContent = `${state.ticker} ${state.timeframe}: no stored bars in this range.`;
    box.dataset.firstClose = box.dataset.lastClose = "";
    return;
  }
  const first = state.bars[0];
  const last = state.bars[n - 1];
  box.dataset.firstClose = String(first.c);
  box.dataset.lastClose = String(last.c);
  box.dataset.firstT = String(first.t);
  box.dataset.lastT = String(last.t);
  showRange(state);
  showLegend(state, null);
  const adj = { none: "raw prices", splits: "split-adjusted", all: "split- and dividend-adjusted" }[state.adjust];
  summary.textContent = `${state.ticker} ${state.timeframe}, ${adj}: ${fmtInt(n)} candles from ` +
    `${localDay(state.zone, first.t)} (close ${fmtPrice(state, first.c)}) to ${localDay(state.zone, last.t)} ` +
    `(close ${fmtPrice(state, last.c)})` +
    (state.olderDone ? "." : "; pan left for older bars.");
}

// From/To show the range on screen. Values the page filled in are marked as such, so changing
// the ticker or timeframe (or panning back) is not pinned to them; a date the user types is.
function showRange(state) {
  const n = state.bars.length;
  if (!n) return;
  for (const [name, t] of [["start", state.bars[0].t], ["end", state.bars[n - 1].t]]) {
    const input = form.elements[name];
    if (input.value && input.dataset.auto !== "1") continue;
    input.value = localDay(state.zone, t);
    input.dataset.auto = "1";
  }
}

// The OHLCV of the bar under the cursor (or of the newest bar when the cursor is elsewhere).
function showLegend(state, time) {
  const bars = state.bars;
  if (!bars.length) { legend.textContent = ""; return; }
  let bar = bars[bars.length - 1];
  if (time !== null && time !== undefined) {
    const key = typeof time === "object" ? `${time.year}-${String(time.month).padStart(2, "0")}-${String(time.day).padStart(2, "0")}` : time;
    bar = bars.find((b) => chartTime(state, b.t) === key) ?? bar;
  }
  const when = isIntraday(state.timeframe)
    ? new Date(chartTime(state, bar.t) * 1000).toISOString().slice(0, 16).replace("T", " ")
    : localDay(state.zone, bar.t);
  const parts = [["O", fmtPrice(state, bar.o)], ["H", fmtPrice(state, bar.h)], ["L", fmtPrice(state, bar.l)],
    ["C", fmtPrice(state, bar.c)], ["V", fmtInt(Number.isFinite(bar.v) ? Math.round(bar.v) : null)]];
  legend.replaceChildren(el("span", { class: "when", text: when }),
    ...parts.map(([k, v]) => el("span", { dataset: { k } }, el("b", { text: k }), ` ${v}`)));
  legend.dataset.t = String(bar.t);
}

async function loadOlder(state) {
  if (state.loading || state.olderDone || !state.bars.length) return;
  state.loading = true;
  try {
    const end = state.bars[0].t;
    const start = Math.max(state.floor ?? -Infinity, end - state.spanMs);
    const older = await fetchBars(state, start, end);
    if (state !== current) return;
    if (start <= (state.floor ?? -Infinity) || !Number.isFinite(start)) state.olderDone = true;
    if (older.length) {
      const range = state.chart.timeScale().getVisibleLogicalRange();
      state.bars = older.concat(state.bars);
      render(state);
      // Keep the view where it was: the new bars were inserted at the left.
      if (range) state.chart.timeScale().setVisibleLogicalRange({ from: range.from + older.length, to: range.to + older.length });
    } else if (state.floor === null) {
      state.olderDone = true;
      describe(state);
    }
  } catch (err) {
    summary.textContent = `Could not load older bars: ${err.message}`;
  } finally {
    state.loading = false;
  }
}

function applyLive(state, bar) {
  const i = state.bars.findIndex((b) => b.t >= bar.t);
  const row = { t: bar.t, o: bar.o, h: bar.h, l: bar.l, c: bar.c, v: bar.v ?? NaN, vw: bar.vw ?? NaN, n: bar.n };
  const last = state.bars.length ? state.bars[state.bars.length - 1].t : -Infinity;
  if (i === -1) state.bars.push(row);
  else if (state.bars[i].t === bar.t) state.bars[i] = row;
  else state.bars.splice(i, 0, row);
  if (bar.t >= last) {  // the newest candle: a cheap in-place update
    state.candles.update({ time: chartTime(state, bar.t), open: bar.o, high: bar.h, low: bar.l, close: bar.c });
    state.volume.update({ time: chartTime(state, bar.t), value: Number.isFinite(row.v) ? row.v : 0,
      color: bar.c >= bar.o ? "rgba(38,166,154,.45)" : "rgba(239,83,80,.45)" });
    describe(state);
  } else {
    render(state);  // a correction of an older candle (reconciliation): redraw
  }
  box.dataset.liveBars = String(Number(box.dataset.liveBars || 0) + 1);
}

async function follow(state) {
  const ctl = new AbortController();
  state.live = ctl;
  const headers = { Accept: "text/event-stream" };
  const key = adminKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(`/v1/stream/bars?tickers=${encodeURIComponent(state.ticker)}`,
      { headers, signal: ctl.signal, credentials: "same-origin" });
  } catch { return; }
  if (!res.ok || !res.body) { box.dataset.live = "off"; return; }  // 409: the service does not stream
  box.dataset.live = "on";
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || state !== current) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const lines = block.split("\n");
        const name = (lines.find((x) => x.startsWith("event: ")) || "event: message").slice(7);
        const data = lines.filter((x) => x.startsWith("data: ")).map((x) => x.slice(6)).join("");
        if (name === "bar" && data) applyLive(state, JSON.parse(data));
      }
    }
  } catch { /* aborted: another chart replaced this one */ }
  box.dataset.live = "off";
}

async function show() {
  const fd = new FormData(form);
  const ticker = fd.get("ticker");
  const timeframe = fd.get("timeframe");
  if (!ticker || !timeframe) { summary.textContent = "Track a symbol first (Admin page)."; return; }
  const adjust = isStock(ticker) ? fd.get("adjust") || "none" : "none";
  // Dates go to the API as typed: it reads them as whole days in the market's zone (end inclusive).
  const typed = (name) => (form.elements[name].dataset.auto === "1" ? null : fd.get(name) || null);
  const start = typed("start");
  const end = typed("end");
  const stock = isStock(ticker);
  adjustSet.hidden = !stock;  // splits and dividends exist only for stocks
  summary.textContent = `Loading ${ticker} ${timeframe}…`;
  box.dataset.state = "loading";
  let L;
  try {
    L = await loadLibrary();
  } catch (err) {
    summary.textContent = err.message;
    box.dataset.state = "error";
    return;
  }
  const prev = current;
  const keepView = prev && prev.ticker === ticker && prev.timeframe === timeframe
    ? prev.chart.timeScale().getVisibleLogicalRange() : null;
  if (prev) { if (prev.live) prev.live.abort(); prev.chart.remove(); }
  const chart = L.createChart(box, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1d232b" },
    timeScale: { timeVisible: isIntraday(timeframe), secondsVisible: false },
    rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.25 } },
  });
  const candles = chart.addSeries(L.CandlestickSeries, {});
  const volume = chart.addSeries(L.HistogramSeries, { priceScaleId: "vol", priceFormat: { type: "volume" } });
  chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  const zone = zoneOf(ticker);
  zoneLabel.textContent = `Times in ${ZONE_TEXT[zone.replace("/", "_")]}.`;
  zoneLabel.dataset.zone = zone;
  const state = {
    ticker, timeframe, adjust, zone, chart, candles, volume, precision: 2,
    markerApi: L.createSeriesMarkers(candles, []), bars: [], events: [], loading: false, live: null,
    olderDone: start !== null, floor: null, spanMs: tfMs(timeframe) * WINDOW_BARS * (isIntraday(timeframe) ? 2 : 1.45),
  };
  current = state;
  try {
    const [bounds, events] = await Promise.all([coverageBounds(ticker, timeframe), markersFor(state)]);
    state.events = events;
    state.floor = bounds ? bounds.first : null;
    const hi = end ?? (bounds ? bounds.last : Date.now());
    const hiMs = end ? Date.parse(`${end}T00:00:00Z`) + 864e5 : hi;
    const lo = start ?? Math.max(bounds ? bounds.first : 0, hiMs - state.spanMs);
    state.bars = await fetchBars(state, lo, hi);
    if (state !== current) return;
    if (state.bars.length) {
      state.precision = precisionOf(ticker, state.bars[state.bars.length - 1].c);
      candles.applyOptions({ priceFormat: { type: "price", precision: state.precision, minMove: 10 ** -state.precision } });
    }
    if (start === null && (!bounds || lo <= bounds.first)) state.olderDone = true;
    render(state);
    if (keepView && start === null) chart.timeScale().setVisibleLogicalRange(keepView);
    else chart.timeScale().fitContent();
    box.dataset.state = "ready";
  } catch (err) {
    summary.textContent = `Could not load bars: ${err.message}`;
    box.dataset.state = "error";
    return;
  }
  chart.subscribeCrosshairMove((param) => { if (state === current) showLegend(state, param.time ?? null); });
  chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (range && range.from < 10 && state === current) loadOlder(state);
  });
  if (timeframe === "1m" && end === null) follow(state);
}

async function init() {
  const res = await api("/v1/symbols");
  if (!res.ok) { summary.textContent = `Could not list symbols: ${res.error}`; return; }
  const symbols = res.data.symbols;
  const params = new URLSearchParams(location.search);
  for (const s of symbols) tickerSel.append(el("option", { value: s.ticker, text: s.ticker }));
  const fillTimeframes = () => {
    const sym = symbols.find((s) => s.ticker === tickerSel.value);
    const tfs = sym && sym.timeframes && sym.timeframes.length ? sym.timeframes : ["1d"];
    const keep = tfSel.value;
    tfSel.replaceChildren(...tfs.map((tf) => el("option", { value: tf, text: tf })));
    if (tfs.includes(keep)) tfSel.value = keep;
  };
  // Ticker, timeframe, range and adjustment may come from the query string (shareable links).
  const asked = params.get("ticker");
  if (asked && !symbols.some((s) => s.ticker === asked)) {
    // Not tracked: let the API say what it knows (unknown, with a did-you-mean, or merely untracked).
    const res = await api(`/v1/bars/${encodeURIComponent(asked)}`,
      { params: { timeframe: params.get("timeframe") || "1d", limit: 1 } });
    const why = res.ok ? `${asked} is not a tracked symbol (track it on the Admin page).`
      : (res.data && res.data.error ? res.data.error.message : res.error);
    summary.textContent = why;
    summary.className = "error";
    box.dataset.state = "unknown";
    return;
  }
  if (asked) tickerSel.value = asked;
  fillTimeframes();
  if (params.get("timeframe")) tfSel.value = params.get("timeframe");
  for (const name of ["start", "end"]) if (params.get(name)) form.elements[name].value = params.get(name);
  if (params.get("adjust")) {
    const radio = form.querySelector(`input[name=adjust][value="${params.get("adjust")}"]`);
    if (radio) radio.checked = true;
  }
  for (const name of ["start", "end"]) {
    form.elements[name].addEventListener("input", () => { delete form.elements[name].dataset.auto; });
  }
  const autoDates = () => { for (const name of ["start", "end"]) if (form.elements[name].dataset.auto === "1") form.elements[name].value = ""; };
  tickerSel.addEventListener("change", () => { autoDates(); fillTimeframes(); show(); });
  tfSel.addEventListener("change", () => { autoDates(); show(); });
  for (const radio of form.querySelectorAll("input[name=adjust]")) radio.addEventListener("change", show);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  await show();
}

init();

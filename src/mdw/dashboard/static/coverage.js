// Coverage heat map: tickers × sessions for one timeframe, from GET /v1/coverage/{t}?timeframe=…
// Clicking a missing, partial or failed cell offers to backfill that session (POST /v1/backfills).
import { adminKey, api, el, say } from "./mdw.js";

const form = document.getElementById("coverage-form");
const status = document.getElementById("cov-status");
const map = document.getElementById("heatmap");
const dialog = document.getElementById("gap-dialog");
const gapText = document.getElementById("gap-text");
const LABEL = {
  covered: "covered", empty: "confirmed empty by the vendor", partial: "partly covered",
  missing: "missing", failed: "failed in a run", closed: "no session",
  outside_plan: "outside the key's plan (not sold; not a gap)",
};
const ACTIONABLE = new Set(["missing", "partial", "failed"]);
let pending = null; // {ticker, timeframe, day} of the cell whose dialog is open

const isoDay = (d) => d.toISOString().slice(0, 10);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// "Sep 2026": a month name cannot be misread as a day, and the year is spelled out.
const monthLabel = (day) => `${MONTHS[Number(day.slice(5, 7)) - 1]} ${day.slice(0, 4)}`;

async function draw() {
  const fd = new FormData(form);
  const timeframe = fd.get("timeframe");
  const start = fd.get("start");
  const end = fd.get("end");
  status.textContent = "Loading…";
  const syms = await api("/v1/symbols");
  if (!syms.ok) { status.textContent = `Could not list symbols: ${syms.error}`; return; }
  const symbols = (syms.data.symbols ?? syms.data).filter((s) => !s.timeframes?.length || s.timeframes.includes(timeframe));
  if (!symbols.length) {
    status.textContent = `No tracked symbol has ${timeframe} bars.`;
    map.replaceChildren();
    return;
  }
  const rows = await Promise.all(symbols.map(async (s) => {
    const res = await api(`/v1/coverage/${encodeURIComponent(s.ticker)}`, { params: { timeframe, start, end } });
    return { ticker: s.ticker, res, sessions: res.ok ? res.data.heatmap.sessions : [] };
  }));
  const days = new Set();
  for (const r of rows) for (const s of r.sessions) days.add(s.day);
  const columns = [...days].sort();
  const counts = { covered: 0, empty: 0, partial: 0, missing: 0, failed: 0, outside_plan: 0 };
  // Each month is labelled above its first session; the label overflows to the right.
  const thead = el("thead", {}, el("tr", {}, el("th", { scope: "col" }, el("span", { class: "sr-only", text: "Ticker" })),
    columns.map((d, i) => el("th", { scope: "col", title: d },
      i === 0 || columns[i - 1].slice(0, 7) !== d.slice(0, 7) ? el("span", { text: monthLabel(d) }) : null))));
  const tbody = el("tbody");
  for (const { ticker, res, sessions } of rows) {
    const tr = el("tr", {}, el("th", { scope: "row", text: ticker }));
    if (!res.ok) {
      tr.append(el("td", { colspan: Math.max(1, columns.length), class: "error", text: res.error }));
      tbody.append(tr);
      continue;
    }
    const byDay = new Map(sessions.map((s) => [s.day, s]));
    for (const day of columns) {
      const s = byDay.get(day);
      const state = s ? s.state : "closed";
      if (state in counts) counts[state] += 1;
      const label = `${ticker} ${day}: ${LABEL[state]}${s && s.bars ? `, ${s.bars} bars` : ""}`;
      const cell = ACTIONABLE.has(state)
        ? el("button", { type: "button", class: `cell ${state}`, title: label, "aria-label": label,
          dataset: { ticker, day, state }, onclick: () => offer(ticker, timeframe, day, state) })
        : el("span", { class: `cell ${state}`, title: label, role: "img", "aria-label": label, dataset: { ticker, day, state } });
      tr.append(el("td", {}, cell));
    }
    tbody.append(tr);
  }
  map.replaceChildren(el("table", { "aria-label": `Coverage of ${timeframe} bars per session` }, thead, tbody));
  // Open on the most recent sessions (the right end), where new gaps appear.
  map.scrollLeft = map.scrollWidth;
  map.dataset.ready = "1";
  status.textContent = `${symbols.length} tickers × ${columns.length} sessions of ${timeframe}: ` +
    `${counts.covered} covered, ${counts.empty} confirmed empty, ${counts.partial} partial, ` +
    `${counts.missing} missing, ${counts.failed} failed, ${counts.outside_plan} outside plan.`;
}

function offer(ticker, timeframe, day, state) {
  pending = { ticker, timeframe, day };
  gapText.textContent = `${ticker} ${timeframe} on ${day} is ${LABEL[state]}. Start a backfill of that session?`;
  dialog.querySelector("input[name=key]").value = "";
  dialog.showModal();
}

dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "backfill" || !pending) return;
  const { ticker, timeframe, day } = pending;
  const typed = dialog.querySelector("input[name=key]").value.trim();
  const next = isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + 864e5));
  const body = { symbols: [ticker], timeframes: [timeframe], start: day, end: next };
  const res = await api("/v1/backfills", { method: "POST", body, key: typed || adminKey() });
  const region = document.getElementById("cov-result");
  if (res.ok) say(region, `Backfill ${res.data.run_id} started for ${ticker} ${timeframe} ${day}; follow it on the Runs page.`, "ok");
  else say(region, `Backfill refused: ${res.error}`, "error");
});

async function init() {
  const syms = await api("/v1/symbols");
  const tfs = new Set();
  if (syms.ok) for (const s of syms.data.symbols ?? syms.data) for (const tf of s.timeframes ?? []) tfs.add(tf);
  if (!tfs.size) tfs.add("1d");
  const sel = document.getElementById("cov-timeframe");
  const params = new URLSearchParams(location.search);
  const order = [...tfs].sort((a, b) => (a === "1d" ? -1 : b === "1d" ? 1 : a.localeCompare(b)));
  sel.replaceChildren(...order.map((tf) => el("option", { value: tf, text: tf })));
  if (params.get("timeframe") && tfs.has(params.get("timeframe"))) sel.value = params.get("timeframe");
  const today = new Date();
  form.elements.end.value = params.get("end") || isoDay(today);
  form.elements.start.value = params.get("start") || isoDay(new Date(today.getTime() - 90 * 864e5));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw(); });
  sel.addEventListener("change", draw);
  await draw();
}

init();

// Runs: live progress of running backfills (polling GET /v1/backfills/{id}) and the run history
// (GET /v1/backfills) with each run's JSON report. Polls every 2 s while something runs, else 10 s.
import { api, el, fmtDuration, fmtInt, fmtTime } from "./mdw.js";

const live = document.getElementById("live");
const tbody = document.querySelector("#runs-table tbody");
const reportView = document.getElementById("report-view");
const reportJson = document.getElementById("report-json");
const reportBody = document.getElementById("report-body");
let timer = null;
let shownReport = null;

// A run's numbers: live progress while it runs, the report's totals once it is done.
function numbers(run) {
  const p = run.progress ?? {};
  const sum = run.summary ?? run.report ?? {};
  const elapsed = p.elapsed_s ?? ((run.finished_at_ms ?? Date.now()) - run.started_at_ms) / 1000;
  return {
    done: p.series_done ?? null, total: p.series_total ?? null,
    requests: p.requests_done ?? sum.requests ?? null, requestsTotal: p.requests_total ?? null,
    bars: p.bars ?? sum.bars_fetched ?? null, written: sum.bars_written ?? null,
    barsPerS: p.bars_per_s ?? null, eta: p.eta_s ?? null, elapsed,
  };
}

function progressCard(run) {
  const n = numbers(run);
  const share = n.total ? Math.min(1, (n.done ?? 0) / n.total) : 0;
  return el("article", { class: "card", dataset: { run: run.id } },
    el("div", { class: "label", text: `${run.kind ?? "backfill"} ${run.id}` }),
    el("div", { class: "value", text: `${fmtInt(n.done ?? 0)} / ${fmtInt(n.total)} series` }),
    el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": Math.round(share * 100), "aria-label": "series done" },
    el("span", { style: `width:${(share * 100).toFixed(1)}%` })),
    el("p", { class: "note" },
      `${fmtInt(n.requests)} of ${fmtInt(n.requestsTotal)} requests · ${fmtInt(n.bars)} bars · ` +
      `${n.barsPerS === null ? "–" : fmtInt(Math.round(n.barsPerS))} bars/s · ` +
      `ETA ${fmtDuration(n.eta)} · running ${fmtDuration(n.elapsed)}`));
}

async function showReport(id) {
  const res = await api(`/v1/backfills/${encodeURIComponent(id)}`);
  reportView.hidden = false;
  shownReport = id;
  document.getElementById("report-h").textContent = `Run report ${id}`;
  reportJson.textContent = res.ok ? JSON.stringify(res.data, null, 2) : res.error;
  reportBody.replaceChildren(res.ok ? reportTables(res.data)
    : el("p", { class: "error", text: `Could not read the run: ${res.error}` }));
  reportBody.dataset.run = id;
  reportView.scrollIntoView({ block: "nearest" });
}

// The report as tables: a run's scalar fields as label/value rows, each list of records (series,
// failures) as a table of its own, nested objects as nested label/value tables. The raw JSON stays
// one click away under "JSON".
const label = (key) => key.replace(/_ms$/, "").replace(/_s$/, " (s)").replaceAll("_", " ");

function scalar(key, v) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v === "number" && /_ms$/.test(key) && v > 1e11) return fmtTime(v);
  if (typeof v === "number") return Number.isInteger(v) ? fmtInt(v) : v.toLocaleString("en-US", { maximumFractionDigits: 3 });
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v);
}

function value(key, v) {
  if (Array.isArray(v)) {
    if (!v.length) return "none";
    if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) return recordTable(key, v);
    return v.map((x) => (x && typeof x === "object" ? JSON.stringify(x) : scalar(key, x))).join(", ");
  }
  if (v && typeof v === "object") return Object.keys(v).length ? fieldTable(v) : "none";
  return scalar(key, v);
}

function fieldTable(obj) {
  return el("table", { class: "fields" }, el("tbody", {}, Object.entries(obj).map(([k, v]) =>
    el("tr", { dataset: { key: k } }, el("th", { scope: "row", text: label(k) }),
      el("td", { class: typeof v === "number" ? "num" : null }, value(k, v))))));
}

function recordTable(key, rows) {
  // What a row is about comes first (stored reports may come back with their keys sorted).
  const FIRST = ["series", "ticker", "cause", "status"];
  const seen = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cols = [...FIRST.filter((c) => seen.includes(c)), ...seen.filter((c) => !FIRST.includes(c))];
  return el("div", { class: "table-wrap" }, el("table", { dataset: { list: key } },
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col", text: label(c) })))),
    el("tbody", {}, rows.map((r) => el("tr", {}, cols.map((c) =>
      el("td", { class: typeof r[c] === "number" ? "num" : null }, value(c, r[c]))))))));
}

function reportTables(run) {
  const report = run.report && Object.keys(run.report).length ? run.report : null;
  const head = { id: run.id, kind: run.kind, status: run.status, started_at_ms: run.started_at_ms,
    finished_at_ms: run.finished_at_ms };
  const lists = report ? Object.entries(report).filter(([, v]) => Array.isArray(v) && v.length
    && v.every((x) => x && typeof x === "object")) : [];
  const fields = report ? Object.fromEntries(Object.entries(report).filter(([k]) => !lists.some(([n]) => n === k)
    && !(k in head) && k !== "run_id")) : {};
  const parts = [fieldTable({ ...head, ...fields, ...(run.params && Object.keys(run.params).length ? { params: run.params } : {}) })];
  for (const [name, rows] of lists) parts.push(el("h3", { text: label(name) }), recordTable(name, rows));
  if (!report) parts.push(el("p", { class: "muted", text: "No report yet: the run is still going (see above)." }));
  return el("div", {}, parts);
}

async function refresh() {
  clearTimeout(timer);
  const res = await api("/v1/backfills", { params: { limit: 50 } });
  if (!res.ok) {
    live.replaceChildren(el("p", { class: "error", text: `Could not list runs: ${res.error}` }));
    timer = setTimeout(refresh, 10000);
    return;
  }
  const runs = res.data.runs;
  const running = runs.filter((r) => r.status === "running");
  const details = await Promise.all(running.map((r) => api(`/v1/backfills/${encodeURIComponent(r.id)}`)));
  live.replaceChildren(...(running.length
    ? details.map((d, i) => progressCard(d.ok ? d.data : running[i]))
    : [el("p", { class: "muted", text: "No backfill is running." })]));
  live.dataset.running = String(running.length);
  tbody.replaceChildren(...(runs.length ? runs.map((run) => {
    const n = numbers(run);
    return el("tr", { dataset: { run: run.id } },
      el("td", { text: fmtTime(run.started_at_ms) }),
      el("td", { text: run.kind }),
      el("td", {}, el("span", { class: `badge outcome-${run.status}`, text: run.status })),
      el("td", { class: "num", text: n.total === null ? "–" : `${fmtInt(n.done ?? n.total)}/${fmtInt(n.total)}` }),
      el("td", { class: "num", text: fmtInt(n.requests) }),
      el("td", { class: "num", text: fmtInt(n.bars) }),
      el("td", { class: "num", text: fmtDuration(n.elapsed) }),
      el("td", {}, el("button", { type: "button", class: "secondary", text: "Report",
        "aria-label": `Report of run ${run.id}`, onclick: () => showReport(run.id) })));
  }) : [el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No runs yet." }))]));
  if (shownReport && running.some((r) => r.id === shownReport)) showReport(shownReport);
  timer = setTimeout(refresh, running.length ? 2000 : 10000);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
refresh();
// /runs?run=<id> (the overview's report links) opens that run's report.
const asked = new URLSearchParams(location.search).get("run");
if (asked) showReport(asked);

// Universes: each universe's member count over time (GET /v1/universes/{name}/sizes, drawn as an
// SVG step line) and the coverage of every universe per timeframe (GET /v1/universes/coverage)
// over the chosen days. Like every page, it only reads the public API.
import { api, el, fmtInt } from "./mdw.js";

const form = document.getElementById("universe-form");
const select = document.getElementById("uni-name");
const status = document.getElementById("uni-status");
const sizesBox = document.getElementById("uni-sizes");
const tbody = document.querySelector("#uni-coverage tbody");
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function drawSizes(sizes) {
  sizesBox.replaceChildren();
  sizesBox.dataset.points = String(sizes.length);
  sizesBox.dataset.first = sizes.length ? String(sizes[0].members) : "";
  sizesBox.dataset.last = sizes.length ? String(sizes[sizes.length - 1].members) : "";
  if (!sizes.length) return;
  const w = 640, h = 180, pad = 28;
  const max = Math.max(1, ...sizes.map((s) => s.members));
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, sizes.length - 1);
  const y = (n) => h - pad - (n * (h - 2 * pad)) / max;
  let d = `M${x(0)},${y(sizes[0].members)}`;
  sizes.forEach((s, i) => { if (i) d += ` H${x(i)} V${y(s.members)}`; });
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", preserveAspectRatio: "none" });
  chart.append(svg("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "currentColor", "stroke-opacity": 0.3 }));
  chart.append(svg("path", { d, fill: "none", stroke: "var(--accent, #2563eb)", "stroke-width": 2 }));
  for (const [label, at, n] of [[sizes[0].date, 0, sizes[0].members],
    [sizes[sizes.length - 1].date, sizes.length - 1, sizes[sizes.length - 1].members]]) {
    const t = svg("text", { x: x(at), y: h - 8, "font-size": 11, "text-anchor": at ? "end" : "start", fill: "currentColor" });
    t.textContent = `${label}: ${fmtInt(n)}`;
    chart.append(t);
  }
  const top = svg("text", { x: pad, y: 14, "font-size": 11, fill: "currentColor" });
  top.textContent = `max ${fmtInt(max)} members`;
  chart.append(top);
  sizesBox.append(chart);
}

function drawCoverage(rows) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No universe to show." })));
    return;
  }
  for (const r of rows) {
    tbody.append(el("tr", { dataset: { universe: r.universe, timeframe: r.timeframe } },
      el("td", { text: r.universe }), el("td", { text: r.timeframe }),
      el("td", { class: "num", dataset: { members: r.members }, text: fmtInt(r.members) }),
      el("td", { class: "num", dataset: { complete: r.complete }, text: fmtInt(r.complete) }),
      el("td", { class: "num", dataset: { partial: r.partial }, text: fmtInt(r.partial) }),
      el("td", { class: "num", dataset: { missing: r.missing }, text: fmtInt(r.missing) }),
      el("td", { class: "num", dataset: { ratio: r.ratio }, text: `${(r.ratio * 100).toFixed(1)} %` })));
  }
}

async function show() {
  const name = select.value;
  const params = { start: form.start.value, end: form.end.value };
  status.textContent = "Loading…";
  const [sizes, cov] = await Promise.all([
    name ? api(`/v1/universes/${encodeURIComponent(name)}/sizes`, { params: { ...params, points: 120 } })
      : Promise.resolve({ ok: true, data: { sizes: [] } }),
    api("/v1/universes/coverage", { params: { ...params, timeframes: form.timeframes.value } }),
  ]);
  if (!sizes.ok || !cov.ok) {
    status.className = "error";
    status.textContent = sizes.error || cov.error;
    document.body.dataset.ready = "error";
    return;
  }
  drawSizes(sizes.data.sizes);
  drawCoverage(cov.data.coverage);
  status.className = "muted";
  status.textContent = name ? `${name}: ${sizes.data.sizes.length} days shown` : "No universe defined yet: mdw universe define.";
  document.body.dataset.ready = "1";
}

async function init() {
  const today = new Date();
  const yearAgo = new Date(today.getTime() - 365 * 86400000);
  const url = new URL(location.href);
  form.start.value = url.searchParams.get("start") || yearAgo.toISOString().slice(0, 10);
  form.end.value = url.searchParams.get("end") || today.toISOString().slice(0, 10);
  form.timeframes.value = url.searchParams.get("timeframes") || form.timeframes.value;
  const found = await api("/v1/universes");
  const names = found.ok ? found.data.universes.map((u) => u.name) : [];
  select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  const wanted = url.searchParams.get("name");
  if (wanted && names.includes(wanted)) select.value = wanted;
  form.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  await show();
}

init();

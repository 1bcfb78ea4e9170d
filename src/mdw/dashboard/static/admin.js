// Admin actions through the public API: track / stop tracking a symbol, start a backfill.
// Every call carries the admin key typed on this page (see mdw.js for where it is kept); without
// one the API refuses with 401, and the page shows that refusal as it is.
import { api, el, say, wireKeyForm } from "./mdw.js";

const result = document.getElementById("admin-result");
const list = (text) => String(text || "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

function report(res, okText) {
  if (res.ok) say(result, okText(res.data), "ok");
  else say(result, `Refused by the API: ${res.error}`, "error");
  result.dataset.status = String(res.status);
}

async function loadSymbols() {
  const res = await api("/v1/symbols");
  const tbody = document.querySelector("#symbols-table tbody");
  const select = document.getElementById("remove-ticker");
  if (!res.ok) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "error", text: res.error })));
    return;
  }
  const symbols = res.data.symbols;
  tbody.replaceChildren(...symbols.map((s) => el("tr", {},
    el("td", { text: s.ticker }), el("td", { text: s.asset_class ?? "" }),
    el("td", { text: (s.timeframes ?? []).join(", ") }), el("td", { text: s.start_date ?? "" }),
    el("td", { text: s.active === false ? "no" : "yes" }))));
  select.replaceChildren(...symbols.filter((s) => s.active !== false)
    .map((s) => el("option", { value: s.ticker, text: s.ticker })));
}

document.getElementById("add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const fd = new FormData(ev.target);
  const body = { ticker: fd.get("ticker").trim(), timeframes: list(fd.get("timeframes")) };
  if (fd.get("start")) body.start = fd.get("start");
  const res = await api("/v1/symbols", { method: "POST", body });
  report(res, (d) => `Now tracking ${body.ticker}${d && d.run_id ? `; backfill ${d.run_id} started` : ""}.`);
  if (res.ok) loadSymbols();
});

document.getElementById("remove-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const fd = new FormData(ev.target);
  const ticker = fd.get("ticker");
  const purge = fd.get("purge") === "on";
  const res = await api(`/v1/symbols/${encodeURIComponent(ticker)}`, { method: "DELETE", params: purge ? { purge: "true" } : null });
  report(res, () => `Stopped tracking ${ticker}${purge ? " and deleted its data" : "; its data is kept"}.`);
  if (res.ok) loadSymbols();
});

document.getElementById("backfill-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const fd = new FormData(ev.target);
  const body = { symbols: list(fd.get("symbols")), timeframes: list(fd.get("timeframes")), start: fd.get("start"), end: fd.get("end") };
  const res = await api("/v1/backfills", { method: "POST", body });
  report(res, (d) => `Backfill ${d.run_id} started; follow it on the Runs page.`);
});

wireKeyForm(document.getElementById("key-form"));
loadSymbols();

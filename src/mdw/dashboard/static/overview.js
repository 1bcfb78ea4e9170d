// Overview: the filter box of the freshness table. The table itself is rendered on the server,
// so the page works without JavaScript; this only hides rows that do not match.
//
// Each word must match: a ticker prefix (case-insensitive), a timeframe exactly, or "stale"/"fresh".
const input = document.getElementById("series-filter");
const count = document.getElementById("series-count");
const groups = [...document.querySelectorAll("#series tbody.group")];

function apply() {
  const words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  let symbols = 0;
  for (const g of groups) {
    const ticker = g.dataset.ticker.toLowerCase();
    let any = false;
    for (const tr of g.rows) {
      const tf = tr.dataset.series.slice(tr.dataset.series.lastIndexOf("/") + 1).toLowerCase();
      const stale = tr.classList.contains("is-stale");
      const ok = words.every((w) => ticker.startsWith(w) || tf === w
        || (w === "stale" && stale) || (w === "fresh" && !stale));
      tr.hidden = !ok;
      if (ok) { shown += 1; any = true; }
    }
    g.hidden = !any;
    if (any) symbols += 1;
  }
  if (words.length) count.textContent = `${shown} of ${groups.reduce((n, g) => n + g.rows.length, 0)} series match, in ${symbols} symbols`;
  count.dataset.shown = String(shown);
}

if (input) {
  input.addEventListener("input", apply);
  document.getElementById("series-filter-form").addEventListener("submit", (ev) => ev.preventDefault());
}

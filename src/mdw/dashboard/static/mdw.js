// Shared helpers of the dashboard pages: calls to the public API, the admin key, formatting.
//
// The admin key lives in this module's memory, or — when the user ticks "keep for this tab" — in
// sessionStorage, which the browser drops when the tab closes. It never goes into a URL, a
// cookie or localStorage, and it is sent only in the Authorization header of same-origin calls.

const KEY_SLOT = "mdw.adminKey";
let memoryKey = null;

export function adminKey() {
  return memoryKey ?? sessionStorage.getItem(KEY_SLOT);
}

export function setAdminKey(key, keepForTab) {
  const value = (key || "").trim() || null;
  memoryKey = value;
  if (value && keepForTab) sessionStorage.setItem(KEY_SLOT, value);
  else sessionStorage.removeItem(KEY_SLOT);
  showKeyState();
}

export function forgetAdminKey() {
  memoryKey = null;
  sessionStorage.removeItem(KEY_SLOT);
  showKeyState();
}

function showKeyState() {
  const el = document.getElementById("keystate");
  if (el) el.textContent = adminKey() ? "admin key set (this tab only)" : "no admin key";
}

/**
 * Call the public API. Resolves to {status, ok, data, error}; never throws on HTTP errors, so
 * pages can show the API's own refusal (401/403/404/422) to the user.
 */
export async function api(path, { method = "GET", params = null, body = undefined, signal, key = adminKey() } = {}) {
  const url = new URL(path, location.origin);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
  }
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    return { status: 0, ok: false, data: null, error: `network error: ${err.message}` };
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  let error = null;
  if (!response.ok) {
    const detail = data && data.error ? `${data.error.code}: ${data.error.message}` : response.statusText;
    error = `${response.status} ${detail}`;
  }
  return { status: response.status, ok: response.ok, data, error };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/:\d\d\.\d{3}Z$/, " UTC");
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** Show a message in a live region: kind is "ok", "error" or "notice". */
export function say(region, text, kind = "notice") {
  region.className = kind === "error" ? "error" : kind === "ok" ? "notice ok" : "notice";
  region.textContent = text;
  region.hidden = false;
}

/** The admin-key form on a page: fills it from the current key and keeps the header in step. */
export function wireKeyForm(form) {
  if (!form) return;
  const input = form.querySelector("input[name=key]");
  const keep = form.querySelector("input[name=keep]");
  input.value = adminKey() || "";
  keep.checked = Boolean(sessionStorage.getItem(KEY_SLOT));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setAdminKey(input.value, keep.checked);
  });
  form.querySelector("button[name=forget]")?.addEventListener("click", () => {
    input.value = "";
    forgetAdminKey();
  });
}

showKeyState();

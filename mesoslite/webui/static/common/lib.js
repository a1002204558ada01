// mesoslite web UIs: the shared toolkit (no framework, no build step).
//
// Owns: building DOM safely (h(): text is always set as text, never parsed as
// HTML; links only to this origin, #/ views or http(s) URLs), fetching JSON
// (api(), errors carry the server's message and field), hash routing (route(),
// href(), navigate()), times in the browser's time zone with relative ages,
// number and size formats, sortable tables, pagers, a live event stream with
// reconnection (live()), an SVG line chart, confirmation dialogs and toasts.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "href") el.setAttribute("href", safeUrl(value));
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" && "value" in el) el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) if (child) el.append(child);
  return el;
}

// Only views of this page, paths of this origin and http(s) URLs become links.
export function safeUrl(value) {
  const text = String(value || "");
  if (text.startsWith("#") || (text.startsWith("/") && !text.startsWith("//"))) return text;
  try {
    const url = new URL(text, location.href);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href;
  } catch (e) { /* not a URL */ }
  return "#";
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

// ------------------------------------------------------------------ fetching

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { Accept: "application/json" },
                 credentials: "same-origin" };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
  }
  if (init.method !== "GET") {  // the servers refuse writes that are not JSON
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "cannot reach the server: " + e.message, {});
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
  if (!response.ok) {
    const message = (body && (body.message || body.error)) || response.statusText;
    throw new ApiError(response.status, message, body);
  }
  return body;
}

// ------------------------------------------------------------------- routing

// The view is the hash: #/path/segments?key=value
export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || ""), raw };
}

export function href(parts, params) {
  const path = "#/" + parts.map((p) => encodeURIComponent(p)).join("/");
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export function navigate(target, replace = false) {
  if (replace) {
    history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = target;
  }
}

// ------------------------------------------------------------- formatting

export function relative(seconds) {
  const delta = Date.now() / 1000 - seconds;
  const ahead = delta < 0;
  const s = Math.abs(delta);
  let text;
  if (s < 45) text = `${Math.round(s)}s`;
  else if (s < 45 * 60) text = `${Math.round(s / 60)}m`;
  else if (s < 36 * 3600) text = `${Math.round(s / 3600)}h`;
  else text = `${Math.round(s / 86400)}d`;
  return ahead ? `in ${text}` : `${text} ago`;
}

export function absolute(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium",
                                                              timeStyle: "medium" });
}

// A time: relative age shown, the local date and time as its title (refreshed by tick()).
export function when(seconds) {
  if (!seconds) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: new Date(seconds * 1000).toISOString(), title: absolute(seconds),
                     dataset: { epoch: seconds }, text: relative(seconds) });
}

export function tickTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-epoch]")) {
    el.textContent = relative(Number(el.dataset.epoch));
  }
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function num(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function mb(value) {
  const v = Number(value || 0);
  if (v >= 1024 * 1024) return `${num(v / 1024 / 1024)} TB`;
  if (v >= 1024) return `${num(v / 1024)} GB`;
  return `${num(v)} MB`;
}

export function bytes(value) {
  const v = Number(value || 0);
  if (v >= 1 << 30) return `${num(v / (1 << 30))} GiB`;
  if (v >= 1 << 20) return `${num(v / (1 << 20))} MiB`;
  if (v >= 1 << 10) return `${num(v / (1 << 10))} KiB`;
  return `${v} B`;
}

export function resource(name, value) {
  return name === "mem" || name === "disk" ? mb(value) : num(value);
}

export function percent(part, total) {
  return total > 0 ? `${Math.round((100 * part) / total)}%` : "—";
}

export function stateBadge(state) {
  const text = String(state || "").replace(/^TASK_/, "");
  return h("span", { class: `badge state-${text.toLowerCase()}`, text });
}

// ------------------------------------------------------------------ widgets

// columns: [{key, label, sort?: server sort key, render?: row => node|text, class?}]
export function table({ columns, rows, sort, order, onSort, empty, label }) {
  const head = h("tr", {}, columns.map((col) => {
    const attrs = { scope: "col", class: col.class || "" };
    if (!col.sort || !onSort) return h("th", attrs, col.label);
    const active = sort === col.sort;
    attrs["aria-sort"] = active ? (order === "desc" ? "descending" : "ascending") : "none";
    const next = active && order === "asc" ? "desc" : "asc";
    return h("th", attrs, h("button", {
      type: "button", class: "sort" + (active ? " active" : ""),
      onclick: () => onSort(col.sort, next),
    }, col.label, active ? (order === "desc" ? " ▾" : " ▴") : ""));
  }));
  const body = h("tbody", {});
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty",
                                      text: empty || "Nothing to show." })));
  }
  for (const row of rows) {
    body.append(h("tr", {}, columns.map((col) => h("td", {
      class: col.class || "", "data-label": col.label,
    }, col.render ? col.render(row) : row[col.key]))));
  }
  return h("div", { class: "table-wrap" },
           h("table", { "aria-label": label || "" }, h("thead", {}, head), body));
}

export function pager({ offset, limit, total, onPage }) {
  const first = total ? offset + 1 : 0;
  const last = Math.min(offset + limit, total);
  return h("nav", { class: "pager", "aria-label": "pages" },
    h("button", { type: "button", disabled: offset <= 0,
                  onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Previous"),
    h("span", { class: "muted", text: `${num(first, 0)}–${num(last, 0)} of ${num(total, 0)}` }),
    h("button", { type: "button", disabled: last >= total,
                  onclick: () => onPage(offset + limit) }, "Next ›"));
}

export function tabs(items, current, label) {
  return h("nav", { class: "tabs", "aria-label": label || "views" }, items.map((item) =>
    h("a", { href: item.href, class: item.key === current ? "active" : "",
             "aria-current": item.key === current ? "page" : false },
      item.label, item.count !== undefined ? h("span", { class: "count", text: num(item.count, 0) })
                                           : null)));
}

export function searchBox(value, placeholder, onSearch) {
  let timer = null;
  const input = h("input", { type: "search", value: value || "", placeholder,
                             "aria-label": placeholder });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => onSearch(input.value.trim()), 300);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { clearTimeout(timer); onSearch(input.value.trim()); }
  });
  return input;
}

export function keyValues(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([key, value]) =>
    [h("dt", { text: key }), h("dd", {}, value === "" || value === null ? "—" : value)]));
}

export function labelsList(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return h("span", { class: "muted", text: "—" });
  return h("span", { class: "labels" }, entries.map(([k, v]) =>
    h("span", { class: "label", text: v === "" ? k : `${k}=${v}` })));
}

export function errorBox(error) {
  return h("div", { class: "error", role: "alert" },
           error instanceof ApiError && error.status ? `${error.status}: ` : "",
           error.message || String(error));
}

export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status",
                          text: message });
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

// A modal confirmation (Esc or Cancel: false).  extra: nodes shown in the dialog.
export function confirmDialog(title, message, { confirm = "Confirm", danger = false,
                                                extra = null } = {}) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": title },
      h("h2", { text: title }), h("p", { text: message }), extra,
      h("form", { method: "dialog", class: "buttons" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h("button", { value: "ok", type: "submit", class: danger ? "danger" : "primary" },
          confirm)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("button.primary, button.danger").focus();
  });
}

// ------------------------------------------------------------------ live data

// An EventSource that reconnects; onStatus(true|false) tells whether it is live.
export function live(url, handlers, onStatus) {
  let source = null;
  let stopped = false;
  let delay = 1000;
  const open = () => {
    if (stopped) return;
    source = new EventSource(url);
    source.onopen = () => { delay = 1000; onStatus && onStatus(true); };
    for (const [event, handler] of Object.entries(handlers)) {
      source.addEventListener(event, (message) => {
        let data = null;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        handler(data);
      });
    }
    source.onerror = () => {
      onStatus && onStatus(false);
      source.close();
      if (!stopped) setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  open();
  return { close() { stopped = true; if (source) source.close(); } };
}

// Run fn at most once per `every` ms, trailing call kept.
export function throttle(fn, every) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const wait = last + every - Date.now();
    clearTimeout(timer);
    if (wait <= 0) { last = Date.now(); fn(...args); return; }
    timer = setTimeout(() => { last = Date.now(); fn(...args); }, wait);
  };
}

// ------------------------------------------------------------------- charts

// series: [{name, points: [[t, value], ...], class}], values 0..max; x: last `span` s.
export function lineChart(series, { span = 600, max = 100, unit = "%", label = "" } = {}) {
  const width = 600, height = 160, left = 34, bottom = 18;
  const now = Date.now() / 1000;
  const x = (t) => left + ((t - (now - span)) / span) * (width - left - 4);
  const y = (v) => 4 + (1 - Math.min(v, max) / max) * (height - bottom - 8);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
                            "aria-label": label });
  for (const tick of [0, 50, 100]) {
    const value = (tick / 100) * max;
    root.append(svg("line", { x1: left, x2: width - 4, y1: y(value), y2: y(value),
                              class: "grid" }));
    const text = svg("text", { x: left - 4, y: y(value) + 4, class: "axis",
                               "text-anchor": "end" });
    text.textContent = `${Math.round(value)}${unit}`;
    root.append(text);
  }
  const minutes = svg("text", { x: left, y: height - 4, class: "axis" });
  minutes.textContent = `−${Math.round(span / 60)} min`;
  root.append(minutes);
  const nowText = svg("text", { x: width - 4, y: height - 4, class: "axis",
                                "text-anchor": "end" });
  nowText.textContent = "now";
  root.append(nowText);
  for (const s of series) {
    // A gap longer than 10 s (nobody watched) breaks the line.
    let d = "";
    let previous = null;
    for (const [t, v] of s.points) {
      if (t < now - span) continue;
      const move = previous === null || t - previous > 10 ? "M" : "L";
      d += `${move}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      previous = t;
    }
    if (d) root.append(svg("path", { d, class: `line ${s.class || ""}` }));
  }
  const legend = h("div", { class: "legend" }, series.map((s) =>
    h("span", { class: `key ${s.class || ""}`, text: s.name })));
  return h("figure", { class: "chart-box" }, root, legend);
}

export function meter(part, total, label) {
  const ratio = total > 0 ? Math.min(1, part / total) : 0;
  const bar = h("span", { class: "fill" });
  bar.style.width = `${(ratio * 100).toFixed(1)}%`;
  return h("span", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
                     "aria-valuenow": Math.round(ratio * 100), "aria-label": label || "" }, bar);
}

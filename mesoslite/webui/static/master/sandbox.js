// The master UI's sandbox views: a file browser and a live tail, every read through
// the master's proxy (/agents/{id}/files/...), so the browser never talks to an agent.

import { api, bytes, clear, errorBox, h, href, table, when } from "../common/lib.js";

//: The tail starts with the last 32 KiB, reads once a second, and at once while reads
//: come back full (as Mesos's pailer does); at most MAX_SHOWN characters are kept.
const TAIL_START = 32 * 1024;
const READ_LENGTH = 64 * 1024;
const MAX_SHOWN = 1024 * 1024;

function filesUrl(agentId, operation, params) {
  return `/agents/${encodeURIComponent(agentId)}/files/${operation}?${new URLSearchParams(params)}`;
}

function crumbs(agentId, path) {
  const parts = path.split("/").filter(Boolean);
  const runs = parts.lastIndexOf("runs");
  const first = runs >= 0 ? Math.min(runs + 2, parts.length) : parts.length;
  const out = [h("a", { href: href(["agents", agentId, "browse"], { path: "/" + parts.slice(0, first).join("/") }) }, "sandbox")];
  for (let i = first; i < parts.length; i++) {
    out.push(" / ", h("a", { href: href(["agents", agentId, "browse"], { path: "/" + parts.slice(0, i + 1).join("/") }) }, parts[i]));
  }
  return h("nav", { class: "breadcrumbs", "aria-label": "path" }, out);
}

export function browseView(r) {
  const agentId = r.parts[1];
  const path = r.params.get("path") || "";
  const root = h("div", {}, h("h1", { text: "Sandbox" }), h("p", { class: "muted", text: "Reading…" }));
  const view = { nav: "agents", title: "Sandbox", root };
  view.load = async () => {
    try {
      const entries = await api(filesUrl(agentId, "browse", { path }));
      entries.sort((a, b) => (a.mode.startsWith("d") === b.mode.startsWith("d")
        ? a.path.localeCompare(b.path) : a.mode.startsWith("d") ? -1 : 1));
      clear(root).append(h("h1", { text: "Sandbox" }), crumbs(agentId, path),
        h("p", { class: "muted" }, "Agent ", h("a", { href: href(["agents", agentId]) }, agentId)),
        table({ label: "files", rows: entries, empty: "This directory is empty.", columns: [
          { label: "Name", render: (e) => {
            const name = e.path.split("/").pop();
            return e.mode.startsWith("d")
              ? h("a", { href: href(["agents", agentId, "browse"], { path: e.path }) }, name + "/")
              : h("a", { href: href(["agents", agentId, "file"], { path: e.path }) }, name);
          } },
          { label: "Size", class: "num", render: (e) => bytes(e.size) },
          { label: "Modified", render: (e) => when(e.mtime) },
          { label: "Mode", render: (e) => h("span", { class: "mono", text: e.mode }) },
          { label: "", render: (e) => (e.mode.startsWith("d") ? "" :
            h("a", { href: filesUrl(agentId, "download", { path: e.path }), download: "" }, "download")) },
        ] }));
      root.dataset.loaded = "true";
    } catch (e) { clear(root).append(h("h1", { text: "Sandbox" }), errorBox(e)); }
  };
  return view;
}

export function fileView(r) {
  const agentId = r.parts[1];
  const path = r.params.get("path") || "";
  const name = path.split("/").pop();
  const log = h("pre", { class: "log", tabindex: "0", "aria-label": `contents of ${name}`, "aria-live": "off" });
  const status = h("span", { class: "muted", role: "status" });
  const follow = h("input", { type: "checkbox", checked: true, id: "follow" });
  const dir = path.split("/").slice(0, -1).join("/");
  const root = h("div", {},
    h("h1", {}, name, " ", h("span", { class: "muted", text: "(live)" })),
    crumbs(agentId, path),
    h("div", { class: "row" },
      h("label", {}, follow, " follow"),
      h("a", { class: "button", href: filesUrl(agentId, "download", { path }), download: "" }, "Download"),
      h("a", { class: "button", href: href(["agents", agentId, "browse"], { path: dir }) }, "Sandbox"),
      status),
    log);
  const view = { nav: "agents", title: name, root };
  let offset = 0;
  let stopped = false;
  let timer = null;
  const encoder = new TextEncoder();
  const show = (text, trimToLine) => {
    if (!text) return;
    let shown = text;
    if (trimToLine) {
      const newline = shown.indexOf("\n");
      if (newline >= 0) shown = shown.slice(newline + 1);
    }
    log.append(document.createTextNode(shown));
    if (log.textContent.length > MAX_SHOWN) log.textContent = log.textContent.slice(-MAX_SHOWN / 2);
    if (follow.checked) log.scrollTop = log.scrollHeight;
  };
  const read = async (first) => {
    if (stopped) return;
    let full = false;
    try {
      if (first) {
        const size = await api(filesUrl(agentId, "read", { path, offset: -1 }));
        offset = Math.max(0, size.offset - TAIL_START);
      }
      const chunk = await api(filesUrl(agentId, "read", { path, offset, length: READ_LENGTH }));
      const length = encoder.encode(chunk.data).length;
      show(chunk.data, first && offset > 0);
      offset += length;
      full = length >= READ_LENGTH;
      status.textContent = `${bytes(offset)} read`;
      root.dataset.loaded = "true";
    } catch (e) {
      status.textContent = "";
      status.append(errorBox(e));
    }
    if (!stopped) timer = setTimeout(() => read(false), full ? 0 : 1000);
  };
  view.load = () => read(true);
  view.destroy = () => { stopped = true; clearTimeout(timer); };
  return view;
}

// The master UI: the shell (navigation, the live stream, the leader) and the list views.
//
// Every view is a hash URL (#/agents?state=active&sort=hostname...), so it can be
// bookmarked and the back button works.  The server pushes a summary at most once a
// second (/ui/api/stream); a view re-reads its own page only when the part of the
// state it shows changed (the summary's generations), at most once a second.

import {
  api, clear, h, href, labelsList, live, num, percent, resource, route, searchBox, stateBadge,
  table, tabs, tickTimes, when, lineChart, meter, errorBox, duration,
} from "../common/lib.js";
import { listView, paging, query, sorter } from "../common/list.js";
import { agentView, frameworkView, taskView, taskLogView, tasksPanel } from "./detail.js";
import { browseView, fileView } from "./sandbox.js";

const main = document.getElementById("view");
const state = { overview: null, generations: null, history: [], view: null };

// --------------------------------------------------------------------- the shell

const ROUTES = {
  "": overviewView, agents: agentsRoute, frameworks: frameworksRoute, tasks: tasksRoute,
  offers: offersView, roles: rolesView, metrics: metricsView,
};

function agentsRoute(r) {
  if (r.parts.length === 1) return agentsView(r);
  if (r.parts[2] === "browse") return browseView(r);
  if (r.parts[2] === "file") return fileView(r);
  return agentView(r);
}

function frameworksRoute(r) { return r.parts.length > 1 ? frameworkView(r) : frameworksView(r); }

function tasksRoute(r) {
  if (r.parts.length >= 4) return taskLogView(r);
  return r.parts.length === 3 ? taskView(r) : tasksView(r);
}

function notFound(r) {
  return { nav: "", title: "Not found", root: h("div", {}, h("h1", { text: "No such view" }),
    h("p", {}, "Nothing lives at ", h("code", { text: "#/" + r.parts.join("/") }), ". ",
      h("a", { href: "#/" }, "Go to the overview."))) };
}

function dispatch() {
  const r = route();
  if (state.view && state.view.destroy) state.view.destroy();
  const make = ROUTES[r.parts[0] || ""] || notFound;
  const view = make(r);
  state.view = view;
  clear(main).append(view.root);
  for (const link of document.querySelectorAll("#nav a")) {
    const active = link.dataset.nav === view.nav;
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · mesoslite`;
  if (view.load) view.load();
}

function setLive(on) {
  const box = document.getElementById("live");
  clear(box).append(h("span", { class: "live-dot" + (on ? " on" : "") }), on ? "live" : "reconnecting");
  if (!on) findLeader();
}

// When the stream drops, this master may have stopped leading: go to the leader's UI.
async function findLeader() {
  try {
    const answer = await api("/ui/api/leader");
    if (!answer.leading && answer.leader && new URL(answer.leader).origin !== location.origin) {
      location.href = answer.leader + "/" + location.hash;
    }
  } catch (e) { /* the master is away; the stream keeps retrying */ }
}

function onOverview(overview) {
  const before = state.generations;
  state.overview = overview;
  state.generations = overview.generations;
  if (overview.sample) state.history.push(overview.sample);
  while (state.history.length > 1000) state.history.shift();
  const cluster = document.getElementById("cluster");
  cluster.textContent = overview.cluster ? `cluster ${overview.cluster}` : "";
  const view = state.view;
  if (!view) return;
  if (view.onOverview) view.onOverview(overview);
  if (view.refresh && before && (view.deps || []).some((k) => before[k] !== overview.generations[k])) {
    view.refresh();
  }
}

window.addEventListener("hashchange", dispatch);
setInterval(() => tickTimes(main), 5000);
dispatch();
live("/ui/api/stream", { overview: onOverview }, setLive);

// ------------------------------------------------------------------ overview

function overviewView() {
  const root = h("div", {});
  const view = { nav: "overview", title: "Overview", root };
  const draw = (o) => {
    clear(root);
    if (!o) { root.append(h("p", { class: "muted", text: "Waiting for the leading master…" })); return; }
    root.dataset.loaded = "true";
    const res = o.resources;
    const up = o.start_time ? duration(o.time - o.start_time) : "—";
    root.append(h("h1", { text: o.cluster ? `Cluster ${o.cluster}` : "Cluster" }),
      h("div", { class: "cards" },
        card("Leader", o.leader ? `${o.leader.hostname}:${o.leader.port}` : "—",
             o.leader ? [h("div", { class: "muted mono", text: o.leader.id })] : []),
        card("Version", o.version, [h("div", { class: "muted" }, "up ", up, ", elected ",
                                      when(o.elected_time))]),
        card("Agents", num(o.agents.active, 0), [h("div", { class: "muted" },
          `${o.agents.deactivated} deactivated · ${o.agents.unreachable} unreachable`)],
          "#/agents", "agents-active"),
        card("Frameworks", num(o.frameworks.active, 0), [h("div", { class: "muted" },
          `${o.frameworks.inactive} inactive · ${o.frameworks.completed} completed`)], "#/frameworks"),
        card("Running tasks", num(o.tasks.TASK_RUNNING || 0, 0), [h("div", { class: "muted" },
          `${o.offers} outstanding offers`)], "#/tasks?state=TASK_RUNNING")),
      h("div", { class: "grid2" },
        h("section", {}, h("h2", { text: "Resources" }), resourceTable(res)),
        h("section", {}, h("h2", { text: "Allocated over the last minutes" }), historyChart())),
      h("div", { class: "grid2" },
        h("section", {}, h("h2", { text: "Tasks by state" }), taskStates(o.tasks)),
        h("section", {}, h("h2", { text: "Masters" }), mastersTable(o.masters || []))));
  };
  view.load = async () => {
    try {
      const data = await api("/ui/api/overview");
      if (!state.history.length) state.history = data.history || [];
      draw(data.overview || state.overview);
    } catch (e) { clear(root).append(errorBox(e)); }
  };
  view.onOverview = (o) => draw(o);
  draw(state.overview);
  return view;
}

function card(title, value, extra, link, id) {
  const body = [h("h2", { text: title }), h("div", { class: "big", id: id || null }, value), extra];
  return h("section", { class: "card" }, link ? h("a", { href: link, class: "plain" }, body) : body);
}

function resourceTable(res) {
  const rows = ["cpus", "mem", "disk", "gpus"].map((name) => ({ name, ...res[name] }));
  return table({ label: "resources", rows, columns: [
    { label: "Resource", render: (r) => r.name },
    { label: "Total", class: "num", render: (r) => resource(r.name, r.total) },
    { label: "Allocated", class: "num", render: (r) => [resource(r.name, r.allocated), " ",
                                                        meter(r.allocated, r.total, `${r.name} allocated`)] },
    { label: "Offered", class: "num", render: (r) => resource(r.name, r.offered) },
    { label: "Idle", class: "num", render: (r) => `${resource(r.name, r.idle)} (${percent(r.idle, r.total)})` },
  ] });
}

function historyChart() {
  const points = state.history;
  const pct = (used, total) => (total > 0 ? (100 * used) / total : 0);
  return lineChart([
    { name: "cpus allocated", class: "cpus", points: points.map((p) => [p[0], pct(p[1], p[3])]) },
    { name: "mem allocated", class: "mem", points: points.map((p) => [p[0], pct(p[4], p[6])]) },
  ], { span: 600, max: 100, unit: "%", label: "allocated cpus and memory, percent, last 10 minutes" });
}

function mastersTable(masters) {
  return table({ label: "masters", rows: masters, empty: "No master known.", columns: [
    { label: "Master", render: (m) => {
      const name = `${m.hostname || m.ip}:${m.port}`;
      const url = m.http_endpoint || `http://${name}`;
      return [h("a", { href: url.replace(/\/$/, "") + "/", class: "mono" }, name), m.self ? " (this one)" : ""];
    } },
    { label: "Role", render: (m) => h("span", { class: `badge ${m.leading ? "state-running" : ""}`,
                                                text: m.leading ? "leader" : "standby" }) },
    { label: "Id", class: "mono", render: (m) => m.id },
    { label: "Version", render: (m) => m.version },
  ] });
}

function taskStates(tasks) {
  const rows = Object.entries(tasks).filter(([, n]) => n > 0).map(([s, n]) => ({ s, n }));
  return table({ label: "tasks by state", rows, empty: "No tasks yet.", columns: [
    { label: "State", render: (r) => h("a", { href: href(["tasks"], stateLink(r.s)) }, stateBadge(r.s)) },
    { label: "Tasks", class: "num", render: (r) => num(r.n, 0) },
  ] });
}

function stateLink(s) {
  const done = ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
                "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"].includes(s);
  return { status: done ? "completed" : s === "TASK_UNREACHABLE" ? "unreachable" : "", state: s };
}

// -------------------------------------------------------------------- agents

const AGENT_STATES = ["active", "deactivated", "unreachable", "recovered"];

function agentsView(r) {
  return listView({ nav: "agents", title: "Agents", parts: ["agents"], r, deps: ["agents"],
    controls: (params, set) => h("div", { class: "row" },
      searchBox(params.q, "Filter by id, host or attribute", (q) => set({ q, offset: "" }, false))),
    fetchPage: (params) => query("/ui/api/agents", params),
    render: (data, params, set) => h("div", {},
      tabs([{ key: "", label: "All", href: href(["agents"], { ...params, state: "", offset: "" }) },
            ...AGENT_STATES.map((s) => ({ key: s, label: s, count: data.counts[s],
                                          href: href(["agents"], { ...params, state: s, offset: "" }) }))],
           params.state || "", "agent states"),
      table({ label: "agents", rows: data.items, ...sorter(params, set, data), columns: [
        { label: "Host", sort: "hostname", render: (a) => h("a", { href: href(["agents", a.id]) }, a.address || a.hostname) },
        { label: "State", sort: "state", render: (a) => h("span", {},
            h("span", { class: `badge state-${a.state === "active" ? "running" : "unreachable"}`, text: a.state }),
            a.maintenance ? h("span", { class: "badge state-unreachable", title: "taken out by an operator", text: a.maintenance.toLowerCase() }) : null) },
        { label: "CPUs", sort: "cpus", class: "num", render: (a) => `${num(a.allocated.cpus)} / ${num(a.resources.cpus)}` },
        { label: "Mem", sort: "mem", class: "num", render: (a) => `${resource("mem", a.allocated.mem)} / ${resource("mem", a.resources.mem)}` },
        { label: "Disk", sort: "disk", class: "num", render: (a) => resource("disk", a.resources.disk) },
        { label: "GPUs", sort: "gpus", class: "num", render: (a) => num(a.resources.gpus) },
        { label: "Tasks", sort: "tasks", class: "num", render: (a) => num(a.tasks, 0) },
        { label: "Attributes", render: (a) => labelsList(a.attributes) },
        { label: "Registered", sort: "registered_time", render: (a) => when(a.registered_time || a.since) },
        { label: "ID", sort: "id", render: (a) => h("span", { class: "mono", text: a.id }) },
      ] }),
      paging(data, set)),
  });
}

// ---------------------------------------------------------------- frameworks

function frameworksView(r) {
  return listView({ nav: "frameworks", title: "Frameworks", parts: ["frameworks"], r,
    deps: ["frameworks"],
    controls: (params, set) => h("div", { class: "row" },
      searchBox(params.q, "Filter by id, name or user", (q) => set({ q, offset: "" }, false))),
    fetchPage: (params) => query("/ui/api/frameworks", params),
    render: (data, params, set) => h("div", {},
      tabs(["active", "inactive", "completed"].map((s) => ({
        key: s, label: s, count: data.counts[s],
        href: href(["frameworks"], { ...params, status: s === "active" ? "" : s, offset: "" }) })),
        params.status || "active", "framework states"),
      table({ label: "frameworks", rows: data.items, ...sorter(params, set, data), columns: [
        { label: "Name", sort: "name", render: (f) => h("a", { href: href(["frameworks", f.id]) }, f.name || f.id) },
        { label: "Host", render: (f) => f.hostname },
        { label: "User", sort: "user", render: (f) => f.user },
        { label: "Principal", sort: "principal", render: (f) => f.principal || "—" },
        { label: "Roles", render: (f) => f.roles.join(", ") },
        { label: "Share", sort: "share", class: "num", render: (f) => percent(f.share, 1) },
        { label: "Active tasks", sort: "active_tasks", class: "num", render: (f) => num(f.active_tasks, 0) },
        { label: "CPUs", sort: "cpus", class: "num", render: (f) => num(f.allocated.cpus) },
        { label: "Mem", sort: "mem", class: "num", render: (f) => resource("mem", f.allocated.mem) },
        { label: "Offers", sort: "offers", class: "num", render: (f) => num(f.offers, 0) },
        { label: "Registered", sort: "registered_time", render: (f) => when(f.registered_time) },
        { label: "Web UI", render: (f) => (f.webui_url ? h("a", { href: f.webui_url, rel: "noopener noreferrer" }, "open") : "—") },
      ] }),
      paging(data, set)),
  });
}

// --------------------------------------------------------------------- tasks

function tasksView(r) {
  const view = tasksPanel({ r, parts: ["tasks"], title: "Tasks" });
  view.nav = "tasks";
  return view;
}

// -------------------------------------------------------------------- offers

function offersView(r) {
  return listView({ nav: "offers", title: "Offers", parts: ["offers"], r, deps: ["offers"],
    controls: (params, set) => h("div", { class: "row" },
      searchBox(params.q, "Filter by offer, host or framework", (q) => set({ q, offset: "" }, false))),
    fetchPage: (params) => query("/ui/api/offers", params),
    render: (data, params, set) => h("div", {},
      table({ label: "offers", rows: data.items, ...sorter(params, set, data), empty: "No outstanding offers.", columns: [
        { label: "Offer", sort: "id", render: (o) => h("span", { class: "mono", text: o.id }) },
        { label: "Framework", sort: "framework_id", render: (o) => h("a", { href: href(["frameworks", o.framework_id]) }, o.framework_id) },
        { label: "Host", sort: "hostname", render: (o) => h("a", { href: href(["agents", o.agent_id]) }, o.hostname) },
        { label: "Role", sort: "role", render: (o) => o.role },
        { label: "CPUs", sort: "cpus", class: "num", render: (o) => num(o.cpus) },
        { label: "Mem", sort: "mem", class: "num", render: (o) => resource("mem", o.mem) },
        { label: "Expires", render: (o) => (o.expires_at ? "yes" : "no") },
      ] }),
      paging(data, set)),
  });
}

// --------------------------------------------------------------------- roles

function rolesView(r) {
  return listView({ nav: "roles", title: "Roles", parts: ["roles"], r, deps: ["frameworks", "offers"],
    fetchPage: () => api("/ui/api/roles"),
    render: (data) => table({ label: "roles", rows: data.roles, empty: "No roles in use.", columns: [
      { label: "Role", render: (x) => x.role },
      { label: "Weight", class: "num", render: (x) => num(x.weight) },
      { label: "Share", class: "num", render: (x) => percent(x.share, 1) },
      { label: "Frameworks", render: (x) => x.frameworks.map((id, i) => [i ? ", " : "", h("a", { href: href(["frameworks", id]) }, id)]) },
      { label: "CPUs", class: "num", render: (x) => num(x.allocated.cpus) },
      { label: "Mem", class: "num", render: (x) => resource("mem", x.allocated.mem) },
      { label: "Offered CPUs", class: "num", render: (x) => num(x.offered.cpus) },
    ] }),
  });
}

// ------------------------------------------------------------------- metrics

function metricsView(r) {
  const filter = r.params.get("q") || "";
  return listView({ nav: "metrics", title: "Metrics", parts: ["metrics"], r, deps: ["agents", "frameworks"],
    controls: (params, set) => h("div", { class: "row" },
      searchBox(filter, "Filter metrics by name", (q) => set({ q }, false))),
    fetchPage: () => api("/ui/api/metrics"),
    render: (data, params) => {
      const q = (params.q || "").toLowerCase();
      const rows = Object.entries(data.metrics).filter(([k]) => k.toLowerCase().includes(q))
        .sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => ({ name, value }));
      return table({ label: "metrics", rows, columns: [
        { label: "Metric", render: (m) => h("span", { class: "mono", text: m.name }) },
        { label: "Value", class: "num", render: (m) => num(m.value, 3) },
      ] });
    },
  });
}


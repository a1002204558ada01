// The master UI's detail views: an agent, a framework, a task, and the task lists.

import {
  api, clear, errorBox, h, href, keyValues, labelsList, navigate, num, resource, stateBadge,
  table, tabs, searchBox, when, bytes, meter, throttle,
} from "../common/lib.js";
import { listView, paging, query, sorter } from "../common/list.js";

const STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
                "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
                "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR"];

function detailView({ nav, title, deps, fetch, render }) {
  const root = h("div", {});
  const view = { nav, title, deps, root };
  let serial = 0;
  view.load = async () => {
    const mine = ++serial;
    try {
      const data = await fetch();
      if (mine !== serial) return;
      clear(root).append(render(data));
      root.dataset.loaded = "true";
    } catch (e) {
      if (mine === serial) clear(root).append(h("h1", { text: title }), errorBox(e));
    }
  };
  view.refresh = throttle(() => view.load(), 1000);
  root.append(h("h1", { text: title }), h("p", { class: "muted", text: "Loading…" }));
  return view;
}

function resourceRows(row) {
  return table({ label: "resources", rows: ["cpus", "mem", "disk", "gpus"].map((name) => ({ name })),
    columns: [
      { label: "Resource", render: (r) => r.name },
      { label: "Total", class: "num", render: (r) => resource(r.name, row.resources[r.name]) },
      { label: "Allocated", class: "num", render: (r) => [resource(r.name, row.allocated[r.name]), " ",
        meter(row.allocated[r.name], row.resources[r.name], `${r.name} allocated`)] },
      { label: "Offered", class: "num", render: (r) => resource(r.name, row.offered[r.name]) },
    ] });
}

// -------------------------------------------------------------------- agent

// An operator's hold on the agent: deactivated (no offers), draining or drained.
function maintenanceText(a) {
  if (!a.maintenance) return "in service";
  if (!a.drain) return "deactivated: no offers";
  const grace = a.drain.max_grace_period == null ? "each task's own kill grace"
    : `kill grace at most ${a.drain.max_grace_period} s`;
  return h("span", {}, `${a.maintenance.toLowerCase()} since `, when(a.drain.started),
    ` (${grace}${a.drain.mark_gone ? ", then marked gone" : ""})`);
}

export function agentView(r) {
  const agentId = r.parts[1];
  let timer = null;
  const usage = h("div", {}, h("p", { class: "muted", text: "Reading usage from the agent…" }));
  const readUsage = async () => {
    try {
      const data = await api(`/ui/api/agents/${encodeURIComponent(agentId)}/statistics`);
      clear(usage).append(usageTable(data.statistics));
    } catch (e) { clear(usage).append(errorBox(e)); }
  };
  const view = detailView({ nav: "agents", title: `Agent ${agentId}`, deps: ["agents"],
    fetch: () => api(`/ui/api/agents/${encodeURIComponent(agentId)}`),
    render: (data) => {
      const a = data.agent;
      return h("div", {},
        h("h1", {}, "Agent ", h("span", { class: "mono", text: a.address || a.id })),
        h("div", { class: "grid2" },
          h("section", { class: "panel" }, keyValues([
            ["ID", h("span", { class: "mono", text: a.id })], ["Host", a.hostname],
            ["Address", a.address], ["State", a.state], ["Version", a.version],
            ["Maintenance", maintenanceText(a)],
            ["Registered", when(a.registered_time)], ["Re-registered", when(a.reregistered_time)],
            ["Attributes", labelsList(a.attributes)]])),
          h("section", {}, resourceRows(a))),
        h("h2", { text: "Frameworks" }),
        table({ label: "frameworks on this agent", rows: data.frameworks || [], columns: [
          { label: "Framework", render: (f) => h("a", { href: href(["frameworks", f.id]) }, f.name || f.id) },
          { label: "Tasks", class: "num", render: (f) => num(f.tasks, 0) },
        ] }),
        h("h2", { text: "Executors" }),
        table({ label: "executors", rows: data.executors || [], empty: "No executors with their own resources.", columns: [
          { label: "Executor", render: (e) => h("span", { class: "mono", text: e.executor_id }) },
          { label: "Name", render: (e) => e.name },
          { label: "Framework", render: (e) => h("a", { href: href(["frameworks", e.framework_id]) }, e.framework_id) },
          { label: "Role", render: (e) => e.role },
          { label: "CPUs", class: "num", render: (e) => num(e.resources.cpus) },
          { label: "Mem", class: "num", render: (e) => resource("mem", e.resources.mem) },
        ] }),
        h("h2", {}, "Tasks ", h("span", { class: "muted", text: `(${num(data.tasks_total || 0, 0)})` })),
        taskTable(data.tasks || [], {}),
        h("h2", { text: "Live usage" }), usage);
    } });
  const load = view.load;
  view.load = async () => {
    await load();
    if (!timer) { readUsage(); timer = setInterval(readUsage, 5000); }
  };
  view.destroy = () => clearInterval(timer);
  return view;
}

function usageTable(stats) {
  return table({ label: "usage", rows: stats || [], empty: "No executors running.", columns: [
    { label: "Executor", render: (s) => h("span", { class: "mono", text: s.executor_id }) },
    { label: "Framework", render: (s) => h("a", { href: href(["frameworks", s.framework_id]) }, s.framework_id) },
    { label: "CPU time", class: "num", render: (s) => `${num(s.statistics.cpus_user_time_secs + s.statistics.cpus_system_time_secs)} s` },
    { label: "CPU limit", class: "num", render: (s) => num(s.statistics.cpus_limit) },
    { label: "Memory", class: "num", render: (s) => [bytes(s.statistics.mem_rss_bytes), " / ", bytes(s.statistics.mem_limit_bytes)] },
    { label: "Processes", class: "num", render: (s) => num(s.statistics.processes, 0) },
  ] });
}

// ---------------------------------------------------------------- framework

export function frameworkView(r) {
  const frameworkId = r.parts[1];
  const tasks = tasksPanel({ r, parts: ["frameworks", frameworkId], title: "Tasks", framework: frameworkId, level: "h2" });
  const info = h("div", {}, h("h1", {}, "Framework ", h("span", { class: "mono", text: frameworkId })));
  const view = { nav: "frameworks", title: `Framework ${frameworkId}`, deps: ["frameworks", "tasks"],
                 root: h("div", {}, info, tasks.root) };
  let serial = 0;
  const loadInfo = async () => {
    const mine = ++serial;
    try {
      const data = await api(`/ui/api/frameworks/${encodeURIComponent(frameworkId)}`);
      if (mine !== serial) return;
      const f = data.framework;
      clear(info).append(h("h1", {}, "Framework ", f.name || f.id),
        h("div", { class: "grid2" },
          h("section", { class: "panel" }, keyValues([
            ["ID", h("span", { class: "mono", text: f.id })], ["Status", f.status], ["User", f.user],
            ["Principal", f.principal], ["Roles", f.roles.join(", ")], ["Host", f.hostname],
            ["Web UI", f.webui_url ? h("a", { href: f.webui_url, rel: "noopener noreferrer" }, f.webui_url) : ""],
            ["Registered", when(f.registered_time)], ["Re-registered", when(f.reregistered_time)],
            ["Capabilities", f.capabilities.join(", ")], ["Labels", labelsList(f.labels)],
            ["Offers", num(f.offers, 0)]])),
          h("section", {}, table({ label: "framework resources", rows: ["cpus", "mem", "disk", "gpus"].map((name) => ({ name })), columns: [
            { label: "Resource", render: (x) => x.name },
            { label: "Allocated", class: "num", render: (x) => resource(x.name, f.allocated[x.name]) },
            { label: "Offered", class: "num", render: (x) => resource(x.name, f.offered[x.name]) },
          ] }))));
      view.root.dataset.loaded = "true";
    } catch (e) { if (mine === serial) clear(info).append(errorBox(e)); }
  };
  view.load = () => { loadInfo(); tasks.load(); };
  view.refresh = throttle(() => { loadInfo(); tasks.load(); }, 1000);
  return view;
}

// ------------------------------------------------------------------ task lists

export function taskTable(rows, data, params, set) {
  const sorting = set ? sorter(params, set, data) : {};
  return table({ label: "tasks", rows, ...sorting, empty: "No tasks match.", columns: [
    { label: "ID", sort: "id", render: (t) => h("a", { href: href(["tasks", t.framework_id, t.id]), class: "mono" }, t.id) },
    { label: "Name", sort: "name", render: (t) => t.name },
    { label: "State", sort: "state", render: (t) => stateBadge(t.state) },
    { label: "Framework", sort: "framework_id", render: (t) => h("a", { href: href(["frameworks", t.framework_id]) }, t.framework_name || t.framework_id) },
    { label: "Host", sort: "agent_id", render: (t) => h("a", { href: href(["agents", t.agent_id]) }, t.hostname || t.agent_id) },
    { label: "CPUs", sort: "cpus", class: "num", render: (t) => num(t.cpus) },
    { label: "Mem", sort: "mem", class: "num", render: (t) => resource("mem", t.mem) },
    { label: "Started", sort: "started", render: (t) => when(t.started) },
    { label: "Updated", sort: "updated", render: (t) => when(t.updated) },
    { label: "Health", render: (t) => (t.healthy === null || t.healthy === undefined ? "—"
      : h("span", { class: `badge ${t.healthy ? "healthy" : "unhealthy"}`, text: t.healthy ? "healthy" : "unhealthy" })) },
  ] });
}

// The tasks list (also inside a framework's page): active / unreachable / completed,
// filtered by state, framework, agent and text, paged on the server.
export function tasksPanel({ r, parts, title, framework = "", level = "h1" }) {
  const fixed = framework ? { framework } : {};
  const view = listView({ nav: "tasks", title, parts, r, deps: ["tasks"],
    controls: (params, set) => h("div", { class: "row" },
      searchBox(params.q, "Filter by task id or name", (q) => set({ q, offset: "" }, false)),
      stateSelect(params, set),
      framework ? null : idFilter(params, set, "framework", "framework id"),
      idFilter(params, set, "agent", "agent id")),
    fetchPage: (params) => query("/ui/api/tasks", { ...params, ...fixed }),
    render: (data, params, set) => h("div", {},
      tabs(["active", "unreachable", "completed"].map((s) => ({
        key: s, label: s, count: data.counts[s],
        href: href(parts, { ...params, status: s === "active" ? "" : s, offset: "" }) })),
        params.status || "active", "task lists"),
      taskTable(data.items, data, params, set),
      paging(data, set)),
  });
  if (level !== "h1") {
    const heading = view.root.querySelector("h1");
    heading.replaceWith(h(level, { text: title }));
  }
  return view;
}

function stateSelect(params, set) {
  const select = h("select", { "aria-label": "task state" },
    h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s, selected: params.state === s }, s.replace(/^TASK_/, ""))));
  select.addEventListener("change", () => set({ state: select.value, offset: "" }));
  return select;
}

function idFilter(params, set, name, label) {
  const input = h("input", { type: "text", value: params[name] || "", placeholder: label,
                             "aria-label": label, size: 18 });
  input.addEventListener("change", () => set({ [name]: input.value.trim(), offset: "" }));
  return input;
}

// ---------------------------------------------------------------------- task

async function sandboxOf(task) {
  const args = new URLSearchParams({ framework_id: task.framework_id, executor_id: task.executor_id });
  const answer = await api(`/ui/api/agents/${encodeURIComponent(task.agent_id)}/sandbox?${args}`);
  return answer.directory;
}

export function taskView(r) {
  const [, frameworkId, taskId] = r.parts;
  const sandbox = h("div", { class: "row" }, h("span", { class: "muted", text: "Finding the sandbox…" }));
  return detailView({ nav: "tasks", title: `Task ${taskId}`, deps: ["tasks"],
    fetch: () => api(`/ui/api/tasks/${encodeURIComponent(frameworkId)}/${encodeURIComponent(taskId)}`),
    render: (data) => {
      const t = data.task;
      sandboxOf(t).then((dir) => {
        const file = (name) => href(["agents", t.agent_id, "file"], { path: `${dir}/${name}` });
        clear(sandbox).append(
          h("a", { class: "button", href: href(["agents", t.agent_id, "browse"], { path: dir }) }, "Sandbox"),
          h("a", { class: "button", href: file("stdout") }, "stdout"),
          h("a", { class: "button", href: file("stderr") }, "stderr"));
      }).catch((e) => clear(sandbox).append(h("span", { class: "muted" }, "No sandbox: ", e.message)));
      return h("div", {},
        h("h1", {}, "Task ", h("span", { class: "mono", text: t.id })), sandbox,
        h("div", { class: "grid2" },
          h("section", { class: "panel" }, keyValues([
            ["Name", t.name], ["State", stateBadge(t.state)],
            ["Framework", h("a", { href: href(["frameworks", t.framework_id]) }, t.framework_name || t.framework_id)],
            ["Agent", h("a", { href: href(["agents", t.agent_id]) }, t.agent_address || t.agent_id)],
            ["Executor", h("span", { class: "mono", text: t.executor_id })], ["Role", t.role],
            ["Started", when(t.started)], ["Updated", when(t.updated)],
            ["Health", t.healthy === null || t.healthy === undefined ? "" : (t.healthy ? "healthy" : "unhealthy")],
            t.health_check ? ["Health check", `${t.health_check.type} every ${t.health_check.interval}s`] : null,
            t.container ? ["Container", `${t.container.type} ${t.container.image}`] : null,
            t.command ? ["Command", h("code", { text: t.command })] : null,
            ["Ports", t.ports.length ? t.ports.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ") : ""],
            ["Labels", labelsList(t.labels)]])),
          h("section", {}, table({ label: "task resources", rows: Object.entries(t.resources).map(([name, value]) => ({ name, value })), columns: [
            { label: "Resource", render: (x) => x.name },
            { label: "Value", class: "num", render: (x) => (typeof x.value === "number" ? resource(x.name, x.value) : x.value) },
          ] }))),
        h("h2", { text: "Status history" }),
        table({ label: "status history", rows: [...t.statuses].reverse(), columns: [
          { label: "State", render: (s) => stateBadge(s.state) },
          { label: "Time", render: (s) => when(s.timestamp) },
          { label: "Source", render: (s) => s.source || "—" },
          { label: "Reason", render: (s) => s.reason || "—" },
          { label: "Message", render: (s) => s.message || "—" },
          { label: "Healthy", render: (s) => (s.healthy === null ? "—" : String(s.healthy)) },
        ] }));
    } });
}

// #/tasks/{framework}/{task}/stdout|stderr: straight to the task's log (service UI links here).
export function taskLogView(r) {
  const [, frameworkId, taskId, name] = r.parts;
  const root = h("div", {}, h("h1", { text: `Task ${taskId}` }),
                 h("p", { class: "muted", text: `Opening ${name}…` }));
  const view = { nav: "tasks", title: `Task ${taskId}`, root };
  view.load = async () => {
    try {
      if (!["stdout", "stderr"].includes(name)) throw new Error(`no log named ${name}`);
      const data = await api(`/ui/api/tasks/${encodeURIComponent(frameworkId)}/${encodeURIComponent(taskId)}`);
      const dir = await sandboxOf(data.task);
      navigate(href(["agents", data.task.agent_id, "file"], { path: `${dir}/${name}` }), true);
    } catch (e) { root.append(errorBox(e)); }
  };
  return view;
}

// The service UI's application page: instances (host:port, state, health, agent,
// started, logs), configuration, versions (diff, roll back), debug (last failure, why it
// waits: the /v2/queue offer summary) and the actions: scale, restart, suspend, destroy,
// kill and kill-and-scale selected instances, each confirmed.

import {
  api, clear, errorBox, h, href, keyValues, labelsList, num, mb, stateBadge, table, tabs,
  throttle, when,
} from "../common/lib.js";
import { act, appPath, healthBar, logLink, shared, statusBadge } from "./app.js";

const TABS = ["instances", "configuration", "versions", "debug"];

function epoch(iso) { return iso ? Date.parse(iso) / 1000 : null; }

export function appView(r) {
  const id = r.params.get("id") || "/";
  const tab = TABS.includes(r.params.get("tab")) ? r.params.get("tab") : "instances";
  const root = h("div", {}, h("h1", { text: id }), h("p", { class: "muted", text: "Loading…" }));
  const view = { nav: "apps", title: id, root };
  const selected = new Set();
  let serial = 0;
  view.load = async () => {
    const mine = ++serial;
    try {
      const [answer, queue] = await Promise.all([
        api(`/v2/apps/${appPath(id)}?embed=app.taskStats`), api("/v2/queue")]);
      if (mine !== serial) return;
      const app = answer.app;
      const queued = (queue.queue || []).find((q) => q.app && q.app.id === app.id) || null;
      const body = await renderTab(tab, app, queued, selected);
      if (mine !== serial) return;
      clear(root).append(header(app, queued), tabs(TABS.map((t) => ({
        key: t, label: t, href: href(["app"], { id, tab: t === "instances" ? "" : t }) })), tab, "application views"),
        body);
      root.dataset.loaded = "true";
    } catch (e) {
      if (mine === serial) clear(root).append(h("h1", { text: id }), errorBox(e),
        h("a", { href: "#/apps" }, "Back to the applications"));
    }
  };
  view.refresh = throttle(() => {
    // Not while the user works in a dialog or compares a version on the versions tab
    // (a reload would take the comparison and its Roll back button away under the user).
    if (document.querySelector("dialog[open]")) return;
    if (tab === "versions" && root.querySelector("#version-diff > *")) return;
    view.load();
  }, 1000);
  return view;
}

function status(app, queued) {
  if ((app.deployments || []).length) return "Deploying";
  if (app.instances === 0 && !app.tasksRunning && !app.tasksStaged) return "Suspended";
  if (queued) return queued.delay && !queued.delay.overdue && queued.delay.timeLeftSeconds > 0 ? "Delayed" : "Waiting";
  return "Running";
}

function health(app) {
  const tasks = app.tasks || [];
  const out = { healthy: 0, unhealthy: 0, staged: 0, unknown: 0, over: 0, unscheduled: 0 };
  for (const t of tasks) {
    if (t.state === "TASK_STAGING" || t.state === "TASK_STARTING") out.staged += 1;
    else if (!(t.healthCheckResults || []).length) out.unknown += 1;
    else if (t.healthCheckResults[0].alive) out.healthy += 1;
    else out.unhealthy += 1;
  }
  out.over = Math.max(tasks.length - app.instances, 0);
  out.unscheduled = Math.max(app.instances - tasks.length, 0);
  return out;
}

function header(app, queued) {
  const id = app.id;
  const scaleInput = h("input", { type: "number", min: 0, step: 1, value: app.instances, id: "scale-to",
                                  "aria-label": "instances" });
  return h("div", {},
    h("h1", {}, id, " ", statusBadge(status(app, queued))),
    h("div", { class: "row" },
      healthBar(health(app), app.instances),
      h("span", { class: "muted", id: "instances-summary", text: `${app.tasksRunning} of ${app.instances} instances running` }),
      h("span", { class: "grow" }),
      h("button", { type: "button", class: "primary", onclick: () => act("Scale", `Scale ${id} to how many instances?`,
        () => api(`/v2/apps/${appPath(id)}`, { method: "PUT", body: { instances: Number(scaleInput.value) } }),
        { confirm: "Scale", extra: h("label", {}, "Instances ", scaleInput) }) }, "Scale"),
      h("button", { type: "button", onclick: () => act("Restart", `Replace every instance of ${id}, rolling?`,
        () => api(`/v2/apps/${appPath(id)}/restart`, { method: "POST" }), { confirm: "Restart" }) }, "Restart"),
      h("button", { type: "button", onclick: () => act("Suspend", `Scale ${id} to 0 instances? Its configuration is kept.`,
        () => api(`/v2/apps/${appPath(id)}`, { method: "PUT", body: { instances: 0 } }), { confirm: "Suspend" }) }, "Suspend"),
      h("a", { class: "button", href: href(["edit"], { id }) }, "Edit"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        const done = await act("Destroy", `Destroy ${id} and kill all its instances? This cannot be undone.`,
          () => api(`/v2/apps/${appPath(id)}`, { method: "DELETE" }), { danger: true, confirm: "Destroy", refresh: false });
        if (done) location.hash = "#/apps";
      } }, "Destroy")));
}

async function renderTab(tab, app, queued, selected) {
  if (tab === "configuration") return configuration(app);
  if (tab === "versions") return versions(app);
  if (tab === "debug") return debug(app, queued);
  return instances(app, selected);
}

// ---------------------------------------------------------------- instances

function address(task, port) {
  return h("a", { href: `http://${task.host}:${port}/`, rel: "noopener noreferrer", class: "mono addr" }, `${task.host}:${port}`);
}

function instances(app, selected) {
  const tasks = app.tasks || [];
  for (const idValue of [...selected]) if (!tasks.some((t) => t.id === idValue)) selected.delete(idValue);
  const killButtons = (scale) => h("button", { type: "button", class: scale ? "" : "danger",
    onclick: () => {
      const ids = [...selected];
      if (!ids.length) return;
      act(scale ? "Kill and scale" : "Kill", `${scale ? "Kill and scale down" : "Kill"} ${ids.length} instance(s) of ${app.id}?`,
        () => api(`/v2/tasks/delete${scale ? "?scale=true" : ""}`, { method: "POST", body: { ids } }),
        { danger: !scale, confirm: scale ? "Kill and scale" : "Kill" }).then((done) => { if (done) selected.clear(); });
    } }, scale ? "Kill and scale" : "Kill");
  const master = shared.links && shared.links.master;
  return h("div", {},
    h("div", { class: "row" }, h("span", { class: "muted", text: "Selected instances:" }), killButtons(false), killButtons(true)),
    table({ label: "instances", rows: tasks, empty: "No instances.", columns: [
      { label: "", render: (t) => {
        const box = h("input", { type: "checkbox", checked: selected.has(t.id), "aria-label": `select ${t.id}` });
        box.addEventListener("change", () => (box.checked ? selected.add(t.id) : selected.delete(t.id)));
        return box;
      } },
      { label: "Instance", render: (t) => h("span", { class: "mono", text: t.id }) },
      { label: "Address", render: (t) => (t.ports && t.ports.length ? t.ports.map((p, i) => [i ? " " : "", address(t, p)]) : t.host) },
      { label: "State", render: (t) => stateBadge(t.state) },
      { label: "Health", render: (t) => {
        const results = t.healthCheckResults;
        if (!results || !results.length) return h("span", { class: "muted", text: (app.healthChecks || []).length ? "no result yet" : "—" });
        const r = results[0];
        return h("span", {}, h("span", { class: `badge ${r.alive ? "healthy" : "unhealthy"}`, text: r.alive ? "healthy" : "unhealthy" }),
          r.lastFailureCause ? h("div", { class: "muted", text: r.lastFailureCause }) : null);
      } },
      { label: "Agent", render: (t) => (master ? h("a", { href: `${master}/#/agents/${encodeURIComponent(t.slaveId)}`, class: "mono" }, t.slaveId)
                                              : h("span", { class: "mono", text: t.slaveId })) },
      { label: "Started", render: (t) => when(epoch(t.startedAt || t.stagedAt)) },
      { label: "Logs", render: (t) => {
        const out = logLink(t, "stdout"), err = logLink(t, "stderr");
        return out ? h("span", {}, h("a", { href: out }, "stdout"), " ", h("a", { href: err }, "stderr")) : "—";
      } },
    ] }));
}

// ------------------------------------------------------------ configuration

function configuration(app) {
  const shown = { ...app };
  for (const key of ["tasks", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments",
                     "lastTaskFailure", "readinessCheckResults", "taskStats"]) delete shown[key];
  return h("div", { class: "grid2" },
    h("section", { class: "panel" }, keyValues([
      ["Command", app.cmd ? h("code", { text: app.cmd }) : ""],
      ["Image", app.container && app.container.docker ? app.container.docker.image : ""],
      ["Resources", `${num(app.cpus)} cpus, ${mb(app.mem)} memory, ${mb(app.disk)} disk`],
      ["Instances", num(app.instances, 0)], ["Labels", labelsList(app.labels)],
      ["Version", app.version], ["Last change", when(epoch(app.versionInfo && app.versionInfo.lastConfigChangeAt))]])),
    h("section", {}, h("pre", { class: "log", tabindex: "0", "aria-label": "configuration JSON", text: JSON.stringify(shown, null, 2) })));
}

// ---------------------------------------------------------------- versions

function lineDiff(a, b) {
  // Longest common subsequence over lines: small documents, plain and exact.
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(["+", y[j]]); j++; }
    else { out.push(["-", x[i]]); i++; }
  }
  return out;
}

function comparable(app) {
  const out = { ...app };
  for (const key of ["version", "versionInfo", "tasks", "tasksStaged", "tasksRunning", "tasksHealthy",
                     "tasksUnhealthy", "deployments", "lastTaskFailure", "readinessCheckResults", "taskStats"]) delete out[key];
  return JSON.stringify(out, null, 2);
}

async function versions(app) {
  const list = (await api(`/v2/apps/${appPath(app.id)}/versions`)).versions || [];
  const diffBox = h("div", { id: "version-diff" });
  const show = async (version) => {
    clear(diffBox).append(h("p", { class: "muted", text: "Loading…" }));
    try {
      const old = await api(`/v2/apps/${appPath(app.id)}/versions/${encodeURIComponent(version)}`);
      const lines = lineDiff(comparable(app), comparable(old));
      const changed = lines.filter(([k]) => k !== " ").length;
      clear(diffBox).append(
        h("h2", {}, `Changes from the current version to ${version} `, h("span", { class: "muted", text: `(${changed} lines)` })),
        h("pre", { class: "log diff", tabindex: "0", "aria-label": "differences" },
          lines.map(([k, text]) => h("span", { class: k === "+" ? "add" : k === "-" ? "del" : "same", text: `${k} ${text}\n` }))),
        h("button", { type: "button", class: "primary", onclick: () => act("Roll back", `Deploy version ${version} of ${app.id}?`,
          () => api(`/v2/apps/${appPath(app.id)}`, { method: "PUT", body: { version } }), { confirm: "Roll back" }) },
          `Roll back to ${version}`));
    } catch (e) { clear(diffBox).append(errorBox(e)); }
  };
  return h("div", {},
    table({ label: "versions", rows: list.map((v) => ({ v })), columns: [
      { label: "Version", render: (x) => h("span", { class: "mono", text: x.v }) },
      { label: "When", render: (x) => when(epoch(x.v)) },
      { label: "", render: (x) => (x.v === app.version ? h("span", { class: "badge", text: "current" })
        : h("button", { type: "button", onclick: () => show(x.v) }, "Compare")) },
    ] }),
    diffBox);
}

// -------------------------------------------------------------------- debug

function debug(app, queued) {
  const failure = app.lastTaskFailure;
  const summary = queued && queued.processedOffersSummary;
  return h("div", { class: "grid2" },
    h("section", {}, h("h2", { text: "Last task failure" }), failure ? h("div", { class: "panel" }, keyValues([
      ["Task", h("span", { class: "mono", text: failure.taskId })], ["State", stateBadge(failure.state)],
      ["Message", failure.message], ["Host", failure.host], ["When", when(epoch(failure.timestamp))],
      ["Version", failure.version]])) : h("p", { class: "muted", text: "No task of this application has failed." })),
    h("section", {}, h("h2", { text: "Waiting for offers" }), queued ? h("div", { class: "panel" },
      keyValues([["Instances to launch", num(queued.count, 0)], ["Waiting since", when(epoch(queued.since))],
                 ["Launch delay", queued.delay && !queued.delay.overdue ? `${queued.delay.timeLeftSeconds}s left` : "none"],
                 ["Offers processed", num(summary ? summary.processedOffersCount : 0, 0)],
                 ["Offers not used", num(summary ? summary.unusedOffersCount : 0, 0)]]),
      table({ label: "declined offers", rows: summary ? summary.rejectSummaryLastOffers : [], empty: "No offer was declined.", columns: [
        { label: "Reason", render: (x) => x.reason },
        { label: "Declined", class: "num", render: (x) => `${x.declined} of ${x.processed}` },
      ] })) : h("p", { class: "muted", text: "Nothing is waiting to launch." })));
}

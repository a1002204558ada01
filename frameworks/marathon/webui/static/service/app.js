// The service UI: the shell (navigation, the live stream of /v2/events changes), the apps tree and the
// deployments.  Every view is a hash URL; the apps view is paged and filtered on the
// server (/ui/api/apps); everything else talks to the /v2 API.

import {
  api, clear, confirmDialog, h, href, labelsList, live, meter, num, mb, route, searchBox,
  table, throttle, tickTimes, toast, when,
} from "../common/lib.js";
import { listView, paging, query } from "../common/list.js";
import { appView } from "./detail.js";
import { formView } from "./form.js";

const main = document.getElementById("view");
export const shared = { links: null, view: null };

const ROUTES = { "": appsView, apps: appsView, app: appView, new: formView, edit: formView,
                 deployments: deploymentsView };

function dispatch() {
  const r = route();
  if (shared.view && shared.view.destroy) shared.view.destroy();
  const make = ROUTES[r.parts[0] || ""];
  const view = make ? make(r) : { nav: "", title: "Not found", root: h("div", {},
    h("h1", { text: "No such view" }), h("a", { href: "#/apps" }, "Go to the applications.")) };
  shared.view = view;
  clear(main).append(view.root);
  for (const link of document.querySelectorAll("#nav a")) {
    const active = link.dataset.nav === view.nav;
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · mesoslite services`;
  if (view.load) view.load();
}

function setLive(on) {
  const box = document.getElementById("live");
  clear(box).append(h("span", { class: "live-dot" + (on ? " on" : "") }), on ? "live" : "reconnecting");
}

const onEvent = throttle(() => { if (shared.view && shared.view.refresh) shared.view.refresh(); }, 1000);

async function loadLinks() {
  try {
    shared.links = await api("/ui/api/links");
    const link = document.getElementById("master-link");
    if (shared.links.master) {
      link.setAttribute("href", shared.links.master + "/");
      link.hidden = false;
    }
  } catch (e) { shared.links = null; }
}

// Where an instance's log is: the master's UI tails it through the master.
export function logLink(task, name = "stdout") {
  const links = shared.links;
  if (!links || !links.master || !links.frameworkId) return null;
  return `${links.master}/#/tasks/${encodeURIComponent(links.frameworkId)}/${encodeURIComponent(task.id)}/${name}`;
}

// Run an API write after confirming it; toast the outcome; refresh the view.
// `refresh: false` for an action that leaves the view (Destroy): refreshing it would ask
// for what was just removed.
export async function act(title, message, request,
                          { danger = false, confirm = "Confirm", extra = null, refresh = true } = {}) {
  if (!(await confirmDialog(title, message, { danger, confirm, extra }))) return null;
  const view = shared.view, viewRefresh = view && view.refresh;
  if (!refresh && view) view.refresh = null;  // no live refresh while the view is being left
  try {
    const answer = await request();
    toast(`${title}: done${answer && answer.deploymentId ? ` (deployment ${answer.deploymentId})` : ""}`);
    if (refresh && shared.view && shared.view.refresh) shared.view.refresh();
    return answer || {};
  } catch (e) {
    if (!refresh && view) view.refresh = viewRefresh;
    toast(`${title}: ${e.message}`, "error");
    return null;
  }
}

export function appPath(id) { return id.split("/").filter(Boolean).map(encodeURIComponent).join("/"); }

window.addEventListener("hashchange", dispatch);
setInterval(() => tickTimes(main), 5000);
loadLinks().then(dispatch);
// The /v2/events bus, coalesced by the server: one "changes" event a second at most.
live("/ui/api/events", { changes: onEvent }, setLive);

// --------------------------------------------------------------------- apps

const STATUSES = ["Running", "Deploying", "Suspended", "Delayed", "Waiting"];
const HEALTH = ["healthy", "unhealthy", "staged", "unknown", "over", "unscheduled"];

export function healthBar(health, instances) {
  const total = Math.max(instances, Object.values(health).reduce((a, b) => a + b, 0), 1);
  const parts = HEALTH.filter((k) => k !== "unscheduled" && health[k]).map((k) => {
    const part = h("span", { class: k, title: `${health[k]} ${k}` });
    part.style.width = `${(100 * health[k]) / total}%`;
    return part;
  });
  const text = HEALTH.filter((k) => health[k]).map((k) => `${health[k]} ${k}`).join(", ") || "no instances";
  return h("span", { class: "health-bar", role: "img", "aria-label": text, title: text }, parts);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status.toLowerCase()}`, text: status });
}

function groupCrumbs(group) {
  const parts = group.split("/").filter(Boolean);
  const out = [h("a", { href: href(["apps"]) }, "All")];
  parts.forEach((part, i) => out.push(" / ", h("a", { href: href(["apps"], { group: "/" + parts.slice(0, i + 1).join("/") }) }, part)));
  return h("nav", { class: "breadcrumbs", "aria-label": "groups" }, out);
}

function select(label, value, options, onChange) {
  const el = h("select", { "aria-label": label }, h("option", { value: "" }, `any ${label}`),
    options.map((o) => h("option", { value: o, selected: value === o }, o)));
  el.addEventListener("change", () => onChange(el.value));
  return el;
}

function appsView(r) {
  const view = listView({ nav: "apps", title: "Applications", parts: ["apps"], r, deps: [],
    controls: (params, set) => h("div", {},
      groupCrumbs(params.group || "/"),
      h("div", { class: "row" },
        searchBox(params.q, "Search applications", (q) => set({ q, offset: "" }, false)),
        select("status", params.status, STATUSES, (status) => set({ status, offset: "" })),
        select("health", params.health, HEALTH, (health) => set({ health, offset: "" })),
        (() => {
          const input = h("input", { type: "text", value: params.label || "", placeholder: "label or key=value",
                                     "aria-label": "label", size: 16 });
          input.addEventListener("change", () => set({ label: input.value.trim(), offset: "" }));
          return input;
        })(),
        h("a", { class: "button primary", href: "#/new" }, "Create application"))),
    fetchPage: (params) => query("/ui/api/apps", params),
    render: (data, params, set) => {
      const rows = [...data.groups.map((g) => ({ group: g })), ...data.apps.map((a) => ({ app: a }))];
      return h("div", {},
        h("p", { class: "muted" }, `${num(data.counts.apps, 0)} applications here: `,
          STATUSES.filter((s) => data.counts.status[s]).map((s, i) => [i ? ", " : "", `${data.counts.status[s]} ${s.toLowerCase()}`])),
        table({ label: "applications", rows, empty: "No applications match.", columns: [
          { label: "Name", render: (x) => (x.group
            ? h("a", { href: href(["apps"], { group: x.group.id }) }, h("span", { class: "muted", text: "group " }), `${x.group.name}/`)
            : h("a", { href: href(["app"], { id: x.app.id }) }, x.app.id)) },
          { label: "Status", render: (x) => (x.group ? `${x.group.apps} apps` : statusBadge(x.app.status)) },
          { label: "Health", render: (x) => (x.group ? "" : healthBar(x.app.health, x.app.instances)) },
          { label: "Instances", class: "num", render: (x) => (x.group ? `${x.group.running} / ${x.group.instances}`
                                                                      : `${x.app.running} / ${x.app.instances}`) },
          { label: "CPUs", class: "num", render: (x) => num(x.group ? x.group.cpus : x.app.cpus) },
          { label: "Memory", class: "num", render: (x) => mb(x.group ? x.group.mem : x.app.mem) },
          { label: "Labels", render: (x) => (x.group ? "" : labelsList(x.app.labels)) },
        ] }),
        paging(data, set));
    },
  });
  return view;
}

// -------------------------------------------------------------- deployments

function deploymentsView(r) {
  return listView({ nav: "deployments", title: "Deployments", parts: ["deployments"], r, deps: [],
    fetchPage: () => api("/v2/deployments"),
    render: (deployments) => table({ label: "deployments", rows: deployments, empty: "No deployments are running.", columns: [
      { label: "Deployment", render: (d) => h("span", { class: "mono", text: d.id }) },
      { label: "Applications", render: (d) => d.affectedApps.map((id, i) => [i ? ", " : "", h("a", { href: href(["app"], { id }) }, id)]) },
      { label: "Step", class: "num", render: (d) => [`${d.currentStep} / ${d.totalSteps} `,
        meter(Math.max(d.currentStep - 1, 0), d.totalSteps, `steps of ${d.id} done`)] },
      { label: "Actions", render: (d) => (d.currentActions || []).map((a) => `${a.action} ${a.app}`).join(", ") },
      { label: "Started", render: (d) => when(Date.parse(d.version) / 1000) },
      { label: "", render: (d) => h("span", { class: "row" },
        h("button", { type: "button", onclick: () => act("Roll back deployment", `Stop ${d.id} and return ${d.affectedApps.join(", ")} to the previous version?`,
          () => api(`/v2/deployments/${encodeURIComponent(d.id)}`, { method: "DELETE" }), { confirm: "Roll back" }) }, "Roll back"),
        h("button", { type: "button", class: "danger", onclick: () => act("Stop deployment", `Stop ${d.id} where it is, without rolling back?`,
          () => api(`/v2/deployments/${encodeURIComponent(d.id)}?force=true`, { method: "DELETE" }), { danger: true, confirm: "Stop" }) }, "Stop")) },
    ] }),
  });
}


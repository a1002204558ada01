// The service UI's create / edit form.  The app definition (Marathon JSON) is the one
// source of truth: every form field reads and writes its part of it, the JSON view shows
// it all (fields the form has no input for included) and may be edited directly, which
// refills the form.  The API's validation errors (422 details) are shown next to the
// field whose path they name; any other goes above the form.

import { api, clear, errorBox, h, href, navigate, toast } from "../common/lib.js";
import { appPath } from "./app.js";

const READ_ONLY = ["tasks", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments",
                   "lastTaskFailure", "readinessCheckResults", "taskStats", "version", "versionInfo"];
const HEALTH_PROTOCOLS = ["", "HTTP", "MESOS_HTTP", "TCP", "MESOS_TCP", "COMMAND"];

// ---------------------------------------------------------------- the document

function get(doc, path) {
  return path.split(".").reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), doc);
}

function put(doc, path, value) {
  const keys = path.split(".");
  let node = doc;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key];
  }
  if (value === undefined) delete node[keys[keys.length - 1]];
  else node[keys[keys.length - 1]] = value;
}

function number(text, integer) {
  const trimmed = String(text).trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  if (Number.isNaN(value)) return trimmed; // sent as given: the API names the field
  return integer && Number.isInteger(value) ? value : value;
}

function lines(text) { return String(text).split("\n").map((l) => l.trim()).filter(Boolean); }

function pairs(text) {
  const out = {};
  for (const line of lines(text)) {
    const at = line.indexOf("=");
    if (at < 0) out[line] = ""; else out[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return out;
}

function showPairs(object) { return Object.entries(object || {}).map(([k, v]) => `${k}=${v}`).join("\n"); }

function isDocker(doc) { return !!(doc.container && doc.container.docker); }

// ---------------------------------------------------------------- the fields

// Each field: key (element id), label, errors (the API paths it owns), read(doc) -> text,
// write(doc, text), and its input kind.
const FIELDS = [
  { key: "id", label: "ID", errors: ["/id"], hint: "lowercase path, e.g. /web/frontend",
    read: (d) => d.id || "", write: (d, t) => { d.id = t.trim(); } },
  { key: "instances", label: "Instances", type: "number", errors: ["/instances"], min: 0, step: 1,
    read: (d) => d.instances ?? "", write: (d, t) => put(d, "instances", number(t, true)) },
  { key: "cpus", label: "CPUs", type: "number", errors: ["/cpus"], step: 0.1,
    read: (d) => d.cpus ?? "", write: (d, t) => put(d, "cpus", number(t)) },
  { key: "mem", label: "Memory (MB)", type: "number", errors: ["/mem"], step: 16,
    read: (d) => d.mem ?? "", write: (d, t) => put(d, "mem", number(t)) },
  { key: "disk", label: "Disk (MB)", type: "number", errors: ["/disk"], step: 16,
    read: (d) => d.disk ?? "", write: (d, t) => put(d, "disk", number(t)) },
  { key: "cmd", label: "Shell command", kind: "textarea", errors: ["/cmd", "/args"], hint: "run with sh -c; may be empty for a Docker image's own command",
    read: (d) => d.cmd || "", write: (d, t) => put(d, "cmd", t.trim() ? t : undefined) },
  { key: "image", label: "Docker image", errors: ["/container"], hint: "leave empty to run the command on the agent",
    read: (d) => (isDocker(d) ? d.container.docker.image || "" : ""),
    write: (d, t) => {
      if (t.trim()) {
        d.container = { ...(d.container || {}), type: "DOCKER", docker: { ...((d.container || {}).docker || {}), image: t.trim() } };
      } else if (d.container) {
        delete d.container.docker;
        if (d.container.type === "DOCKER") delete d.container.type;
        if (!Object.keys(d.container).length) delete d.container;
        if ((d.networks || []).some((n) => n.mode !== "host")) delete d.networks;
      }
    } },
  { key: "network", label: "Network", kind: "select", options: ["host", "container/bridge"], errors: ["/networks"],
    read: (d) => ((d.networks || [])[0] || {}).mode || "host",
    write: (d, t) => { d.networks = [{ mode: t }]; if (t === "host" && d.container) delete d.container.portMappings; } },
  { key: "ports", label: "Ports (host network)", errors: ["/portDefinitions", "/requirePorts"], hint: "comma-separated; 0 picks a free one",
    read: (d) => (d.portDefinitions || []).map((p) => p.port).join(", "),
    write: (d, t) => put(d, "portDefinitions", t.split(",").map((p) => p.trim()).filter(Boolean).map((p) => ({ port: number(p, true) }))) },
  { key: "mappings", label: "Port mappings (bridge)", kind: "textarea", errors: ["/container/portMappings"], hint: "one per line: containerPort[:hostPort][/udp]",
    read: (d) => ((d.container || {}).portMappings || []).map((m) => `${m.containerPort}${m.hostPort !== undefined ? `:${m.hostPort}` : ""}${m.protocol && m.protocol !== "tcp" ? `/${m.protocol}` : ""}`).join("\n"),
    write: (d, t) => {
      const list = lines(t).map((line) => {
        const [ports, protocol] = line.split("/");
        const [container, host] = ports.split(":");
        const out = { containerPort: number(container, true) };
        if (host !== undefined) out.hostPort = number(host, true);
        if (protocol) out.protocol = protocol;
        return out;
      });
      if (list.length) put(d, "container.portMappings", list);
      else if (d.container) delete d.container.portMappings;
    } },
  { key: "env", label: "Environment", kind: "textarea", errors: ["/env"], hint: "one per line: NAME=value",
    read: (d) => showPairs(d.env), write: (d, t) => { d.env = pairs(t); } },
  { key: "labels", label: "Labels", kind: "textarea", errors: ["/labels"], hint: "one per line: key=value",
    read: (d) => showPairs(d.labels), write: (d, t) => { d.labels = pairs(t); } },
  { key: "volumes", label: "Volumes", kind: "textarea", errors: ["/container/volumes"], hint: "one per line: containerPath:hostPath[:RO]",
    read: (d) => ((d.container || {}).volumes || []).map((v) => `${v.containerPath}:${v.hostPath}${v.mode && v.mode !== "RW" ? `:${v.mode}` : ""}`).join("\n"),
    write: (d, t) => {
      const list = lines(t).map((line) => {
        const [containerPath, hostPath, mode] = line.split(":");
        return { containerPath, hostPath, mode: mode || "RW" };
      });
      if (list.length) put(d, "container.volumes", list);
      else if (d.container) { delete d.container.volumes; if (!Object.keys(d.container).length) delete d.container; }
    } },
  { key: "constraints", label: "Constraints", kind: "textarea", errors: ["/constraints"], hint: "one per line: field:OPERATOR[:value], e.g. hostname:UNIQUE",
    read: (d) => (d.constraints || []).map((c) => c.join(":")).join("\n"),
    write: (d, t) => { d.constraints = lines(t).map((line) => line.split(":")); } },
];

const HEALTH_FIELDS = [
  { key: "hc-protocol", label: "Protocol", kind: "select", options: HEALTH_PROTOCOLS, prop: "protocol" },
  { key: "hc-path", label: "Path", prop: "path" },
  { key: "hc-port-index", label: "Port index", type: "number", prop: "portIndex", numeric: true },
  { key: "hc-command", label: "Command", prop: "command" },
  { key: "hc-grace", label: "Grace period (s)", type: "number", prop: "gracePeriodSeconds", numeric: true },
  { key: "hc-interval", label: "Interval (s)", type: "number", prop: "intervalSeconds", numeric: true },
  { key: "hc-timeout", label: "Timeout (s)", type: "number", prop: "timeoutSeconds", numeric: true },
  { key: "hc-failures", label: "Max failures", type: "number", prop: "maxConsecutiveFailures", numeric: true },
].map((f) => ({
  ...f, errors: [`/healthChecks/0/${f.prop}`],
  read: (d) => {
    const hc = (d.healthChecks || [])[0] || {};
    if (f.prop === "command") return hc.command ? hc.command.value || "" : "";
    return hc[f.prop] ?? "";
  },
  write: (d, t) => {
    if (f.prop === "protocol" && !t) { d.healthChecks = []; return; }
    const hc = { ...((d.healthChecks || [])[0] || { protocol: "HTTP" }) };
    if (f.prop === "command") { if (t.trim()) hc.command = { value: t }; else delete hc.command; }
    else if (f.numeric) { const v = number(t, true); if (v === undefined) delete hc[f.prop]; else hc[f.prop] = v; }
    else if (t.trim()) hc[f.prop] = t.trim(); else delete hc[f.prop];
    d.healthChecks = [hc];
  },
}));

const UPGRADE_FIELDS = [
  { key: "min-health", label: "Minimum health capacity", prop: "minimumHealthCapacity", hint: "0 to 1" },
  { key: "max-over", label: "Maximum over capacity", prop: "maximumOverCapacity", hint: "0 to 1" },
].map((f) => ({
  ...f, type: "number", step: 0.1, errors: [`/upgradeStrategy/${f.prop}`],
  read: (d) => (d.upgradeStrategy || {})[f.prop] ?? "",
  write: (d, t) => put(d, `upgradeStrategy.${f.prop}`, number(t)),
}));

const ALL_FIELDS = [...FIELDS, ...HEALTH_FIELDS, ...UPGRADE_FIELDS, { key: "hc-any", errors: ["/healthChecks"], read: () => "", write: () => {} },
                    { key: "upgrade-any", errors: ["/upgradeStrategy"], read: () => "", write: () => {} }];

// ------------------------------------------------------------------ the view

function control(field, doc, onChange) {
  const attrs = { id: `f-${field.key}`, name: field.key, "aria-describedby": `e-${field.key}` };
  let input;
  if (field.kind === "textarea") input = h("textarea", { ...attrs, rows: 3 });
  else if (field.kind === "select") input = h("select", attrs, field.options.map((o) => h("option", { value: o }, o || "none")));
  else input = h("input", { ...attrs, type: field.type || "text", step: field.step || (field.type === "number" ? "any" : null),
                             min: field.min ?? null });
  input.value = String(field.read(doc));
  input.addEventListener(field.kind === "select" ? "change" : "input", () => onChange(field, input.value));
  return h("div", { class: "field", dataset: { key: field.key } },
    h("label", { for: attrs.id, text: field.label }), input,
    field.hint ? h("span", { class: "hint", text: field.hint }) : null,
    h("div", { class: "field-error", id: `e-${field.key}`, role: "alert" }));
}

function clean(app) {
  const doc = { ...app };
  for (const key of READ_ONLY) delete doc[key];
  return doc;
}

export function formView(r) {
  const editing = r.parts[0] === "edit";
  const appId = r.params.get("id") || "";
  const root = h("div", {}, h("h1", { text: editing ? `Edit ${appId}` : "Create application" }));
  const view = { nav: editing ? "apps" : "new", title: editing ? `Edit ${appId}` : "Create application", root };
  view.load = async () => {
    let doc = { id: "", cmd: "", cpus: 0.1, mem: 64, disk: 0, instances: 1, portDefinitions: [{ port: 0 }] };
    if (editing) {
      try {
        doc = clean((await api(`/v2/apps/${appPath(appId)}`)).app);
      } catch (e) { root.append(errorBox(e)); return; }
    }
    build(root, doc, editing);
    root.dataset.loaded = "true";
  };
  return view;
}

function build(root, initial, editing) {
  let doc = initial;
  const general = h("div", { class: "error", role: "alert", hidden: true });
  const json = h("textarea", { id: "f-json", rows: 30, "aria-label": "JSON definition", spellcheck: "false" });
  const jsonError = h("div", { class: "field-error", role: "alert" });
  const controls = new Map();
  const onChange = (field, value) => {
    field.write(doc, value);
    json.value = JSON.stringify(doc, null, 2);
  };
  const fill = () => {
    for (const field of [...FIELDS, ...HEALTH_FIELDS, ...UPGRADE_FIELDS]) {
      const input = controls.get(field.key);
      if (input && document.activeElement !== input) input.value = String(field.read(doc));
    }
  };
  const group = (legend, fields, cls = "fields") => h("fieldset", {}, h("legend", { text: legend }),
    h("div", { class: cls }, fields.map((f) => {
      const box = control(f, doc, onChange);
      controls.set(f.key, box.querySelector("input, textarea, select"));
      return box;
    })));
  json.value = JSON.stringify(doc, null, 2);
  json.addEventListener("input", () => {
    try {
      const parsed = JSON.parse(json.value);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("expected a JSON object");
      doc = parsed;
      jsonError.textContent = "";
      fill();
    } catch (e) { jsonError.textContent = `Not valid JSON: ${e.message}`; }
  });
  const submit = h("button", { type: "submit", class: "primary" }, editing ? "Save and deploy" : "Create and deploy");
  const form = h("form", { class: "app-form", novalidate: true },
    general,
    group("Application", FIELDS.slice(0, 5)),
    group("What to run", FIELDS.slice(5, 8), ""),
    group("Ports", FIELDS.slice(8, 10), ""),
    group("Environment, labels, volumes, constraints", FIELDS.slice(10), ""),
    h("fieldset", {}, h("legend", { text: "Health check" }),
      h("div", { class: "fields" }, HEALTH_FIELDS.map((f) => { const b = control(f, doc, onChange); controls.set(f.key, b.querySelector("input, select")); return b; })),
      h("div", { class: "field-error", id: "e-hc-any", role: "alert" })),
    h("fieldset", {}, h("legend", { text: "Upgrade strategy" }),
      h("div", { class: "fields" }, UPGRADE_FIELDS.map((f) => { const b = control(f, doc, onChange); controls.set(f.key, b.querySelector("input")); return b; })),
      h("div", { class: "field-error", id: "e-upgrade-any", role: "alert" })),
    h("div", { class: "row" }, submit, h("a", { class: "button", href: editing ? href(["app"], { id: initial.id }) : "#/apps" }, "Cancel")));
  if (editing) controls.get("id").readOnly = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showErrors(form, general, []);
    submit.disabled = true;
    try {
      const path = editing ? `/v2/apps/${appPath(initial.id)}?partialUpdate=false` : "/v2/apps";
      await api(path, { method: editing ? "PUT" : "POST", body: doc });
      toast(editing ? `${doc.id}: saved, deploying` : `${doc.id}: created, deploying`);
      navigate(href(["app"], { id: doc.id.startsWith("/") ? doc.id : `/${doc.id}` }));
    } catch (e) {
      const details = (e.body && e.body.details) || [];
      showErrors(form, general, details.length ? details : [{ path: "", errors: [e.message] }], e.message);
    } finally { submit.disabled = false; }
  });
  clear(root).append(h("h1", { text: editing ? `Edit ${initial.id}` : "Create application" }),
    h("div", { class: "form-layout" }, form,
      h("section", {}, h("h2", {}, h("label", { for: "f-json", text: "JSON" })), json, jsonError)));
}

function owner(path) {
  let best = null;
  let length = -1;
  for (const field of ALL_FIELDS) {
    for (const prefix of field.errors) {
      if ((path === prefix || path.startsWith(prefix + "/")) && prefix.length > length) {
        best = field;
        length = prefix.length;
      }
    }
  }
  return best;
}

function showErrors(form, general, details, message = "") {
  for (const box of form.querySelectorAll(".field-error")) box.textContent = "";
  for (const box of form.querySelectorAll(".field.invalid")) {
    box.classList.remove("invalid");
    box.querySelector("input, textarea, select").removeAttribute("aria-invalid");
  }
  general.hidden = true;
  clear(general);
  let first = null;
  for (const detail of details) {
    const text = (detail.errors || []).join("; ");
    const field = detail.path ? owner(detail.path) : null;
    const box = field && form.querySelector(`#e-${field.key}`);
    if (box) {
      box.textContent = box.textContent ? `${box.textContent}; ${text}` : text;
      const wrapper = box.closest(".field");
      if (wrapper) {
        wrapper.classList.add("invalid");
        const input = wrapper.querySelector("input, textarea, select");
        input.setAttribute("aria-invalid", "true");
        first = first || input;
      }
    } else {
      general.hidden = false;
      general.append(h("div", { text: detail.path ? `${detail.path}: ${text}` : text || message }));
    }
  }
  if (first) first.focus();
  else if (!general.hidden) general.scrollIntoView({ block: "center" });
}

// The master UI's list views: parameters in the URL, server-side pages, live refresh.

import { api, clear, errorBox, h, href, pager, throttle } from "./lib.js";

// A list view: its parameters live in the URL; changing them pushes a history entry
// (sort, page, tab) or replaces it (typing a search), then re-reads the page.
export function listView({ nav, title, parts, r, deps, controls, fetchPage, render }) {
  const params = Object.fromEntries(r.params.entries());
  const results = h("div", { class: "results", "aria-live": "polite" });
  const view = { nav, title, deps, root: h("div", {}), params };
  const set = (changes, push = true) => {
    Object.assign(params, changes);
    const target = href(parts, params);
    if (push) history.pushState(null, "", target); else history.replaceState(null, "", target);
    view.load();
  };
  let serial = 0;
  view.load = async () => {
    const mine = ++serial;
    try {
      const data = await fetchPage(params);
      if (mine !== serial) return;
      clear(results).append(render(data, params, set));
      view.root.dataset.loaded = "true";
    } catch (e) {
      if (mine === serial) clear(results).append(errorBox(e));
    }
  };
  view.refresh = throttle(() => view.load(), 1000);
  view.root.append(h("h1", { text: title }), controls ? controls(params, set) : null, results);
  return view;
}

export function query(path, params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined) search.set(k, v);
  const text = search.toString();
  return api(text ? `${path}?${text}` : path);
}

export function sorter(params, set, data) {
  return { sort: (data && data.sort) || params.sort, order: (data && data.order) || params.order,
           onSort: (sort, order) => set({ sort, order, offset: "" }) };
}

export function paging(data, set) {
  return pager({ offset: data.offset, limit: data.limit, total: data.total,
                 onPage: (offset) => set({ offset }) });
}


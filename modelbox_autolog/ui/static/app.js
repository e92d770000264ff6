/* modelbox web UI: a single page over the JSON API (/api/v1). Every user string reaches the page
   through textContent or attribute setters (never innerHTML); chart tooltips render as canvas
   text. Live updates come from the server-sent change feed. */
"use strict";

// ------------------------------------------------------------------ DOM and formatting helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $main = () => document.getElementById("main");
function fill(el, ...children) { // replaceChildren, skipping absent parts
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
function mount(...nodes) { return fill($main(), ...nodes); }
function num(v) { // JSON carries NaN/inf as strings
  if (v === "NaN") return NaN; if (v === "Infinity") return Infinity; if (v === "-Infinity") return -Infinity;
  return v;
}
function fmt(v) {
  v = num(v);
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e6)) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function when(ts) { return ts ? new Date(ts * 1000).toLocaleString() : ""; }
function dur(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function size(b) {
  if (b === null || b === undefined) return "missing";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}
function short(id) { return id ? id.slice(0, 8) : ""; }
function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  return s.toString();
}
function statusBadge(run) {
  const badge = h("span", { class: "status " + run.status }, run.status);
  if (run.status === "running" && run.progress !== null && run.progress !== undefined) {
    const p = Math.max(0, Math.min(1, num(run.progress)));
    return h("span", { class: "running-cell" }, badge,
      h("span", { class: "progress", title: Math.round(p * 100) + "%" }, h("span", { style: `width:${(p * 100).toFixed(1)}%` })));
  }
  return badge;
}
function runLink(run) { return h("a", { href: "#/run/" + encodeURIComponent(run.id) }, run.name || short(run.id)); }
// Who is logged in (GET /session); the page only offers what the role may do, the API checks anyway.
let session = { user: null, role: "admin" };
const RANKS = { reader: 0, writer: 1, admin: 2 };
function may(role) { return (RANKS[session.role] ?? 2) >= RANKS[role]; }
function csrf() {
  const m = document.cookie.match(/(?:^|; )mbx_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// ------------------------------------------------------------------ API
class ApiError extends Error {
  constructor(status, body) { super(body.message || ("HTTP " + status)); this.status = status; this.body = body; }
}
async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (init.body !== undefined && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body); init.headers["content-type"] = "application/json";
  }
  if (init.method && init.method !== "GET") init.headers["x-csrf-token"] = csrf();
  const response = await fetch("/api/v1" + path, init);
  if (response.status === 401) { location.href = "/login"; throw new ApiError(401, {}); }
  const body = await response.json().catch(() => ({}));
  if (response.status === 503) storeDown(body.message || "the store does not answer");
  else if (response.ok) storeUp();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}
let healthTimer = null;
function storeDown(message) {
  const banner = document.getElementById("banner");
  banner.hidden = false;
  fill(banner, h("strong", {}, "The store cannot be reached. "), message, " — retrying every 5 s.");
  if (!healthTimer) healthTimer = setInterval(async () => {
    const r = await fetch("/api/v1/health", { credentials: "same-origin" });
    if (r.ok) { storeUp(); route(); }
  }, 5000);
}
function storeUp() {
  document.getElementById("banner").hidden = true;
  if (healthTimer) { clearInterval(healthTimer); healthTimer = null; }
}
function errorBox(err) {
  if (err.status === 404) return h("div", { class: "error" }, h("strong", {}, "Not found: "), err.message);
  if (err.status === 503) return h("div", { class: "error" }, h("strong", {}, "The store cannot be reached: "), err.message);
  return h("div", { class: "error" }, err.message || String(err));
}

// ------------------------------------------------------------------ live updates (server-sent events)
const live = { source: null, listeners: new Set(), lastSeq: null };
function startLive() {
  if (live.source) return;
  const url = "/api/v1/changes/stream";
  const source = new EventSource(url);
  live.source = source;
  const dot = document.getElementById("live");
  source.onopen = () => dot.classList.add("on");
  source.onerror = () => dot.classList.remove("on");
  source.addEventListener("change", (e) => {
    const change = JSON.parse(e.data);
    if (live.lastSeq !== null && change.seq <= live.lastSeq) return;
    live.lastSeq = change.seq;
    for (const fn of live.listeners) fn(change);
  });
  source.addEventListener("reload", () => { for (const fn of live.listeners) fn(null); });
}
function onChange(fn) { live.listeners.add(fn); return () => live.listeners.delete(fn); }
// Re-render the page a change concerns, once per burst, and only if the user is still on it
// (a timer set on one page must not redraw the next one over an edit in progress).
function stillHere(ms) {
  const here = location.hash;
  return debounce(() => { if (location.hash === here) route(); }, ms);
}
function debounce(fn, ms) {
  let t = null; return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// ------------------------------------------------------------------ charts (ECharts)
const charts = new Set();
function disposeCharts() { for (const c of charts) c.dispose(); charts.clear(); }
window.addEventListener("resize", debounce(() => { for (const c of charts) c.resize(); }, 150));
function chart(el, option) {
  const c = echarts.init(el, null, { renderer: "canvas" });
  c.setOption(option);
  charts.add(c);
  return c;
}
const TOOLTIP = { trigger: "axis", renderMode: "richText", confine: true }; // canvas text: never HTML
function ema(values, alpha) { // smoothing that skips NaN/inf points (they stay marked)
  if (!alpha) return values;
  let last = null; const out = [];
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) { out.push(v); continue; }
    last = last === null ? v : last * alpha + v * (1 - alpha);
    out.push(last);
  }
  return out;
}
function xValues(sample, axis) {
  if (axis === "epoch") return sample.epochs.map((e, i) => e === null ? sample.steps[i] : e);
  if (axis === "time") return sample.timestamps.map((t) => t - sample.timestamps[0]);
  return sample.steps;
}
/* One chart with several series: [{name, sample}], options {axis, smoothing, log}. NaN and
   infinite points are drawn as red triangles at the edge of the finite range, never dropped. */
function seriesChart(el, series, opts) {
  const out = [], marks = [];
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s.sample.values.map(num)) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) { lo = 0; hi = 1; }
  for (const s of series) {
    const xs = xValues(s.sample, opts.axis);
    const raw = s.sample.values.map(num);
    const finiteOnly = raw.map((v) => (Number.isFinite(v) && !(opts.log && v <= 0)) ? v : null);
    const ys = ema(finiteOnly, opts.smoothing);
    out.push({ name: s.name, type: "line", showSymbol: xs.length < 60, symbolSize: 4, connectNulls: false, sampling: "lttb",
      data: xs.map((x, i) => [x, ys[i]]) });
    const bad = [];
    raw.forEach((v, i) => {
      if (!Number.isFinite(v)) bad.push({ value: [xs[i], v > 0 ? hi : (v < 0 ? lo : hi)], label: Number.isNaN(v) ? "NaN" : (v > 0 ? "inf" : "-inf") });
    });
    if (bad.length) marks.push({ name: s.name + " (NaN/inf)", type: "scatter", symbol: "triangle", symbolSize: 10,
      itemStyle: { color: "#d62728" }, data: bad.map((b) => ({ value: b.value, name: b.label })),
      tooltip: { trigger: "item", formatter: (p) => `${p.seriesName}: ${p.name} at x=${fmt(p.value[0])}` } });
  }
  const xName = { step: "step", epoch: "epoch", time: "seconds since start" }[opts.axis];
  return chart(el, {
    animation: false, legend: { type: "scroll", top: 0 }, tooltip: TOOLTIP,
    grid: { left: 60, right: 20, top: 30, bottom: 45 },
    xAxis: { type: "value", name: xName, nameLocation: "middle", nameGap: 28, scale: true },
    yAxis: { type: opts.log ? "log" : "value", scale: true },
    dataZoom: [{ type: "inside" }],
    series: [...out, ...marks],
  });
}
const PREFIXES = /^(train|training|val|valid|validation|test|eval)[_./-]/;
function metricGroup(key) { return key.replace(PREFIXES, ""); }

// ------------------------------------------------------------------ router
let leave = [];
function route() {
  for (const fn of leave) fn();
  leave = [];
  disposeCharts();
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "";
  const view = {
    "": experimentsPage, runs: runsPage, run: runPage, compare: comparePage, models: modelsPage, model: modelPage,
  }[page] || notFoundPage;
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#/" + page));
  Promise.resolve(view(params, parts[1])).catch((err) => mount(errorBox(err)));
}
window.addEventListener("hashchange", route);
function setHash(path, params) { const s = q(params); location.hash = path + (s ? "?" + s : ""); }
function notFoundPage() { mount(h("div", { class: "error" }, "No such page.")); }

// ------------------------------------------------------------------ experiments
async function experimentsPage(params) {
  const showArchived = params.get("archived") === "all";
  const { experiments } = await api("/experiments?" + q({ archived: showArchived ? "all" : "" }));
  const message = h("div", { class: "message", id: "experiments-message" });
  const act = async (e, action) => {
    if (action === "delete" && !confirm(`Delete experiment "${e.name}" and every run in it, with their files? This cannot be undone.`)) return;
    try {
      await api(`/experiments/${encodeURIComponent(e.id)}` + (action === "delete" ? "" : "/" + action), { method: action === "delete" ? "DELETE" : "POST", body: action === "delete" ? undefined : {} });
      route();
    } catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const cells = {};  // per experiment: the cells its summary fills in (counts are a second, slower question)
  const rows = experiments.slice().reverse().map((e) => {
    const c = cells[e.id] = { runs: h("td", { class: "num" }, "…"), running: h("td", { class: "num" }), failed: h("td", { class: "num" }),
      latest: h("td", {}), activity: h("td", {}) };
    return h("tr", { class: e.archived_at ? "archived" : "", dataset: { experiment: e.name } },
      h("td", {}, h("a", { href: "#/runs?" + q({ experiment: e.id }) }, e.name), e.archived_at ? h("span", { class: "tag muted" }, " archived") : null),
      c.runs, c.running, c.failed, c.latest, c.activity,
      h("td", {}, when(e.created_at)), h("td", { class: "mono muted" }, short(e.id)),
      // Experiments hold everyone's runs: archiving and deleting them is for admins (server.policy).
      h("td", { class: "actions" }, !may("admin") ? null : e.archived_at ? h("button", { class: "link", onclick: () => act(e, "restore") }, "restore")
        : h("button", { class: "link", onclick: () => act(e, "archive") }, "archive"),
        may("admin") ? h("button", { class: "link danger", onclick: () => act(e, "delete") }, "delete") : null));
  });
  const toggle = h("label", {}, h("input", { type: "checkbox", id: "show-archived", checked: showArchived,
    onchange: (ev) => setHash("/", { archived: ev.target.checked ? "all" : "" }) }), " show archived");
  mount(h("h1", {}, "Experiments"), h("div", { class: "toolbar" }, toggle), message,
    experiments.length ? h("table", { class: "grid", id: "experiments" }, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", { class: "num" }, "runs"),
      h("th", { class: "num" }, "running"), h("th", { class: "num" }, "failed / killed"), h("th", {}, "latest run"), h("th", {}, "last activity"),
      h("th", {}, "created"), h("th", {}, "id"), h("th", {}, ""))),
      h("tbody", {}, rows)) : h("p", { class: "muted" }, "Nothing logged yet. Run a script with mbx.autolog() and this page fills in."));
  const fillSummaries = () => api("/experiments/summary").then(({ summaries }) => {
    for (const [id, s] of Object.entries(summaries)) {
      const c = cells[id];
      if (!c) continue;  // an archived experiment not shown, or one created since (its change redraws the page)
      fill(c.runs, String(s.runs));
      fill(c.running, s.running ? h("span", { class: "status running" }, String(s.running)) : "");
      fill(c.failed, s.failed ? h("a", { href: "#/runs?" + q({ experiment: id, where: "status in ('failed', 'killed')" }) }, String(s.failed)) : "");
      fill(c.latest, s.latest ? [runLink(s.latest), " ", h("span", { class: "status " + s.latest.status }, s.latest.status)] : "");
      fill(c.activity, s.latest ? when(s.latest.end_time || s.latest.start_time) : "");
    }
    for (const c of Object.values(cells)) if (c.runs.textContent === "…") fill(c.runs, "0");
  }).catch(() => {});
  await fillSummaries();
  const again = stillHere(500);
  const refresh = debounce(() => fillSummaries(), 1500);
  leave.push(onChange((change) => {
    if (!change || change.object_type === "experiment") again();
    else if (change.object_type === "run") refresh();
  }));
}

// ------------------------------------------------------------------ runs table
async function runsPage(params) {
  const state = {
    experiment: params.get("experiment") || "", where: params.get("where") || "", order: params.get("order") || "",
    offset: +(params.get("offset") || 0), limit: 50, archived: params.get("archived") || "",
    params: params.has("params") ? params.get("params").split(",").filter(Boolean) : null,
    metrics: params.has("metrics") ? params.get("metrics").split(",").filter(Boolean) : null,
  };
  const selected = new Set();
  const [keys, experiments] = await Promise.all([api("/keys?" + q({ experiment: state.experiment })), api("/experiments")]);
  if (state.params === null || state.metrics === null) {
    // Default columns: the keys most of the latest runs share (not the first five in alphabetical
    // order, which for a Trainer run are its accelerator settings); system metrics last.
    const sample = await api("/runs?" + q({ experiment: state.experiment, limit: 50, top_level: "1" })).catch(() => ({ runs: [] }));
    const common = (pick, all, skip) => {
      const count = new Map(all.map((k) => [k, 0]));
      for (const r of sample.runs) for (const k of Object.keys(pick(r) || {})) if (count.has(k)) count.set(k, count.get(k) + 1);
      return all.slice().sort((a, b) => (skip(a) - skip(b)) || (count.get(b) - count.get(a)) || (a < b ? -1 : 1)).slice(0, 5);
    };
    if (state.params === null) state.params = common((r) => r.params, keys.params, (k) => (k.includes(".") ? 1 : 0));
    if (state.metrics === null) state.metrics = common((r) => r.metrics, keys.metrics, (k) => (k.startsWith("system/") ? 1 : 0));
  }
  const exp = experiments.experiments.find((e) => e.id === state.experiment || e.name === state.experiment);
  const push = () => setHash("/runs", { experiment: state.experiment, where: state.where, order: state.order,
    offset: state.offset || "", params: state.params.join(","), metrics: state.metrics.join(","), archived: state.archived });
  const archivedToggle = h("label", { class: "toggle" }, h("input", { type: "checkbox", id: "show-archived", checked: state.archived === "all",
    onchange: (e) => { state.archived = e.target.checked ? "all" : ""; state.offset = 0; push(); } }), " show archived");

  const filter = h("input", { type: "search", id: "where", class: "where", spellcheck: "false", value: state.where,
    placeholder: "filter: params.lr > 0.01 and metrics.val_acc >= 0.9 and status = 'finished'" });
  const filterError = h("div", { class: "where-error", id: "where-error" });
  filter.addEventListener("keydown", (e) => { if (e.key === "Enter") { state.where = filter.value.trim(); state.offset = 0; push(); } });
  const compareButton = h("button", { id: "compare", disabled: true, onclick: () => setHash("/compare", { ids: [...selected].join(",") }) }, "Compare");
  const picker = (label, all, chosen, prefix) => {
    const select = h("select", { multiple: true, size: Math.min(6, Math.max(2, all.length)), class: "picker", "aria-label": label },
      all.map((k) => h("option", { value: k, selected: chosen.includes(k) }, k)));
    select.addEventListener("change", () => {
      const values = [...select.selectedOptions].map((o) => o.value);
      if (prefix === "params") state.params = values; else state.metrics = values;
      push();
    });
    return h("label", { class: "pick" }, label, select);
  };
  const table = h("table", { class: "grid runs", id: "runs-table" });
  const pager = h("div", { class: "pager" });
  mount(h("h1", {}, exp ? "Runs of " : "All runs", exp ? h("span", { class: "accent" }, exp.name) : ""),
    h("div", { class: "toolbar" }, filter, compareButton, archivedToggle), filterError,
    h("details", { class: "columns" }, h("summary", {}, "Columns"),
      h("div", { class: "pickers" }, picker("params", keys.params, state.params, "params"), picker("metrics", keys.metrics, state.metrics, "metrics"))),
    table, pager);

  const columns = [
    ...state.params.map((k) => ({ label: k, field: "params.`" + k.replace(/`/g, "\\`") + "`", get: (r) => r.params[k], cls: "param" })),
    ...state.metrics.map((k) => ({ label: k, field: "metrics.`" + k.replace(/`/g, "\\`") + "`", get: (r) => r.metrics[k] && r.metrics[k].last, cls: "metric" })),
  ];
  const sortHeader = (label, field, cls) => {
    const [current, dir] = state.order.split(/\s+/);
    const arrow = current === field ? (dir === "desc" ? " ▼" : " ▲") : "";
    return h("th", { class: "sortable " + (cls || ""), title: "sort by " + field, onclick: () => {
      state.order = current === field && dir !== "desc" ? field + " desc" : field + (current === field ? "" : " desc");
      state.offset = 0; push();
    } }, label, arrow);
  };
  const updateCompare = () => { compareButton.disabled = selected.size < 2 || selected.size > 50; compareButton.textContent = `Compare (${selected.size})`; };
  const row = (r, depth) => {
    const box = h("input", { type: "checkbox", "aria-label": "select " + (r.name || r.id), checked: selected.has(r.id) });
    box.addEventListener("change", () => { box.checked ? selected.add(r.id) : selected.delete(r.id); updateCompare(); });
    const fold = r.children ? h("button", { class: "fold", title: r.children + " child runs", "aria-expanded": "false" }, "▸ " + r.children) : null;
    const tr = h("tr", { dataset: { run: r.id }, class: (depth ? "child" : "") + (r.archived_at ? " archived" : "") },
      h("td", {}, box), h("td", { class: "name" }, depth ? "↳ " : "", runLink(r), r.archived_at ? h("span", { class: "tag muted" }, " archived") : null,
        fold ? " " : "", fold),
      h("td", {}, statusBadge(r)), h("td", {}, when(r.start_time)), h("td", { class: "num" }, dur(r.duration_s)),
      columns.map((c) => h("td", { class: "num " + c.cls }, fmt(c.get(r)))));
    if (fold) fold.addEventListener("click", async () => {
      if (fold.getAttribute("aria-expanded") === "true") {
        let next = tr.nextSibling;
        while (next && next.classList.contains("child")) { const n = next.nextSibling; next.remove(); next = n; }
        fold.setAttribute("aria-expanded", "false"); return;
      }
      fold.setAttribute("aria-expanded", "true");
      const kids = await api("/runs?" + q({ where: `parent = '${r.id}'`, order_by: state.order, limit: 1000, archived: state.archived,
        params: state.params.join(","), metrics: state.metrics.join(",") }));
      let anchor = tr;
      for (const k of kids.runs) { const c = row(k, 1); anchor.after(c); anchor = c; }
    });
    return tr;
  };
  const load = async () => {
    let page;
    try {
      page = await api("/runs?" + q({ experiment: state.experiment, where: state.where, order_by: state.order, limit: state.limit,
        offset: state.offset, params: state.params.join(","), metrics: state.metrics.join(","), top_level: "1", archived: state.archived }));
      fill(filterError, ); filter.classList.remove("invalid");
    } catch (err) {
      if (err.status === 400 && err.body.position !== undefined) {
        filter.classList.add("invalid");
        const text = err.body.expression || state.where;
        fill(filterError, h("code", {}, text.slice(0, err.body.position)), h("mark", {}, text.slice(err.body.position) || " "),
          h("span", {}, ` ← ${err.body.message} (position ${err.body.position})`));
        filter.focus(); filter.setSelectionRange(err.body.position, err.body.position);
        fill(table, ); fill(pager, ); return;
      }
      throw err;
    }
    fill(table, 
      h("thead", {}, h("tr", {}, h("th", {}, ""), sortHeader("name", "name"), sortHeader("status", "status"), sortHeader("started", "started"),
        sortHeader("duration", "duration"), columns.map((c) => sortHeader(c.label, c.field, c.cls)))),
      h("tbody", {}, page.runs.map((r) => row(r, 0))));
    const end = state.offset + page.runs.length;
    const counter = h("span", { id: "run-count" }, page.runs.length ? `${state.offset + 1}–${end} of …` : "no runs match");
    const next = h("button", { disabled: page.runs.length < state.limit, onclick: () => { state.offset += state.limit; push(); } }, "next ›");
    fill(pager,
      h("button", { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); push(); } }, "‹ prev"),
      counter, next);
    // the total is a second, slower question (a count over every match): the page does not wait for it
    api("/runs/count?" + q({ experiment: state.experiment, where: state.where, top_level: "1", archived: state.archived })).then((c) => {
      if (page.runs.length) counter.textContent = `${state.offset + 1}–${end} of ${c.total}`;
      next.disabled = end >= c.total;
    }).catch(() => {});
  };
  await load();
  updateCompare();
  const refresh = debounce(() => load().catch(() => {}), 800);
  leave.push(onChange((change) => {
    if (!change || ["run", "metrics", "experiment"].includes(change.object_type)) refresh();
  }));
}

// ------------------------------------------------------------------ run page
async function runPage(params, runId) {
  let run = await api("/runs/" + encodeURIComponent(runId));
  const opts = { axis: "step", smoothing: 0, log: false };
  const sections = {
    overview: h("section", { id: "overview" }), charts: h("section", { id: "charts" }), events: h("section", { id: "events" }),
    artifacts: h("section", { id: "artifacts" }), console: h("section", { id: "console" }), models: h("section", { id: "models" }),
    lineage: h("section", { id: "lineage" }),
  };
  const header = h("div", { class: "run-header" });
  const drawHeader = () => fill(header, 
    h("h1", {}, run.name || short(run.id), " ", statusBadge(run), run.archived_at ? h("span", { class: "status archived", id: "archived-badge" }, "archived") : null),
    runActions(run, (updated) => { if (updated) { run = { ...run, ...updated }; drawHeader(); drawOverview(sections.overview, run); } }),
    h("div", { class: "meta" },
      h("span", {}, "experiment ", h("a", { href: "#/runs?" + q({ experiment: run.experiment_id }) }, run.experiment)),
      run.parent_run_id ? h("span", {}, "parent ", h("a", { href: "#/run/" + run.parent_run_id }, short(run.parent_run_id))) : null,
      run.children ? h("span", {}, h("a", { href: "#/runs?" + q({ where: `parent = '${run.id}'` }) }, run.children + " child runs")) : null,
      h("span", {}, "started " + when(run.start_time)), h("span", {}, "duration " + (dur(run.duration_s) || "running")),
      h("span", { class: "mono muted" }, run.id)),
    failureBox(run));
  drawHeader();
  mount(header, h("nav", { class: "tabs" }, Object.keys(sections).map((k) => h("a", { href: "#" + k, onclick: (e) => {
    e.preventDefault(); sections[k].scrollIntoView({ behavior: "smooth" }); } }, k))), ...Object.values(sections));

  drawOverview(sections.overview, run);
  const drawCharts = async () => {
    disposeCharts();
    const keys = Object.keys(run.metrics).sort();
    const single = keys.filter((k) => run.metrics[k].count <= 1);
    const multi = keys.filter((k) => run.metrics[k].count > 1);
    const controls = h("div", { class: "chart-controls" },
      h("label", {}, "x axis ", h("select", { id: "x-axis", onchange: (e) => { opts.axis = e.target.value; drawCharts(); } },
        ["step", "epoch", "time"].map((a) => h("option", { value: a, selected: a === opts.axis }, a === "time" ? "wall time" : a)))),
      h("label", {}, "smoothing ", h("input", { type: "range", min: 0, max: 0.98, step: 0.02, value: opts.smoothing,
        onchange: (e) => { opts.smoothing = +e.target.value; drawCharts(); } })),
      h("label", {}, h("input", { type: "checkbox", checked: opts.log, onchange: (e) => { opts.log = e.target.checked; drawCharts(); } }), " log scale"));
    const groups = new Map();
    for (const k of multi) { const g = metricGroup(k); if (!groups.has(g)) groups.set(g, []); groups.get(g).push(k); }
    const grid = h("div", { class: "chart-grid" });
    const singleTable = single.length ? h("table", { class: "grid small", id: "single-values" },
      h("thead", {}, h("tr", {}, h("th", {}, "metric"), h("th", {}, "value"))),
      h("tbody", {}, single.map((k) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, fmt(run.metrics[k].last)))))) : null;
    fill(sections.charts, h("h2", {}, "Metrics"), multi.length ? controls : null, grid,
      single.length ? h("h3", {}, "Single values") : null, singleTable,
      keys.length ? null : h("p", { class: "muted" }, "No metrics yet."));
    for (const [group, members] of groups) {
      const box = h("div", { class: "chart", dataset: { metric: group } });
      grid.append(h("figure", {}, h("figcaption", {}, members.join(", ")), box));
      const samples = await Promise.all(members.map((k) => api(`/runs/${run.id}/metrics/${encodeURIComponent(k)}?max_points=2000`)));
      seriesChart(box, samples.map((s, i) => ({ name: members[i], sample: s })), opts);
    }
  };
  await drawCharts();
  const drawEvents = async () => { fill(sections.events, h("h2", {}, "Events"), await eventsTimeline(run)); };
  await drawEvents();
  drawArtifacts(sections.artifacts, run).catch((e) => fill(sections.artifacts, errorBox(e)));
  drawConsole(sections.console, run).catch((e) => fill(sections.console, errorBox(e)));
  drawModels(sections.models, run).catch((e) => fill(sections.models, errorBox(e)));
  drawLineage(sections.lineage, run).catch((e) => fill(sections.lineage, errorBox(e)));

  const refresh = debounce(async () => {
    run = await api("/runs/" + encodeURIComponent(run.id));
    drawHeader();
    if (!sections.overview.querySelector(".run-notes[data-dirty]")) drawOverview(sections.overview, run);
    await drawCharts(); await drawEvents();
    drawArtifacts(sections.artifacts, run); drawConsole(sections.console, run); drawModels(sections.models, run);
  }, 700);
  leave.push(onChange((change) => {
    if (!change) return refresh();
    const p = change.payload || {};
    if (change.object_id === run.id || p.run_id === run.id) refresh();
  }));
}
// Rename, note, archive/restore and delete of a run (edits call back with the updated run; a
// deletion goes back to the runs table). Writers and admins see them; the API refuses a writer
// another's run, naming its owner.
function runActions(run, changed) {
  if (!may("writer")) return null;
  const message = h("span", { class: "message", id: "run-message" });
  const fail = (err) => fill(message, h("span", { class: "error" }, err.message));
  const call = async (path, method, body) => {
    try { const r = await api(`/runs/${encodeURIComponent(run.id)}${path}`, { method, body }); fill(message, ); return r; }
    catch (err) { fail(err); return null; }
  };
  const rename = async () => {
    const name = prompt("New name for this run", run.name || "");
    if (name === null) return;
    changed(await call("", "PATCH", { name }));
  };
  const archive = async () => {
    if (!run.archived_at && !confirm("Archive this run (and its child runs)? It disappears from the runs table until restored.")) return;
    changed(await call(run.archived_at ? "/restore" : "/archive", "POST", {}));
  };
  const remove = async () => {
    if (!confirm(`Delete run ${run.name || short(run.id)}, its child runs, artifacts and models, for good? This cannot be undone.`)) return;
    const r = await call("", "DELETE");
    if (r) setHash("/runs", { experiment: run.experiment_id });
  };
  return h("div", { class: "actions run-actions" },
    h("button", { id: "rename-run", onclick: rename }, "Rename"),
    h("button", { id: "archive-run", onclick: archive }, run.archived_at ? "Restore" : "Archive"),
    h("button", { id: "delete-run", class: "danger", onclick: remove }, "Delete"), message);
}
// Tags (set, change, remove) and the note of a run, editable whatever its state.
const notesSaved = new Map(); // run id -> when its tags and note were saved (the overview is redrawn by live updates)
function runNotes(run, changed) {
  const editable = may("writer"); // a reader sees them, read-only
  const message = h("span", { class: "message", id: "tags-message" }, Date.now() - (notesSaved.get(run.id) || 0) < 5000 ? "saved" : "");
  const rows = h("tbody", {});
  const addRow = (k = "", v = "") => rows.append(h("tr", {}, h("td", {}, h("input", { class: "tag-key", value: k, dataset: { original: k }, disabled: !editable })),
    h("td", {}, h("input", { class: "tag-value", value: v, disabled: !editable })), h("td", {}, editable ? h("button", { class: "link", title: "remove", onclick: (e) => e.target.closest("tr").remove() }, "×") : null)));
  Object.entries(run.tags || {}).sort().forEach(([k, v]) => addRow(k, v));
  const note = h("textarea", { id: "run-note", rows: 3, placeholder: "what this run was for, what came out of it", disabled: !editable }, run.note || "");
  const save = async () => {
    const tags = {};
    for (const k of Object.keys(run.tags || {})) tags[k] = null; // removed unless still listed
    rows.querySelectorAll("tr").forEach((tr) => { const k = tr.querySelector(".tag-key").value.trim(); if (k) tags[k] = tr.querySelector(".tag-value").value; });
    try {
      const r = await api(`/runs/${encodeURIComponent(run.id)}`, { method: "PATCH", body: { tags, note: note.value } });
      notesSaved.set(run.id, Date.now()); fill(message, "saved"); changed(r);
    } catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  // Edits in progress are not redrawn away by live updates (see runPage's refresh).
  const box = h("div", { class: "run-notes", oninput: () => { box.dataset.dirty = "1"; } }, h("h2", {}, "Tags"),
    h("table", { class: "grid small", id: "tags" }, rows),
    editable ? h("button", { onclick: () => { box.dataset.dirty = "1"; addRow(); } }, "+ tag") : null, h("h2", {}, "Note"), note,
    editable ? h("div", { class: "actions" }, h("button", { id: "save-run", onclick: save }, "Save tags and note"), message) : null);
  return box;
}
function failureBox(run) {
  if (!run.failure && !["failed", "killed"].includes(run.status)) return null;
  const f = run.failure;
  if (!f) return h("div", { class: "failure" }, h("strong", {}, `This run ${run.status}.`), " No reason was recorded.");
  if (typeof f === "string") return h("div", { class: "failure" }, h("strong", {}, "Failure: "), f);
  return h("div", { class: "failure" }, h("strong", {}, (f.type || f.exception_type || "failure") + ": "), f.message || "",
    f.traceback ? h("details", {}, h("summary", {}, "traceback"), h("pre", {}, f.traceback)) : null);
}
function kvTable(obj, id) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "grid small", id }, h("tbody", {}, keys.map((k) => h("tr", {}, h("th", {}, k), h("td", { class: "value" }, fmt(obj[k]))))));
}
function paramsBlock(params) {
  // A Trainer's or a boosting library's full settings run to hundreds of params: past a screenful
  // they get a filter box and a scrolling table instead of a page of their own.
  const table = kvTable(params, "params");
  const count = Object.keys(params || {}).length;
  if (count <= 25) return table;
  const search = h("input", { type: "search", id: "params-filter", placeholder: `filter ${count} params`, spellcheck: "false" });
  search.addEventListener("input", () => {
    const needle = search.value.trim().toLowerCase();
    for (const tr of table.querySelectorAll("tr")) tr.hidden = Boolean(needle) && !tr.textContent.toLowerCase().includes(needle);
  });
  return h("div", { class: "params-block" }, search, h("div", { class: "scroll-box" }, table));
}
function drawOverview(el, run) {
  const env = run.env || {};
  const git = env.git || {};
  const packages = env.packages || {};
  fill(el, h("div", { class: "columns3" },
    h("div", {}, h("h2", {}, "Params"), paramsBlock(run.params)),
    runNotes(run, (updated) => { if (updated) drawOverview(el, { ...run, ...updated }); }),
    h("div", {}, h("h2", {}, "Environment"), h("table", { class: "grid small", id: "env" }, h("tbody", {},
      h("tr", {}, h("th", {}, "python"), h("td", {}, env.python || "")),
      h("tr", {}, h("th", {}, "platform"), h("td", {}, env.platform || "")),
      h("tr", {}, h("th", {}, "git"), h("td", { class: "mono" }, git.commit ? git.commit.slice(0, 12) + (git.dirty ? " (dirty)" : "") + (git.branch ? " " + git.branch : "") : "")),
      h("tr", {}, h("th", {}, "argv"), h("td", { class: "mono" }, Array.isArray(env.argv) ? env.argv.join(" ") : fmt(env.argv))))),
      Object.keys(packages).length ? h("details", {}, h("summary", {}, Object.keys(packages).length + " packages"),
        kvTable(packages, "packages")) : null)));
}
async function eventsTimeline(run) {
  const { events } = await api(`/runs/${run.id}/events`);
  if (!events.length) return h("p", { class: "muted" }, "No events yet.");
  const t0 = run.start_time;
  const names = [...new Set(events.map((e) => e.name))];
  const totals = new Map();
  for (const e of events) {
    const t = totals.get(e.name) || { count: 0, total: 0, bytes: 0 };
    t.count++; t.total += e.duration_s || 0; t.bytes += typeof e.attrs.bytes === "number" ? e.attrs.bytes : 0;
    totals.set(e.name, t);
  }
  const runTime = Math.max(run.duration_s || 0, ...events.map((e) => e.timestamp + (e.duration_s || 0) - t0));
  const box = h("div", { class: "chart timeline", id: "timeline" });
  const summary = h("table", { class: "grid small", id: "event-summary" },
    h("thead", {}, h("tr", {}, ["event", "count", "total time", "share of run", "mean", "bytes"].map((c) => h("th", {}, c)))),
    h("tbody", {}, names.map((n) => { const t = totals.get(n); return h("tr", {}, h("td", {}, n), h("td", { class: "num" }, t.count),
      h("td", { class: "num" }, dur(t.total)), h("td", { class: "num" }, runTime > 0 ? (100 * t.total / runTime).toFixed(1) + "%" : ""),
      h("td", { class: "num" }, dur(t.total / t.count)), h("td", { class: "num" }, t.bytes ? size(t.bytes) : "")); })));
  const wrap = h("div", {}, box, summary);
  requestAnimationFrame(() => {
    const data = events.map((e) => ({
      name: e.name, value: [names.indexOf(e.name), e.timestamp - t0, e.timestamp - t0 + (e.duration_s || 0), e.duration_s || 0,
        e.attrs.bytes || 0, e.attrs.epoch !== undefined ? e.attrs.epoch : ""],
    }));
    const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
    chart(box, {
      animation: false, grid: { left: 130, right: 20, top: 10, bottom: 40 },
      tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => {
        const v = p.value; let s = `${p.name}\nstart ${v[1].toFixed(3)} s\nduration ${dur(v[3]) || "instant"}`;
        if (v[4]) s += `\nsize ${size(v[4])}`; if (v[5] !== "") s += `\nepoch ${v[5]}`; return s; } },
      xAxis: { type: "value", name: "seconds since start", nameLocation: "middle", nameGap: 26, min: 0 },
      yAxis: { type: "category", data: names },
      dataZoom: [{ type: "inside", filterMode: "weakFilter" }],
      series: [{ type: "custom", encode: { x: [1, 2], y: 0 }, data, renderItem: (params, api) => {
        const cat = api.value(0); const start = api.coord([api.value(1), cat]); const end = api.coord([api.value(2), cat]);
        const height = api.size([0, 1])[1] * 0.6;
        return { type: "rect", shape: { x: start[0], y: start[1] - height / 2, width: Math.max(2, end[0] - start[0]), height },
          style: { fill: palette[cat % palette.length], stroke: "#fff", lineWidth: 1 } };
      } }],
    });
  });
  return wrap;
}
async function drawArtifacts(el, run) {
  const { artifacts } = await api(`/runs/${run.id}/artifacts`);
  const preview = h("div", { class: "preview", id: "preview" });
  const show = async (a) => {
    const type = a.name.split(".").pop().toLowerCase();
    const dl = h("a", { href: a.content_url + "?download=1" }, "download " + a.name);
    if (["png", "jpg", "jpeg", "gif", "webp", "svg"].includes(type)) {
      fill(preview, h("img", { src: a.content_url, alt: a.name }), dl);
    } else if (["txt", "log", "json", "csv", "yaml", "yml", "md", "py", "html", "htm", "xml", "tsv", "ini", "cfg", "toml"].includes(type) || a.kind === "console") {
      const r = await fetch(a.content_url + "?head=262144", { credentials: "same-origin" });
      let text = await r.text();
      if (type === "json") { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* shown as is */ } }
      fill(preview, h("pre", { class: "text" }, text), dl);
    } else fill(preview, h("p", { class: "muted" }, "No preview for this type. "), dl);
  };
  fill(el, h("h2", {}, "Artifacts"), artifacts.length ? h("table", { class: "grid small", id: "artifact-list" },
    h("thead", {}, h("tr", {}, ["name", "kind", "size", "sha256", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, artifacts.map((a) => h("tr", {}, h("td", {}, a.name), h("td", {}, a.kind), h("td", { class: "num" }, size(a.bytes)),
      h("td", { class: "mono muted" }, (a.sha256 || "").slice(0, 12)),
      h("td", {}, a.bytes === null ? "" : h("button", { class: "link", onclick: () => show(a) }, "preview"), " ",
        a.bytes === null ? "" : h("a", { href: a.content_url + "?download=1" }, "download")))))) : h("p", { class: "muted" }, "none"), preview);
}
async function drawConsole(el, run) {
  const c = await api(`/runs/${run.id}/console`);
  fill(el, h("h2", {}, "Console"), c.text === null ? h("p", { class: "muted" }, "No console captured.") :
    h("div", {}, c.truncated ? h("p", { class: "muted" }, `last ${size(c.text.length)} of ${size(c.bytes)} — `, h("a", { href: c.content_url + "?download=1" }, "download all")) : null,
      h("pre", { class: "console", id: "console-text" }, c.text)));
}
function modelsTable(models, id) {
  return h("table", { class: "grid small", id }, h("thead", {}, h("tr", {}, ["name", "version", "aliases", "framework", "status", "labels", "created"].map((c) => h("th", {}, c)))),
    h("tbody", {}, models.map((m) => h("tr", {}, h("td", {}, h("a", { href: "#/model/" + m.id }, m.name)), h("td", { class: "num" }, "v" + m.version),
      h("td", {}, (m.aliases || []).map((a) => h("span", { class: "alias" }, "@" + a))),
      h("td", {}, m.framework), h("td", {}, h("span", { class: "status " + m.status }, m.status)),
      h("td", {}, Object.entries(m.labels).map(([k, v]) => h("span", { class: "label" }, k + "=" + v))), h("td", {}, when(m.created_at))))));
}
async function drawModels(el, run) {
  const { models } = await api(`/runs/${run.id}/models`);
  fill(el, h("h2", {}, "Models"), models.length ? modelsTable(models, "run-models") : h("p", { class: "muted" }, "none"));
}
async function drawLineage(el, run) {
  const lin = await api(`/runs/${run.id}/lineage`);
  const col = (title, items) => h("div", { class: "lineage-col" }, h("h3", {}, title), items.length ? items : h("p", { class: "muted" }, "—"));
  const consumers = lin.models.flatMap((m) => m.consumers.map((c) => h("div", { class: "node" }, runLink(c), h("span", { class: "muted" }, " loaded " + m.name))));
  fill(el, h("h2", {}, "Lineage"), h("div", { class: "lineage" },
    col("inputs", lin.inputs.map((i) => h("div", { class: "node" }, h("span", { class: "tag" }, i.kind), " ", i.ref))),
    h("div", { class: "arrow" }, "→"), col("this run", [h("div", { class: "node self" }, run.name || short(run.id)),
      lin.parent ? h("div", { class: "node" }, "child of ", h("a", { href: "#/run/" + lin.parent.id }, lin.parent.name || short(lin.parent.id))) : null].filter(Boolean)),
    h("div", { class: "arrow" }, "→"), col("models", lin.models.map((m) => h("div", { class: "node" }, h("a", { href: "#/model/" + m.id }, `${m.name} v${m.version}`)))),
    h("div", { class: "arrow" }, "→"), col("runs that loaded them", consumers)));
}

// ------------------------------------------------------------------ compare
async function comparePage(params) {
  const ids = (params.get("ids") || "").split(",").filter(Boolean).slice(0, 50);
  if (ids.length < 1) return mount(h("p", {}, "Select runs in a runs table to compare them."));
  const runs = await Promise.all(ids.map((id) => api("/runs/" + encodeURIComponent(id))));
  const opts = { axis: "step", smoothing: 0, log: false };
  const label = (r) => (r.name || short(r.id)) + " · " + short(r.id);
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const multi = metricKeys.filter((k) => runs.some((r) => r.metrics[k] && r.metrics[k].count > 1));
  const grid = h("div", { class: "chart-grid", id: "compare-charts" });
  const draw = async () => {
    disposeCharts(); fill(grid, );
    for (const key of multi) {
      const box = h("div", { class: "chart", dataset: { metric: key } });
      grid.append(h("figure", {}, h("figcaption", {}, key), box));
      const having = runs.filter((r) => r.metrics[key]);
      const samples = await Promise.all(having.map((r) => api(`/runs/${r.id}/metrics/${encodeURIComponent(key)}?max_points=2000`)));
      seriesChart(box, samples.map((s, i) => ({ name: label(having[i]), sample: s })), opts);
    }
    drawParallel();
  };
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const differs = (k) => new Set(runs.map((r) => JSON.stringify(r.params[k]))).size > 1;
  let onlyDiff = false;
  const paramTable = h("div", {});
  const drawParams = () => fill(paramTable, h("table", { class: "grid small", id: "params-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "param"), runs.map((r) => h("th", {}, runLink(r))))),
    h("tbody", {}, paramKeys.filter((k) => !onlyDiff || differs(k)).map((k) => h("tr", { class: differs(k) ? "differs" : "" },
      h("th", {}, k), runs.map((r) => h("td", { class: "value" }, k in r.params ? fmt(r.params[k]) : "—")))))));
  drawParams();
  const metricTable = h("table", { class: "grid small", id: "metrics-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "metric (latest)"), runs.map((r) => h("th", {}, runLink(r))))),
    h("tbody", {}, metricKeys.map((k) => h("tr", {}, h("th", {}, k), runs.map((r) => h("td", { class: "num" }, r.metrics[k] ? fmt(r.metrics[k].last) : "—"))))));
  const numericish = paramKeys.filter(differs);
  const pcParams = h("select", { multiple: true, size: Math.min(6, Math.max(2, paramKeys.length)), id: "pc-params", "aria-label": "params" },
    paramKeys.map((k) => h("option", { value: k, selected: numericish.slice(0, 6).includes(k) }, k)));
  const pcMetric = h("select", { id: "pc-metric", "aria-label": "metric" }, metricKeys.map((k) => h("option", { value: k }, k)));
  const pcBox = h("div", { class: "chart tall", id: "parallel" });
  let pcChart = null;
  const drawParallel = () => {
    if (pcChart) { pcChart.dispose(); charts.delete(pcChart); }
    const chosen = [...pcParams.selectedOptions].map((o) => o.value);
    const metric = pcMetric.value;
    const dims = [...chosen.map((k) => ({ key: k, get: (r) => r.params[k] })), ...(metric ? [{ key: metric, get: (r) => r.metrics[metric] ? num(r.metrics[metric].last) : null }] : [])];
    if (!dims.length) return;
    const axes = dims.map((d, i) => {
      const values = runs.map(d.get).filter((v) => v !== undefined && v !== null);
      const numeric = values.every((v) => typeof v === "number" && Number.isFinite(v));
      return numeric ? { dim: i, name: d.key, type: "value", scale: true } :
        { dim: i, name: d.key, type: "category", data: [...new Set(values.map(fmt))] };
    });
    const data = runs.map((r) => ({ name: label(r), value: dims.map((d, i) => { const v = d.get(r); return axes[i].type === "category" ? fmt(v) : (Number.isFinite(v) ? v : null); }) }));
    pcChart = chart(pcBox, { animation: false, parallelAxis: axes, parallel: { left: 60, right: 80, top: 40, bottom: 30 },
      tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => p.name },
      visualMap: metric && axes[axes.length - 1].type === "value" ? { show: false, dimension: dims.length - 1, min: Math.min(...data.map((d) => d.value[dims.length - 1]).filter(Number.isFinite)),
        max: Math.max(...data.map((d) => d.value[dims.length - 1]).filter(Number.isFinite)), inRange: { color: ["#d94e5d", "#eac736", "#50a3ba"] } } : undefined,
      series: [{ type: "parallel", lineStyle: { width: 2, opacity: 0.8 }, data }] });
  };
  pcParams.addEventListener("change", drawParallel); pcMetric.addEventListener("change", drawParallel);
  mount(h("h1", {}, `Compare ${runs.length} runs`),
    h("div", { class: "chart-controls" },
      h("label", {}, "x axis ", h("select", { onchange: (e) => { opts.axis = e.target.value; draw(); } }, ["step", "epoch", "time"].map((a) => h("option", { value: a }, a === "time" ? "wall time" : a)))),
      h("label", {}, "smoothing ", h("input", { type: "range", min: 0, max: 0.98, step: 0.02, value: 0, onchange: (e) => { opts.smoothing = +e.target.value; draw(); } })),
      h("label", {}, h("input", { type: "checkbox", onchange: (e) => { opts.log = e.target.checked; draw(); } }), " log scale")),
    grid, h("h2", {}, "Metrics"), metricTable, h("h2", {}, "Params"), h("label", {}, h("input", { type: "checkbox", onchange: (e) => { onlyDiff = e.target.checked; drawParams(); } }), " only what differs"),
    paramTable, h("h2", {}, "Parallel coordinates"), h("div", { class: "pickers" }, h("label", { class: "pick" }, "params", pcParams), h("label", { class: "pick" }, "metric", pcMetric)), pcBox);
  await draw();
}

// ------------------------------------------------------------------ models
async function modelsPage(params) {
  const name = params.get("name") || "";
  const { models } = await api("/models?" + q({ name }));
  const input = h("input", { type: "search", value: name, placeholder: "model name", onkeydown: (e) => { if (e.key === "Enter") setHash("/models", { name: e.target.value }); } });
  mount(h("h1", {}, "Models"), h("div", { class: "toolbar" }, input), models.length ? modelsTable(models, "models-table") : h("p", { class: "muted" }, "No models."));
}
async function modelPage(params, modelId) {
  const m = await api("/models/" + encodeURIComponent(modelId));
  const final = m.status === "final";
  // Writers change (and delete) models, the API refusing them another's; aliases and finalizing are for admins.
  const mayChange = may("writer");
  const locked = final || !mayChange;
  const message = h("div", { class: "message", id: "model-message" });
  const metadata = h("textarea", { id: "metadata", rows: 8, spellcheck: "false", disabled: locked }, JSON.stringify(m.metadata, null, 2));
  const labelRows = h("tbody", {});
  const addLabel = (k = "", v = "") => labelRows.append(h("tr", {}, h("td", {}, h("input", { class: "label-key", value: k, disabled: locked })),
    h("td", {}, h("input", { class: "label-value", value: v, disabled: locked }))));
  Object.entries(m.labels).forEach(([k, v]) => addLabel(k, v));
  const save = async () => {
    let meta;
    try { meta = JSON.parse(metadata.value || "{}"); } catch (e) { fill(message, h("span", { class: "error" }, "metadata is not valid JSON: " + e.message)); return; }
    const labels = {};
    for (const k of Object.keys(m.labels)) labels[k] = null; // a label whose key was cleared is removed
    labelRows.querySelectorAll("tr").forEach((tr) => { const k = tr.querySelector(".label-key").value.trim(); if (k) labels[k] = tr.querySelector(".label-value").value; });
    try { await api("/models/" + m.id, { method: "PATCH", body: { metadata: meta, labels } }); fill(message, "saved"); route(); }
    catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const finalize = async () => {
    if (!confirm(`Finalize ${m.name} v${m.version}? A final model can never change again.`)) return;
    try { await api(`/models/${m.id}/finalize`, { method: "POST", body: {} }); route(); }
    catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const copy = h("button", { class: "link", onclick: async () => { try { await navigator.clipboard.writeText(m.url); copy.textContent = "copied"; } catch (e) { copy.textContent = "select and copy"; } } }, "copy");
  const aliasName = h("input", { id: "alias-name", placeholder: "alias, e.g. production", size: 18 });
  const setAlias = async () => {
    const alias = aliasName.value.trim();
    if (!alias) return;
    try { await api(`/models/${encodeURIComponent(m.name)}/aliases/${encodeURIComponent(alias)}`, { method: "PUT", body: { version: m.version } }); route(); }
    catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const dropAlias = async (alias) => {
    if (!confirm(`Remove ${m.name}@${alias}? Services asking for it will no longer find a model.`)) return;
    try { await api(`/models/${encodeURIComponent(m.name)}/aliases/${encodeURIComponent(alias)}`, { method: "DELETE" }); route(); }
    catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const deleteModel = async () => {
    if (!confirm(`Delete ${m.name} v${m.version} and its files? This cannot be undone.`)) return;
    try { await api(`/models/${m.id}`, { method: "DELETE" }); setHash("/models", { name: m.name }); }
    catch (err) { fill(message, h("span", { class: "error" }, err.message)); }
  };
  const aliasBox = h("div", { class: "aliases", id: "aliases" },
    m.aliases.length ? m.aliases.map((a) => h("span", { class: "alias", dataset: { alias: a } }, `${m.name}@${a}`, " ",
      may("admin") ? h("button", { class: "link", title: "remove this alias", onclick: () => dropAlias(a) }, "×") : null)) : h("span", { class: "muted" }, "no alias points here"),
    may("admin") ? h("span", { class: "set-alias" }, aliasName, h("button", { id: "set-alias", onclick: setAlias }, "point alias here")) : null);
  mount(h("h1", {}, `${m.name} v${m.version} `, h("span", { class: "status " + m.status, id: "model-status" }, m.status)),
    h("div", { class: "meta" }, h("span", {}, "framework " + m.framework), m.run_id ? h("span", {}, "run ", h("a", { href: "#/run/" + m.run_id }, short(m.run_id))) : null,
      h("span", {}, "created " + when(m.created_at))),
    h("div", { class: "url" }, h("code", { id: "model-url" }, m.url), " ", copy),
    h("h2", {}, "Aliases"), aliasBox,
    m.source_uri ? h("p", { class: "reference" }, "Registered by reference: ", h("code", { id: "source-uri" }, m.source_uri)) : null,
    final ? h("p", { class: "final-note" }, "This model is final: its files, metadata and labels can no longer change. Log a new version instead.") : null,
    h("h2", {}, "Files"), h("table", { class: "grid small", id: "model-files" }, h("thead", {}, h("tr", {}, ["name", "size", "sha256", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, m.files.map((f) => h("tr", {}, h("td", {}, f.name), h("td", { class: "num" }, size(f.bytes)), h("td", { class: "mono muted" }, (f.sha256 || "").slice(0, 12)),
        h("td", {}, f.bytes === null ? "" : h("a", { href: f.download_url }, "download")))))),
    h("h2", {}, "Labels"), h("table", { class: "grid small", id: "labels" }, h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "value"))), labelRows),
    locked ? null : h("button", { onclick: () => addLabel() }, "+ label"),
    h("h2", {}, "Metadata"), metadata,
    final || !mayChange ? null : h("div", { class: "actions" }, h("button", { id: "save-model", onclick: save }, "Save"), may("admin") ? h("button", { id: "finalize", class: "danger", onclick: finalize }, "Finalize") : null),
    final || m.aliases.length || !mayChange ? null : h("div", { class: "actions" }, h("button", { id: "delete-model", class: "danger", onclick: deleteModel }, "Delete this version")),
    message,
    h("h2", {}, "Lineage"), h("div", { class: "lineage" },
      h("div", { class: "lineage-col" }, h("h3", {}, "datasets"), m.datasets.length ? m.datasets.map((d) => h("div", { class: "node" }, d)) : h("p", { class: "muted" }, "—")),
      h("div", { class: "arrow" }, "→"), h("div", { class: "lineage-col" }, h("h3", {}, "run"), m.run_id ? h("div", { class: "node" }, h("a", { href: "#/run/" + m.run_id }, short(m.run_id))) : h("p", { class: "muted" }, "—")),
      h("div", { class: "arrow" }, "→"), h("div", { class: "lineage-col" }, h("h3", {}, "this model"), h("div", { class: "node self" }, `${m.name} v${m.version}`)),
      h("div", { class: "arrow" }, "→"), h("div", { class: "lineage-col" }, h("h3", {}, "runs that loaded it"), m.consumers.length ? m.consumers.map((c) => h("div", { class: "node" }, runLink(c))) : h("p", { class: "muted" }, "—"))));
  const again = stillHere(300);
  leave.push(onChange((c) => {
    const p = (c && c.payload) || {};
    if (c && ((c.object_type === "model" && c.object_id === m.id) || (c.object_type === "alias" && (p.model_id === m.id || p.previous_model_id === m.id)))) again();
  }));
}

// ------------------------------------------------------------------ start
(async function start() {
  try {
    const s = await api("/session");
    session = { user: s.user, role: s.role || "admin" };
    if (s.login_required) document.getElementById("logout").hidden = false;
    if (s.login_required && s.user) { const who = document.getElementById("who"); who.textContent = `${s.user} (${s.role})`; who.hidden = false; }
  } catch (e) { /* the page shows the error itself */ }
  startLive();
  route();
})();

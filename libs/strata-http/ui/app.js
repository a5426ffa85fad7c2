// Strata's dashboard: a page over the public API, served from strata-api
// itself. Keys live in this tab's session storage only and travel in the
// Authorization header, never in a URL. Charts are uPlot's; everything else
// is tables, so every number on the page is also readable as text.
"use strict";

const STORE = "strata.keys";
const VIEWS = ["dau", "top", "retention", "funnel", "tiers", "runs"];
const fmt = new Intl.NumberFormat("en-US");
const $ = (id) => document.getElementById(id);

let keys = loadKeys(); // [{key, project, operator, scopes}]
let view = "dau";
let dauPlot = null;

function loadKeys() {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORE) || "[]");
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function saveKeys() {
  sessionStorage.setItem(STORE, JSON.stringify(keys));
}

// ---- API ---------------------------------------------------------------

class ApiFailure extends Error {}

// Turns a failed answer into the sentence the page shows.
async function failure(resp) {
  let body = {};
  try {
    body = await resp.json();
  } catch {
    // not JSON: the status alone says it
  }
  const detail = body.error || resp.statusText || "no detail";
  const ref = body.request_id ? ` (request ${body.request_id})` : "";
  const retry = resp.headers.get("Retry-After");
  switch (resp.status) {
    case 401:
      return `This key was not accepted (401): ${detail}. Check it, or create one with strata-api keys create.`;
    case 403:
      return `This key may not do that (403): ${detail}.`;
    case 429:
      return `Too many requests (429): ${detail}. Try again in ${retry || "a few"} seconds.`;
    case 503:
      if (Array.isArray(body.days)) {
        return `Cold days could not be read (503): ${body.days.join(", ")}. ${detail}. Try again in ${retry || "a few"} seconds.${ref}`;
      }
      return `Strata is unavailable (503): ${detail}.${retry ? ` Try again in ${retry} seconds.` : ""}${ref}`;
    default:
      return `Request failed (${resp.status}): ${detail}${body.code ? ` [${body.code}]` : ""}.${ref}`;
  }
}

async function api(path, key) {
  let resp;
  try {
    resp = await fetch(path, { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
  } catch (e) {
    throw new ApiFailure(`Strata did not answer: ${e.message}`);
  }
  if (!resp.ok) throw new ApiFailure(await failure(resp));
  return resp.json();
}

// ---- messages ------------------------------------------------------------

function showMessage(text) {
  const m = $("message");
  m.textContent = text;
  m.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

// ---- keys and projects ---------------------------------------------------

function keyLabel(k) {
  return k.operator ? "operator key" : `${k.project} (${k.scopes.join(", ")})`;
}

function renderKeys() {
  const box = $("keys");
  box.replaceChildren();
  for (const k of keys) {
    const span = document.createElement("span");
    span.className = "key-chip";
    span.textContent = keyLabel(k);
    const forget = document.createElement("button");
    forget.type = "button";
    forget.textContent = "Forget";
    forget.setAttribute("aria-label", `Forget the ${keyLabel(k)}`);
    forget.addEventListener("click", () => {
      keys = keys.filter((x) => x !== k);
      saveKeys();
      renderKeys();
      load();
    });
    span.append(" ", forget);
    box.append(span);
  }
  const select = $("project");
  const before = select.value;
  select.replaceChildren();
  for (const k of keys.filter((x) => !x.operator)) {
    const o = document.createElement("option");
    o.value = o.textContent = k.project;
    select.append(o);
  }
  if ([...select.options].some((o) => o.value === before)) select.value = before;
}

async function addKeys(text) {
  const added = [];
  for (const key of text.split(/\s+/).filter(Boolean)) {
    const who = await api("/v1/key", key); // throws on 401
    const entry = { key, project: who.project, operator: who.operator, scopes: who.scopes };
    keys = keys.filter((k) => (entry.operator ? !k.operator : k.project !== entry.project));
    keys.push(entry);
    added.push(entry);
    saveKeys(); // a later key of the same paste may be refused
    renderKeys();
  }
  const project = added.find((k) => !k.operator);
  if (project) $("project").value = project.project;
}

function projectKey() {
  const name = $("project").value;
  return keys.find((k) => !k.operator && k.project === name);
}

function operatorKey() {
  return keys.find((k) => k.operator);
}

// The key for a view: stats need the project's key; tiers and runs prefer
// an operator key (every project) and fall back to the project's.
function keyFor(v) {
  const p = projectKey();
  if (v === "tiers" || v === "runs") return operatorKey() || p;
  return p;
}

// ---- dates and tiers -------------------------------------------------------

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

function setLastDays(n) {
  const today = new Date();
  const from = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (n - 1)));
  $("to").value = isoDay(today);
  $("from").value = isoDay(from);
}

function inRanges(day, ranges) {
  return (ranges || []).some((r) => r.from <= day && day <= r.to);
}

// Which tier answered `day`: "both" (late events beside archived ones),
// "hot", "cold", or "none" (no stored day).
function tierOf(day, meta) {
  if ((meta.both_days || []).includes(day)) return "both";
  if (inRanges(day, meta.hot && meta.hot.day_ranges)) return "hot";
  if (inRanges(day, meta.cold && meta.cold.day_ranges)) return "cold";
  return "none";
}

function rangesText(ranges) {
  if (!ranges || ranges.length === 0) return "no days";
  return ranges.map((r) => (r.from === r.to ? r.from : `${r.from} – ${r.to}`)).join(", ");
}

// The line above each chart: which days each tier answered, and how.
function renderMeta(el, meta) {
  el.replaceChildren();
  const part = (cls, title, t, extra) => {
    const p = document.createElement("span");
    p.className = `tier-note ${cls}`;
    const swatch = document.createElement("span");
    swatch.className = `swatch ${cls}`;
    swatch.setAttribute("aria-hidden", "true");
    const rollups = t.rollups ? `, ${t.rollups.days} from rollups` : "";
    p.append(swatch, `${title}: ${rangesText(t.day_ranges)} (${t.days} days${rollups}${extra}; ${t.ms} ms)`);
    el.append(p);
  };
  part("hot", "Hot (PostgreSQL)", meta.hot, `, ${fmt.format(meta.hot.rows)} rows read`);
  part("cold", "Cold (Parquet)", meta.cold, `, ${fmt.format(meta.cold.files)} files read`);
  const both = document.createElement("span");
  both.className = "tier-note both";
  both.textContent = meta.both_days.length
    ? `In both tiers (late events merged): ${meta.both_days.join(", ")}`
    : "No day in both tiers";
  el.append(both, ` · answered in ${meta.ms} ms`);
}

// ---- views -------------------------------------------------------------------

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) u.set(k, v);
  return u.toString();
}

function range() {
  return { from: $("from").value, to: $("to").value };
}

// `group_by` for a view's property input (empty: no breakdown).
function groupBy(id) {
  const k = $(id).value.trim();
  return k ? `property:${k}` : "";
}

// A breakdown group's label.
function groupLabel(g) {
  if (g.kind === "missing") return "(no value)";
  if (g.kind === "other") return `other (${fmt.format(g.values)} values)`;
  return g.value;
}

function fetchDau(key) {
  const q = qs({ ...range(), event_type: $("dau-event").value.trim(), group_by: groupBy("dau-group") });
  return api(`/v1/stats/dau?${q}`, key);
}

/** A header row of column headers, one per text. */
function headRow(texts) {
  const head = document.createElement("tr");
  for (const t of texts) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t;
    head.append(th);
  }
  return head;
}

function renderDau(r) {
  renderMeta($("dau-meta"), r.meta);
  const table = $("dau-table");
  const groups = r.groups || [];
  table.tHead.replaceChildren(headRow(["Day", "Users", "Tier", ...groups.map(groupLabel)]));
  const body = table.tBodies[0];
  body.replaceChildren();
  const xs = [], hot = [], cold = [], none = [];
  r.days.forEach((d, i) => {
    const tier = tierOf(d.date, r.meta);
    const tr = document.createElement("tr");
    cell(tr, d.date);
    cell(tr, fmt.format(d.users), "num");
    cell(tr, tier, `tier ${tier}`);
    for (const g of groups) cell(tr, fmt.format(g.days[i].users), "num group");
    body.append(tr);
    xs.push(Date.parse(`${d.date}T00:00:00Z`) / 1000);
    const isHot = tier === "hot" || tier === "both";
    const isCold = tier === "cold" || tier === "both";
    hot.push(isHot ? d.users : null);
    cold.push(isCold ? d.users : null);
    none.push(tier === "none" ? d.users : null);
    // Join the two lines where the tiers meet.
    if (i > 0 && isHot && cold[i - 1] != null && hot[i - 1] == null) hot[i - 1] = cold[i - 1];
  });
  if (groups.length) {
    // One line per group; the table above says which tier held each day.
    const series = groups.map((g, i) => ({
      label: groupLabel(g),
      stroke: PALETTE[i % PALETTE.length],
      width: 2,
      points: { show: true, size: 4 },
    }));
    drawDau(xs, series, groups.map((g) => g.days.map((d) => d.users)));
  } else {
    drawDau(xs, TIER_SERIES, [cold, hot, none]);
  }
}

const TIER_SERIES = [
  { label: "Cold (Parquet)", stroke: "#1d4ed8", width: 2, points: { show: true, size: 4 } },
  { label: "Hot (PostgreSQL)", stroke: "#c2410c", width: 2, points: { show: true, size: 4 } },
  { label: "No stored day", stroke: "#6b7280", width: 0, points: { show: true, size: 5 } },
];
const PALETTE = ["#1d4ed8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#4d7c0f", "#374151"];

function drawDau(xs, series, ys) {
  const box = $("dau-chart");
  if (dauPlot) dauPlot.destroy();
  box.replaceChildren();
  if (typeof uPlot === "undefined") return;
  dauPlot = new uPlot(
    {
      width: Math.max(box.clientWidth, 320),
      height: 280,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      series: [{ label: "Day" }, ...series],
      axes: [{}, { label: "users" }],
    },
    [xs, ...ys],
    box,
  );
}

function fetchTop(key) {
  const q = qs({ ...range(), limit: $("top-limit").value, group_by: groupBy("top-group") });
  return api(`/v1/stats/top-events?${q}`, key);
}

function barCell(tr, share) {
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = `${100 * share}%`;
  cell(tr, "", "bar-col").append(bar);
}

function renderTop(r) {
  renderMeta($("top-meta"), r.meta);
  const body = $("top-table").tBodies[0];
  body.replaceChildren();
  const max = Math.max(1, ...r.events.map((e) => e.count));
  for (const e of r.events) {
    const tr = document.createElement("tr");
    cell(tr, e.event_type);
    cell(tr, fmt.format(e.count), "num");
    cell(tr, fmt.format(e.users), "num");
    barCell(tr, e.count / max);
    body.append(tr);
  }
  if (r.events.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "No events in this range").colSpan = 4;
    body.append(tr);
  }
  const groups = $("top-groups");
  groups.hidden = !r.groups;
  const gbody = groups.tBodies[0];
  gbody.replaceChildren();
  for (const g of r.groups || []) {
    g.events.forEach((e, i) => {
      const tr = document.createElement("tr");
      tr.dataset.group = g.kind === "value" ? g.value : g.kind;
      if (i === 0) {
        const th = document.createElement("th");
        th.scope = "rowgroup";
        th.rowSpan = g.events.length;
        th.textContent = `${groupLabel(g)} (${fmt.format(g.total)} events)`;
        tr.append(th);
      }
      cell(tr, e.event_type);
      cell(tr, fmt.format(e.count), "num");
      cell(tr, fmt.format(e.users), "num");
      barCell(tr, e.count / max);
      gbody.append(tr);
    });
  }
}

function fetchFunnel(key) {
  const steps = $("funnel-steps").value.replace(/\s+/g, "");
  if (!steps) throw new ApiFailure("Name the funnel's steps: event types separated by commas, e.g. signup,activate,purchase.");
  // No window: the server's default (a day). Out of bounds: said here, not sent.
  const raw = $("funnel-window").value.trim();
  const window = raw === "" ? "" : Math.round(Number(raw) * Number($("funnel-unit").value));
  if (window !== "" && !(window >= 60 && window <= 7776000)) {
    throw new ApiFailure("The window must be from 1 minute to 90 days.");
  }
  const q = qs({ ...range(), steps, window, group_by: groupBy("funnel-group") });
  return api(`/v1/stats/funnel?${q}`, key);
}

function pct(x) {
  return x == null ? "–" : `${(100 * x).toFixed(1)}%`;
}

function renderFunnel(r) {
  renderMeta($("funnel-meta"), r.meta);
  const body = $("funnel-table").tBodies[0];
  body.replaceChildren();
  const first = Math.max(1, r.steps[0].users);
  r.steps.forEach((s, i) => {
    const tr = document.createElement("tr");
    cell(tr, String(i + 1), "num");
    cell(tr, s.event_type);
    cell(tr, fmt.format(s.users), "num");
    cell(tr, pct(s.conversion_from_previous), "num");
    cell(tr, pct(s.conversion_from_first), "num");
    barCell(tr, s.users / first);
    body.append(tr);
  });
  const table = $("funnel-groups");
  table.hidden = !r.groups;
  table.tHead.replaceChildren(headRow(["Group", ...r.steps.map((s, i) => `${i + 1}. ${s.event_type}`)]));
  const gbody = table.tBodies[0];
  gbody.replaceChildren();
  for (const g of r.groups || []) {
    const tr = document.createElement("tr");
    tr.dataset.group = g.kind === "value" ? g.value : g.kind;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = groupLabel(g);
    tr.append(th);
    g.steps.forEach((s, i) => cell(tr, i === 0 ? fmt.format(s.users) : `${fmt.format(s.users)} (${pct(s.conversion_from_first)})`, "num"));
    gbody.append(tr);
  }
}

function fetchRetention(key) {
  const q = qs({
    ...range(),
    period: $("ret-period").value,
    periods: $("ret-periods").value,
    start_event: $("ret-start").value.trim(),
    return_event: $("ret-return").value.trim(),
  });
  return api(`/v1/stats/retention?${q}`, key);
}

function renderRetention(r) {
  const period = r.period;
  renderMeta($("ret-meta"), r.meta);
  const table = $("ret-table");
  const periods = Array.from({ length: r.periods }, (_, k) => `${period === "week" ? "Week" : "Day"} ${k}`);
  table.tHead.replaceChildren(headRow(["Cohort", "Size", ...periods]));
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const c of r.cohorts) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = c.cohort;
    tr.append(th);
    cell(tr, fmt.format(c.size), "num");
    for (let k = 0; k < r.periods; k++) {
      if (k >= c.retained.length) {
        cell(tr, "", "future").title = "this period has not started";
        continue;
      }
      const n = c.retained[k];
      const pct = c.size > 0 ? (100 * n) / c.size : 0;
      const td = cell(tr, "", "num shade");
      const p = document.createElement("span");
      p.className = "pct";
      p.textContent = c.size > 0 ? `${pct.toFixed(1)}%` : "–";
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = fmt.format(n);
      td.append(p, count);
      td.style.backgroundColor = `rgba(29, 78, 216, ${Math.min(1, pct / 100).toFixed(3)})`;
      if (pct >= 50) td.classList.add("dark");
    }
    body.append(tr);
  }
}

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

function duration(s) {
  if (s <= 0) return null;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  return h > 0 ? `${h} h ${m} min` : `${m} min ${Math.floor(s % 60)} s`;
}

function fetchTiers(key) {
  return api("/v1/admin/tiers", key);
}

function renderTiers(r) {
  const lag = duration(r.archive_lag_seconds);
  $("tiers-lag").textContent = lag
    ? `Archive lag: the oldest hot day is ${lag} past the hot retention; the next archive run moves it.`
    : "Archive lag: none; every hot day is within the hot retention.";
  const body = $("tiers-table").tBodies[0];
  body.replaceChildren();
  const max = Math.max(1, ...r.projects.flatMap((p) => [p.hot.bytes, p.cold.bytes]));
  for (const p of r.projects) {
    for (const tier of ["hot", "cold"]) {
      const t = p[tier];
      const tr = document.createElement("tr");
      tr.dataset.project = p.project;
      tr.dataset.tier = tier;
      const roll = tier === "hot" ? p.hot_rollups : p.rollups;
      cell(tr, p.project);
      cell(tr, tier === "hot" ? "hot (PostgreSQL)" : "cold (Parquet)", `tier ${tier}`);
      cell(tr, fmt.format(t.days), "num");
      cell(tr, fmt.format(t.rows), "num");
      cell(tr, bytes(t.bytes), "num");
      cell(tr, t.bytes_per_event == null ? "–" : t.bytes_per_event.toFixed(1), "num");
      cell(tr, tier === "cold" ? fmt.format(p.cold_files) : "–", "num");
      cell(tr, tier === "cold" ? fmt.format(p.cold_files_per_day.max) : "–", "num");
      cell(tr, fmt.format(roll.days), "num");
      cell(tr, bytes(roll.bytes), "num");
      const bar = document.createElement("span");
      bar.className = `bar ${tier}`;
      bar.style.width = `${(100 * t.bytes) / max}%`;
      cell(tr, "", "bar-col").append(bar);
      body.append(tr);
    }
  }
}

function fetchRuns(key) {
  return api("/v1/admin/archive/runs?limit=20", key);
}

function renderRuns(r) {
  const body = $("runs-table").tBodies[0];
  body.replaceChildren();
  for (const run of r.runs) {
    const tr = document.createElement("tr");
    tr.dataset.run = run.id;
    cell(tr, String(run.id), "num");
    cell(tr, run.started_at.replace("T", " ").slice(0, 19));
    cell(tr, run.status, `status ${run.status}`);
    cell(tr, fmt.format(run.chunks_moved), "num");
    cell(tr, fmt.format(run.chunks_failed), "num");
    cell(tr, fmt.format(run.rows_moved), "num");
    cell(tr, bytes(run.bytes_written), "num");
    cell(tr, fmt.format(run.expired_rows), "num");
    cell(tr, fmt.format(run.compacted_days), "num");
    const err = cell(tr, run.error || "");
    if (run.chunks.length) {
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.textContent = `${run.chunks.length} chunk${run.chunks.length === 1 ? "" : "s"}`;
      const ul = document.createElement("ul");
      for (const c of run.chunks) {
        const li = document.createElement("li");
        li.textContent = `${c.day}: ${c.status}, ${fmt.format(c.rows)} rows, ${c.files} files, ${bytes(c.bytes)}${c.error ? ` – ${c.error}` : ""}`;
        ul.append(li);
      }
      d.append(s, ul);
      err.append(d);
    }
    body.append(tr);
  }
  if (r.runs.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "No archive run yet").colSpan = 10;
    body.append(tr);
  }
}

const VIEW_IO = {
  dau: [fetchDau, renderDau],
  top: [fetchTop, renderTop],
  retention: [fetchRetention, renderRetention],
  funnel: [fetchFunnel, renderFunnel],
  tiers: [fetchTiers, renderTiers],
  runs: [fetchRuns, renderRuns],
};
let generation = 0; // the latest load; an older answer arriving late is dropped

// Loads the current view; its panel's data-state says loading, done or error.
async function load() {
  const current = ++generation;
  const panel = $(`view-${view}`);
  const key = keyFor(view);
  clearMessage();
  if (!key) {
    panel.dataset.state = "error";
    showMessage(
      keys.length === 0
        ? "Paste an API key above to begin (make run prints one)."
        : "This view needs a project key: an operator key belongs to no project.",
    );
    return;
  }
  panel.dataset.state = "loading";
  panel.setAttribute("aria-busy", "true");
  const [fetchView, renderView] = VIEW_IO[view];
  try {
    const answer = await fetchView(key.key);
    if (current !== generation) return;
    renderView(answer);
    panel.dataset.state = "done";
  } catch (e) {
    if (current !== generation) return;
    panel.dataset.state = "error";
    showMessage(e instanceof ApiFailure ? e.message : `The page failed: ${e.message}`);
  } finally {
    if (current === generation) panel.removeAttribute("aria-busy");
  }
}

function select(v) {
  view = v;
  for (const name of VIEWS) {
    const tab = $(`tab-${name}`);
    const on = name === v;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`view-${name}`).hidden = !on;
  }
  load();
}

function init() {
  setLastDays(30);
  renderKeys();
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("key-input");
    try {
      await addKeys(input.value);
      input.value = "";
      load();
    } catch (err) {
      showMessage(err instanceof ApiFailure ? err.message : `The page failed: ${err.message}`);
    }
  });
  $("project").addEventListener("change", load);
  $("refresh").addEventListener("click", load);
  for (const id of ["from", "to", "dau-event", "dau-group", "top-limit", "top-group", "ret-period", "ret-periods", "ret-start", "ret-return", "funnel-steps", "funnel-window", "funnel-unit", "funnel-group"]) {
    $(id).addEventListener("change", load);
  }
  for (const b of document.querySelectorAll("[data-days]")) {
    b.addEventListener("click", () => {
      setLastDays(Number(b.dataset.days));
      load();
    });
  }
  const tabs = VIEWS.map((v) => $(`tab-${v}`));
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(VIEWS[i]));
    // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
    tab.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = (i + step + tabs.length) % tabs.length;
      tabs[next].focus();
      select(VIEWS[next]);
    });
  });
  window.addEventListener("resize", () => {
    if (view === "dau" && dauPlot) dauPlot.setSize({ width: Math.max($("dau-chart").clientWidth, 320), height: 280 });
  });
  select("dau");
}

init();

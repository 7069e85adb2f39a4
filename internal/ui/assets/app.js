// Mote's dashboard. Plain JavaScript and SVG, no dependencies: every
// figure comes from the HTTP API (docs/api.md) with the credential the
// user gave, kept in sessionStorage for this tab only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

// el makes an element with attributes and children (strings are text).
function el(tag, attrs = {}, ...kids) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function setStatus(msg, isError) {
  const s = $("#status");
  s.textContent = msg;
  s.className = isError ? "error" : "";
}

// api calls the HTTP API; a 401 shows the sign-in form.
async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const tok = sessionStorage.getItem("mote-token");
  if (tok) headers.set("Authorization", "Bearer " + tok);
  const resp = await fetch(path, { ...opts, headers });
  if (resp.status === 401) {
    $("#login").hidden = false;
    throw new Error("this server needs a credential");
  }
  return resp;
}

async function apiJSON(path, opts) {
  const resp = await api(path, opts);
  const body = await resp.text();
  let v = null;
  try { v = body ? JSON.parse(body) : null; } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new Error((v && v.error) || body || resp.statusText);
  return v;
}

const fmtMs = (us) => us < 1000 ? us + " µs" : us < 1e6 ? (us / 1000).toFixed(2) + " ms" : (us / 1e6).toFixed(2) + " s";
const fmtSec = (s) => fmtMs(Math.round(s * 1e6));

// ---- tabs ----
let current = "functions";
const refreshers = {};
function show(tab) {
  current = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + tab;
  if (refreshers[tab]) refreshers[tab]().catch((e) => setStatus(e.message, true));
}

// ---- functions ----
let functions = [];
refreshers.functions = async function () {
  const v = await apiJSON("/v1/functions");
  functions = v.functions || [];
  const body = $("#functions tbody");
  body.replaceChildren();
  for (const f of functions) {
    const p = f.pool || {};
    const tr = el("tr", { class: "clickable", "data-function": f.name, onclick: () => showFunction(f.name) },
      el("td", {}, f.name), el("td", {}, f.current + " of " + f.latest), el("td", {}, "…"), el("td", {}, "…"), el("td", {}, "…"),
      el("td", {}, p.Idle ?? 0), el("td", {}, p.Busy ?? 0), el("td", {}, p.Waiting ?? 0),
      el("td", {}, p.Invocations ?? 0), el("td", {}, p.ColdStarts ?? 0));
    body.append(tr);
    apiJSON("/v1/functions/" + encodeURIComponent(f.name)).then((d) => {
      const cur = (d.versions || []).find((x) => x.number === d.current);
      const c = (cur && cur.config) || {};
      tr.children[2].textContent = c.runtime || "wasm";
      tr.children[3].textContent = c.memory || "default";
      tr.children[4].textContent = c.timeout || "default";
    }).catch(() => {});
  }
  fillFunctionSelects();
  setStatus(functions.length + " functions");
};

function fillFunctionSelects() {
  for (const id of ["#invoke-fn", "#logs-fn"]) {
    const sel = $(id);
    const was = sel.value;
    sel.replaceChildren(...functions.map((f) => el("option", { value: f.name }, f.name)));
    if (functions.some((f) => f.name === was)) sel.value = was;
  }
}

async function showFunction(name) {
  const d = await apiJSON("/v1/functions/" + encodeURIComponent(name));
  const box = $("#function-detail");
  box.replaceChildren(el("h2", {}, name + ": versions"));
  const t = el("table", { id: "versions" }, el("thead", {}, el("tr", {}, el("th", {}, "version"), el("th", {}, "created"), el("th", {}, "size"), el("th", {}, "sha256"), el("th", {}, "config"))));
  const tb = el("tbody");
  for (const v of (d.versions || []).slice().reverse()) {
    tb.append(el("tr", {}, el("td", {}, v.number + (v.number === d.current ? " (current)" : "")),
      el("td", {}, new Date(v.created).toLocaleString()), el("td", {}, v.size + " B"),
      el("td", {}, (v.artifact || "").slice(0, 12)), el("td", { class: "line" }, JSON.stringify(v.config))));
  }
  t.append(tb);
  box.append(t);
  if (d.pool) box.append(el("p", { class: "note" }, "pool: " + Object.entries(d.pool).map(([k, v]) => k + " " + v).join(", ")));
}

$("#deploy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#deploy-name").value.trim();
  const file = $("#deploy-file").files[0];
  const fd = new FormData();
  fd.append("config", $("#deploy-config").value.trim());
  fd.append("artifact", file, file.name);
  setStatus("deploying " + name + "…");
  try {
    const v = await apiJSON("/v1/functions/" + encodeURIComponent(name), { method: "PUT", body: fd });
    $("#deploy-result").textContent = "deployed " + name + " version " + v.number + " (" + v.size + " bytes)";
    setStatus("deployed " + name);
    await refreshers.functions();
  } catch (e) {
    $("#deploy-result").textContent = "deploy failed: " + e.message;
    setStatus(e.message, true);
  }
});

// ---- invoke and trace ----
$("#invoke-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const fn = $("#invoke-fn").value;
  const resp = await api("/fn/" + encodeURIComponent(fn), { method: "POST", body: $("#invoke-payload").value });
  const id = resp.headers.get("X-Mote-Invocation-Id") || "";
  const out = await resp.text();
  const meta = $("#invoke-meta");
  meta.replaceChildren(el("span", { id: "invoke-status" }, resp.status + " "),
    "invocation ", el("a", { id: "invoke-id", onclick: () => loadTrace(id) }, id),
    " · cpu " + (resp.headers.get("X-Mote-Cpu-Us") || "?") + " µs · billed " + (resp.headers.get("X-Mote-Billed-Ms") || "?") +
    " ms · cold " + resp.headers.get("X-Mote-Cold") + " · ",
    el("a", { id: "invoke-logs", onclick: () => { $("#logs-fn").value = fn; $("#logs-invocation").value = id; show("logs"); } }, "logs"));
  $("#invoke-output").textContent = out;
  $("#trace-id").value = id;
});

$("#trace-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadTrace($("#trace-id").value.trim()); });

async function loadTrace(id) {
  if (!id) return;
  show("invoke");
  $("#trace-id").value = id;
  const root = await apiJSON("/v1/invocations/" + encodeURIComponent(id));
  drawTree(root);
}

// drawTree draws a call tree as a waterfall: one row per invocation in
// call order, a bar from its start to its end on the root's time scale
// (so calls that ran at once overlap: the fan-out; the parent's bar goes
// on past its children: the fan-in), its CPU time as a darker inner bar,
// and a line from each parent to each child's start.
function drawTree(root) {
  const rows = [];
  (function walk(n, depth) {
    rows.push({ n, depth });
    for (const c of n.children || []) walk(c, depth + 1);
  })(root, 0);
  const t0 = Date.parse(root.start);
  const endOf = (n) => n.end ? Date.parse(n.end) : Date.parse(n.start) + n.wall_us / 1000;
  let t1 = t0;
  for (const r of rows) t1 = Math.max(t1, endOf(r.n));
  // Times come in microseconds from start and wall; Date.parse keeps ms.
  const startUs = (n) => (Date.parse(n.start) - t0) * 1000 + subMs(n.start) - subMs(root.start);
  const spanUs = Math.max(1, ...rows.map((r) => startUs(r.n) + r.n.wall_us));
  const W = 900, label = 330, rowH = 24, H = rows.length * rowH + 30;
  const x = (us) => label + (us / spanUs) * (W - label - 10);
  const svg = el("svg:svg", { id: "trace-svg", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  svg.append(el("svg:line", { class: "axis", x1: label, y1: H - 20, x2: W - 10, y2: H - 20 }),
    el("svg:text", { x: label, y: H - 6 }, "0"), el("svg:text", { x: W - 10, y: H - 6, "text-anchor": "end" }, fmtMs(Math.round(spanUs))));
  const ys = new Map();
  rows.forEach((r, i) => ys.set(r.n.id, 6 + i * rowH));
  rows.forEach((r) => {
    const n = r.n, y = ys.get(n.id), s = startUs(n);
    const g = el("svg:g", { class: "node", "data-function": n.function, "data-id": n.id, "data-depth": r.depth,
      "data-cpu-us": n.cpu_us, "data-wall-us": n.wall_us, "data-status": n.status });
    g.append(el("svg:title", {}, `${n.function} ${n.status} wall ${fmtMs(n.wall_us)} cpu ${fmtMs(n.cpu_us)}${n.cold ? " cold" : ""}${n.async ? " async" : ""} ${n.id}`));
    g.append(el("svg:text", { x: 4 + r.depth * 14, y: y + 14 }, `${n.function}  cpu ${fmtMs(n.cpu_us)}  wall ${fmtMs(n.wall_us)}`));
    const w = Math.max(2, x(s + n.wall_us) - x(s));
    g.append(el("svg:rect", { class: "bar" + (n.status === "failed" ? " failed" : ""), x: x(s), y: y + 2, width: w, height: rowH - 8, rx: 2 }));
    const cw = Math.max(1, w * Math.min(1, n.cpu_us / Math.max(1, n.wall_us)));
    g.append(el("svg:rect", { class: "cpu", x: x(s), y: y + 8, width: cw, height: rowH - 20 }));
    svg.append(g);
    for (const c of n.children || []) {
      const cy = ys.get(c.id), cx = x(startUs(c));
      svg.append(el("svg:path", { class: "edge", d: `M ${x(s)} ${y + rowH - 6} V ${cy + rowH / 2 - 2} H ${cx}` }));
    }
  });
  const box = $("#trace");
  box.replaceChildren(svg, el("p", { class: "note" }, `${rows.length} invocations · blue: wall time · green: CPU time`));
}

// subMs is the microseconds below the millisecond in an RFC 3339 time.
function subMs(t) {
  const m = /\.(\d+)/.exec(t);
  if (!m) return 0;
  const frac = (m[1] + "000000").slice(0, 6);
  return Number(frac.slice(3));
}

// ---- logs ----
let logsAbort = null;
$("#logs-form").addEventListener("submit", (ev) => { ev.preventDefault(); tailLogs(); });
refreshers.logs = async () => { if (!logsAbort && $("#logs-fn").value) tailLogs(); };

async function tailLogs() {
  if (logsAbort) logsAbort.abort();
  const ctl = new AbortController();
  logsAbort = ctl;
  const fn = $("#logs-fn").value;
  const inv = $("#logs-invocation").value.trim();
  const follow = $("#logs-follow").checked;
  const body = $("#logs tbody");
  body.replaceChildren();
  const q = new URLSearchParams({ n: "200" });
  if (inv) q.set("invocation", inv);
  if (follow) q.set("follow", "1");
  try {
    const resp = await api(`/v1/functions/${encodeURIComponent(fn)}/logs?${q}`, { signal: ctl.signal });
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        // Following streams every new line of the function: keep the
        // invocation asked for.
        if (line) { const l = JSON.parse(line); if (!inv || l.invocation === inv) addLog(l); }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") setStatus(e.message, true);
  } finally {
    if (logsAbort === ctl) logsAbort = null;
  }
}

function addLog(l) {
  const id = l.invocation || "";
  $("#logs tbody").append(el("tr", { class: "log", "data-invocation": id },
    el("td", {}, new Date(l.time).toLocaleTimeString()), el("td", {}, l.stream || ""),
    el("td", {}, id ? el("a", { onclick: () => loadTrace(id) }, id.slice(0, 12) + "…") : ""),
    el("td", { class: "line" }, logText(l))));
}

// logText is a line's text; for an invocation's report (stream
// "report"), Lambda's REPORT line, after the failure and its stack trace.
function logText(l) {
  const r = l.report;
  if (!r) return l.text || "";
  let s = `REPORT Duration: ${(r.duration_us / 1000).toFixed(2)} ms Billed Duration: ${r.billed_ms} ms ` +
    `CPU: ${(r.cpu_us / 1000).toFixed(3)} ms Memory Size: ${r.memory_mb} MB`;
  if (r.max_memory_mb) s += ` Max Memory Used: ${r.max_memory_mb} MB`;
  if (r.init_us) s += ` Init Duration: ${(r.init_us / 1000).toFixed(2)} ms`;
  if (r.error_code) {
    const trace = (r.stack_trace || []).join("\n");
    s = `ERROR ${r.error_code}: ${r.error_type ? r.error_type + ": " : ""}${r.error || ""}` + (trace ? "\n" + trace : "") + "\n" + s;
  }
  return s;
}

// ---- live ----
const history = []; // {t, byFn: Map(fn → {ok, err, sum, count})}
async function sampleMetrics() {
  const resp = await api("/metrics");
  if (!resp.ok) throw new Error("metrics: " + resp.status);
  const text = await resp.text();
  const byFn = new Map();
  const get = (fn) => { if (!byFn.has(fn)) byFn.set(fn, { ok: 0, err: 0, sum: 0, count: 0 }); return byFn.get(fn); };
  const re = /^(mote_invocations_total|mote_invocation_duration_seconds_sum|mote_invocation_duration_seconds_count)\{([^}]*)\} (\S+)$/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const s = get(labels.function), v = Number(m[3]);
    if (m[1] === "mote_invocations_total") { if (labels.code === "ok") s.ok += v; else s.err += v; }
    else if (m[1].endsWith("_sum")) s.sum += v;
    else s.count += v;
  }
  history.push({ t: Date.now() / 1000, byFn });
  if (history.length > 90) history.shift();
}

function rates(a, b) {
  const dt = Math.max(1e-3, b.t - a.t), out = new Map();
  for (const [fn, s] of b.byFn) {
    const p = a.byFn.get(fn) || { ok: 0, err: 0, sum: 0, count: 0 };
    const dc = s.count - p.count;
    out.set(fn, { rate: (s.ok + s.err - p.ok - p.err) / dt, err: (s.err - p.err) / dt, lat: dc > 0 ? (s.sum - p.sum) / dc : null, total: s.ok + s.err });
  }
  return out;
}

function drawLive() {
  const pts = [];
  for (let i = 1; i < history.length; i++) {
    let rate = 0, err = 0, latSum = 0, latN = 0;
    for (const r of rates(history[i - 1], history[i]).values()) {
      rate += r.rate; err += r.err;
      if (r.lat !== null) { latSum += r.lat * r.rate; latN += r.rate; }
    }
    pts.push({ rate, err, lat: latN > 0 ? latSum / latN : 0 });
  }
  const box = $("#live-charts");
  box.replaceChildren(
    sparkline("live-rate", "invocations/s", pts.map((p) => p.rate), (v) => v.toFixed(1)),
    sparkline("live-latency", "mean latency", pts.map((p) => p.lat), fmtSec),
    sparkline("live-errors", "errors/s", pts.map((p) => p.err), (v) => v.toFixed(2), "err"));
  const body = $("#live-table tbody");
  body.replaceChildren();
  if (history.length >= 2) {
    for (const [fn, r] of rates(history[history.length - 2], history[history.length - 1])) {
      body.append(el("tr", { "data-function": fn }, el("td", {}, fn), el("td", {}, r.rate.toFixed(2)),
        el("td", {}, r.lat === null ? "–" : fmtSec(r.lat)), el("td", {}, r.err.toFixed(2)), el("td", {}, r.total)));
    }
  }
}

function sparkline(id, title, vals, fmt, cls = "") {
  const W = 280, H = 90, max = Math.max(1e-9, ...vals);
  const svg = el("svg:svg", { id, width: W, height: H });
  svg.append(el("svg:line", { class: "axis", x1: 0, y1: H - 1, x2: W, y2: H - 1 }));
  if (vals.length > 1) {
    const d = vals.map((v, i) => `${(i / (vals.length - 1)) * (W - 2) + 1},${H - 4 - (v / max) * (H - 20)}`).join(" ");
    svg.append(el("svg:polyline", { class: "series " + cls, points: d }));
  }
  svg.append(el("svg:text", { x: W - 2, y: 12, "text-anchor": "end" }, "max " + fmt(vals.length ? max : 0)));
  const last = vals.length ? vals[vals.length - 1] : 0;
  return el("div", { class: "chart" }, el("h3", {}, `${title}: ${fmt(last)}`), svg);
}

refreshers.live = async () => { await sampleMetrics(); drawLive(); };

// ---- usage ----
refreshers.usage = async function () {
  const u = await apiJSON("/v1/usage");
  const byFn = new Map();
  for (const r of u.rows || []) {
    const s = byFn.get(r.function) || { inv: 0, errors: 0, cpu: 0, wall: 0, billed: 0, lambda: 0 };
    s.inv += r.invocations; s.errors += r.errors; s.cpu += r.cpu_us; s.wall += r.wall_ms;
    s.billed += r.billed_gb_s; s.lambda += r.lambda_gb_s;
    byFn.set(r.function, s);
  }
  const body = $("#usage tbody");
  body.replaceChildren();
  for (const [fn, s] of byFn) {
    const saved = s.lambda > 0 ? Math.round((1 - s.billed / s.lambda) * 100) + " %" : "–";
    body.append(el("tr", { "data-function": fn }, el("td", {}, fn), el("td", {}, s.inv), el("td", {}, s.errors),
      el("td", {}, fmtMs(s.cpu)), el("td", {}, fmtMs(s.wall * 1000)), el("td", {}, s.billed.toFixed(6)),
      el("td", {}, s.lambda.toFixed(6)), el("td", {}, saved)));
  }
  // Two bars per function: billed (CPU) and wall-clock GB-s.
  const fns = [...byFn.keys()], W = 700, rowH = 34, label = 140, H = fns.length * rowH + 30;
  const max = Math.max(1e-12, ...[...byFn.values()].flatMap((s) => [s.billed, s.lambda]));
  const svg = el("svg:svg", { id: "usage-svg", width: W, height: H });
  fns.forEach((fn, i) => {
    const s = byFn.get(fn), y = 6 + i * rowH, w = (v) => Math.max(1, (v / max) * (W - label - 120));
    svg.append(el("svg:text", { x: 0, y: y + 16 }, fn),
      el("svg:rect", { class: "billed", x: label, y, width: w(s.billed), height: 12, "data-function": fn, "data-gbs": s.billed }),
      el("svg:text", { x: label + w(s.billed) + 4, y: y + 10 }, s.billed.toFixed(6) + " GB-s billed"),
      el("svg:rect", { class: "wallclock", x: label, y: y + 14, width: w(s.lambda), height: 12, "data-function": fn, "data-gbs": s.lambda }),
      el("svg:text", { x: label + w(s.lambda) + 4, y: y + 24 }, s.lambda.toFixed(6) + " GB-s wall-clock"));
  });
  $("#usage-chart").replaceChildren(svg);
};

// ---- dead letters ----
refreshers.dlq = async function () {
  const dl = await apiJSON("/v1/dlq?limit=200");
  const body = $("#dlq tbody");
  body.replaceChildren();
  for (const d of dl) {
    body.append(el("tr", { "data-id": d.id }, el("td", {}, el("a", { onclick: () => loadTrace(d.id) }, d.id)), el("td", {}, d.function),
      el("td", {}, new Date(d.at).toLocaleString()), el("td", {}, d.attempts), el("td", { class: "line" }, d.error_code + ": " + d.error),
      el("td", {}, el("button", { class: "action redrive", onclick: () => redrive(d.id) }, "Redrive"))));
  }
  setStatus(dl.length + " dead letters");
};

async function redrive(id) {
  let msg = "redriven " + id, failed = false;
  try {
    await apiJSON("/v1/dlq/" + encodeURIComponent(id) + "/redrive", { method: "POST" });
  } catch (e) {
    msg = e.message;
    failed = true;
  }
  await refreshers.dlq().catch(() => {});
  setStatus(msg, failed);
}

// ---- start ----
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("mote-token", $("#token-input").value.trim());
  $("#token-input").value = "";
  $("#login").hidden = true;
  show(current);
});
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
setInterval(() => {
  if (document.hidden) return;
  const tick = current === "live" ? refreshers.live : current === "functions" ? refreshers.functions : null;
  if (tick) tick().catch((e) => setStatus(e.message, true));
}, 2000);
sampleMetrics().catch(() => {});
show("functions");

// The taskflow web page: renders /api/overview (polled) or, in a file written by
// `taskflow report --html`, the data inlined in it.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("taskflow-config").textContent);
  const STATES = ["waiting", "ready", "running", "finished", "failed"];
  const POLL_MS = 2000;
  let overview = config.overview || null;
  let report = config.report || null;
  let selected = new Set();
  let openTracebacks = new Set();

  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "?";
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + "d" : "") + (h ? h + "h" : "") + (d ? "" : m + "m") + (d || h ? "" : Math.floor(s % 60) + "s");
  }
  const secs = (s) => s < 60 ? s.toFixed(3) + "s" : duration(s);
  const mib = (b) => b === null || b === undefined ? "?" : (b / 1048576).toFixed(0) + " MiB";
  function quote(w) { return /^[\w@%+=:,./-]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\"'\"'") + "'"; }
  function cli(...words) {
    if (!overview) return "";
    return ["taskflow", words[0], quote(overview.taskfile), "--store", quote(overview.store),
            ...words.slice(1)].join(" ");
  }
  function setText(id, text) { const e = $(id); if (e) e.textContent = text; }
  function say(text, isError) {
    const m = $("message");
    m.textContent = text; m.hidden = !text; m.className = isError ? "error" : "info";
  }

  // -- views ---------------------------------------------------------------

  function currentView() {
    const path = location.pathname.match(/^\/task\/([^/]+)$/);
    if (path) return ["task", decodeURIComponent(path[1])];
    const h = location.hash.replace(/^#/, "");
    if (h.startsWith("task/")) return ["task", decodeURIComponent(h.slice(5))];
    return [h || "overview", null];
  }
  function showView() {
    const [view, arg] = currentView();
    say("");  // a message belongs to the view it came from
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === view);
    if (view === "task") loadTask(arg);
    if (view === "report" && !config.static) loadReport();
    if (view === "graph" && !config.static) loadGraph();
  }

  function bar(c, total) {
    const b = el("div", {class: "progress", title: `${c.finished} of ${total} finished`});
    for (const s of ["finished", "running", "failed"]) {
      if (c[s] && total) b.append(el("span", {class: "seg " + s, style: `width:${100 * c[s] / total}%`}));
    }
    b.append(el("em", {}, total ? Math.floor(100 * c.finished / total) + "%" : "-"));
    return b;
  }
  const rate = (r) => r === null || r === undefined ? "" : r.toFixed(1) + "/min";
  const eta = (e, left) => !left ? "done" : e === null || e === undefined ? "?" : duration(e);

  function renderOverview() {
    const o = overview;
    setText("where", `${o.taskfile} — store ${o.store}`);
    setText("updated", config.static ? "written " + new Date(o.time * 1000).toLocaleString()
                                     : "updated " + new Date(o.time * 1000).toLocaleTimeString());
    const body = $("overview-table").tBodies[0];
    body.replaceChildren(...o.names.map((n) => el("tr", {"data-name": n.name},
      el("td", {class: "name"}, n.name),
      ...STATES.map((s) => el("td", {class: "n " + s, "data-state": s}, n.counts[s])),
      el("td", {}, bar(n.counts, n.total)), el("td", {}, rate(n.rate_per_min)),
      el("td", {}, eta(n.eta_seconds, n.total - n.counts.finished - n.counts.failed)))));
    const left = o.tasks - o.total.finished - o.total.failed;
    $("overview-table").tFoot.replaceChildren(el("tr", {"data-name": "Total"}, el("th", {class: "name"}, "Total"),
      ...STATES.map((s) => el("th", {class: "n " + s, "data-state": s}, o.total[s])),
      el("th", {}, bar(o.total, o.tasks)), el("th", {}, rate(o.rate_per_min)), el("th", {}, eta(o.eta_seconds, left))));
    setText("summary", `${o.total.finished} of ${o.tasks} tasks finished` +
      (o.total.failed ? `, ${o.total.failed} failed` : "") + (o.total.running ? `, ${o.total.running} running` : ""));
    $("jobs").replaceChildren(...o.job_lines.map((l) => el("li", {}, l)));
    const w = [];
    for (const [name, n] of Object.entries(o.changed)) {
      w.push(el("p", {class: "warning code-changed"}, `code changed: ${n} finished ${name} result(s) came from ` +
        "other code or another version (", el("code", {}, cli("invalidate", "--changed")), " removes them)"));
    }
    if (o.stale.length) w.push(el("p", {class: "warning"}, `${o.stale.length} stale claim(s) of dead or frozen ` +
      "workers (their tasks count as ready)"));
    if (!o.complete) w.push(el("p", {class: "warning"},
      "loading stopped at a barrier: tasks below it appear once what it waits for is finished"));
    if (o.stop) w.push(el("p", {class: "warning stop"}, "STOP is set: workers take no new task"));
    $("warnings").replaceChildren(...w);
    setText("cmd-status", cli("status", "--watch"));
    renderRunning(); renderFailures(); renderActionsState();
  }

  const taskLink = (name, hash) => config.static ? el("span", {}, name + " " + hash.slice(0, 12))
    : el("a", {href: "#task/" + hash}, name + " " + hash.slice(0, 12));

  function renderRunning() {
    const o = overview;
    const row = (r) => el("tr", {}, el("td", {class: "name"}, taskLink(r.name, r.hash)), el("td", {}, r.host ?? "?"),
      el("td", {}, r.pid ?? "?"), el("td", {}, r.worker ?? "?"), el("td", {}, duration(r.seconds)),
      ...(r.stale ? [el("td", {}, r.reason)] : []));
    $("running-table").tBodies[0].replaceChildren(...o.running.map(row));
    $("stale-table").tBodies[0].replaceChildren(...o.stale.map(row));
    setText("cmd-running", cli("status", "--running"));
  }

  function renderFailures() {
    const o = overview;
    const list = o.failed.map((f) => {
      const box = el("input", {type: "checkbox", class: "select actions-only", "data-hash": f.hash});
      box.checked = selected.has(f.hash);
      box.addEventListener("change", () => box.checked ? selected.add(f.hash) : selected.delete(f.hash));
      const details = el("details", {"data-hash": f.hash}, el("summary", {}, "traceback"), el("pre", {}, f.traceback));
      details.open = openTracebacks.has(f.hash);
      details.addEventListener("toggle", () => details.open ? openTracebacks.add(f.hash) : openTracebacks.delete(f.hash));
      return el("div", {class: "failure", "data-hash": f.hash}, box, " ", el("strong", {}, taskLink(f.name, f.hash)),
        el("span", {class: "msg"}, `: ${f.type}: ${f.message}`),
        el("span", {class: "where"}, ` on ${f.host ?? "?"}` + (f.time ? " at " + new Date(f.time * 1000).toLocaleString() : "")),
        details);
    });
    if (!list.length) list.push(el("p", {}, "no task failed"));
    else if (o.failed_total > o.failed.length) list.push(el("p", {}, `… and ${o.failed_total - o.failed.length} more`));
    $("failures-list").replaceChildren(...list);
    setText("cmd-failed", cli("status", "--failed"));
    setText("cmd-retry", cli("execute", "--retry-failed"));
    applyReadOnly();
  }

  function renderActionsState() {
    const o = overview;
    setText("stop-state", o.stop ? "STOP is set: workers finish their task and take no new one." : "STOP is not set.");
    setText("stale-count", `${o.stale.length} stale claim(s).`);
    setText("cmd-cleanup", cli("cleanup", "--locks"));
    if ($("local-jobs")) setText("cmd-launch", cli("execute", "--jobs", $("local-jobs").value || "1"));
  }

  function histogram(h) {
    if (!h || !h.counts.length) return el("span", {}, "");
    const max = Math.max(...h.counts);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", 4 * h.counts.length); svg.setAttribute("height", 20); svg.setAttribute("class", "hist");
    h.counts.forEach((c, i) => {
      const r = document.createElementNS(ns, "rect");
      const height = max ? 20 * c / max : 0;
      r.setAttribute("x", 4 * i); r.setAttribute("y", 20 - height); r.setAttribute("width", 3); r.setAttribute("height", height);
      svg.append(r);
    });
    const t = document.createElementNS(ns, "title"); t.textContent = `${h.low} … ${h.high}`; svg.append(t);
    return svg;
  }

  function renderReport() {
    if (!report) return;
    const rows = Object.entries(report.tasks).map(([name, r]) => el("tr", {"data-name": name},
      el("td", {class: "name"}, name), el("td", {}, r.finished), el("td", {}, secs(r.mean_seconds)),
      el("td", {}, secs(r.max_seconds)), el("td", {}, histogram(report.histograms[name].seconds)),
      el("td", {}, mib(r.max_rss_bytes)), el("td", {}, histogram(report.histograms[name].rss_bytes)),
      el("td", {}, Object.entries(r.hosts).map(([h, n]) => `${h} (${n})`).join(", "))));
    $("report-table").tBodies[0].replaceChildren(...rows);
    $("slowest-table").tBodies[0].replaceChildren(...report.slowest.map((m) => el("tr", {},
      el("td", {class: "name"}, m.name), el("td", {}, config.static ? String(m.hash).slice(0, 12) : taskLink("", m.hash)),
      el("td", {}, secs(m.duration || 0)), el("td", {}, m.host), el("td", {}, mib(m.max_rss_bytes)))));
    setText("cmd-report", cli("report"));
  }

  // -- data ----------------------------------------------------------------

  async function api(path, body) {
    const init = body === undefined ? {credentials: "same-origin"} : {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-Taskflow-CSRF": config.csrf}};
    const r = await fetch(path, init);
    let data;
    try { data = await r.json(); } catch (e) { data = {error: `${r.status} ${r.statusText}`}; }
    if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
    return data;
  }

  async function poll() {
    try {
      overview = await api("/api/overview");
      renderOverview();
      // Milliseconds from the start of navigation to the first overview drawn (bench/web_overview.py).
      if (window.taskflowFirstRender === undefined) window.taskflowFirstRender = performance.now();
      if (currentView()[0] === "report") loadReport();
    } catch (e) {
      setText("updated", "cannot reach the server: " + e.message);
    }
    setTimeout(poll, POLL_MS);
  }
  async function loadReport() {
    try { report = await api("/api/report"); renderReport(); } catch (e) { say(e.message, true); }
  }
  async function loadGraph() {
    try {
      const g = await api("/api/graph");
      setText("graph-note", g.note);
      $("graph-svg").innerHTML = g.svg || "";  // SVG drawn by Graphviz on the server from task names
      setText("cmd-graph", cli("graph", "-o", "graph.svg"));
    } catch (e) { setText("graph-note", e.message); }
  }
  async function loadTask(target) {
    setText("task-title", "Task " + target);
    setText("cmd-show", overview ? cli("show", target) : "");
    try { setText("task-text", (await api("/api/show?target=" + encodeURIComponent(target))).text); }
    catch (e) { setText("task-text", e.message); }
  }

  // -- actions -------------------------------------------------------------

  async function act(path, body, then) {
    say("");
    try {
      const r = await api(path, body);
      setText("action-output", (r.message || "") + (r.command ? "\n\nfrom a shell: " + r.command : ""));
      if (then) then(r);
      say(r.message || "done");
      overview = await api("/api/overview"); renderOverview();
      return r;
    } catch (e) { say(e.message, true); setText("action-output", e.message); return null; }
  }
  function form() {
    const v = (id) => $(id).value;
    return {scheduler: v("sub-scheduler"), workers: v("sub-workers"), time: v("sub-time"), mem: v("sub-mem"),
            queue: v("sub-queue"), extra: v("sub-extra")};
  }
  let preview = null;
  function wire() {
    const on = (id, f) => $(id).addEventListener("click", f);
    on("launch-local", () => act("/api/launch", {jobs: parseInt($("local-jobs").value, 10)}));
    $("local-jobs").addEventListener("input", renderActionsState);
    on("stop-on", () => act("/api/stop", {on: true}));
    on("stop-off", () => act("/api/stop", {on: false}));
    on("retry-all", () => act("/api/retry", {}));
    on("retry-selected", () => act("/api/retry", {hashes: [...selected]}, () => selected.clear()));
    on("cleanup", () => act("/api/cleanup", {}));
    on("inv-preview", () => act("/api/invalidate", {target: $("inv-target").value, dry_run: true}, (r) => {
      setText("inv-counts", r.message); setText("inv-command", r.command); $("inv-preview-box").hidden = false;
    }));
    on("inv-apply", () => act("/api/invalidate", {target: $("inv-target").value, dry_run: false},
                               () => { $("inv-preview-box").hidden = true; }));
    $("inv-target").addEventListener("input", () => { $("inv-preview-box").hidden = true; });
    on("sub-preview", async () => {
      $("sub-preview-box").hidden = true; setText("sub-result", "");
      const r = await act("/api/submit/preview", form());
      if (!r) { setText("sub-result", $("action-output").textContent); return; }
      preview = r.preview;
      setText("sub-command", r.command); setText("sub-script-path", r.script_path);
      setText("sub-submit-command", r.submit_command); setText("sub-script", r.script);
      $("sub-preview-box").hidden = false;
    });
    on("sub-submit", async () => {
      const r = await act("/api/submit", {preview});
      $("sub-preview-box").hidden = true;
      const jobsWord = r && r.job_ids && r.job_ids.length > 1 ? "jobs" : "job";  // one array per resource class
      setText("sub-result", r ? `${jobsWord} ${r.job_id} submitted (${r.scheduler})` : $("action-output").textContent);
      $("sub-result").className = r ? "job-id" : "error";
    });
    for (const id of ["sub-scheduler", "sub-workers", "sub-time", "sub-mem", "sub-queue", "sub-extra"]) {
      $(id).addEventListener("input", () => { $("sub-preview-box").hidden = true; });
    }
  }
  function applyReadOnly() {
    if (!config.readOnly) return;
    for (const e of document.querySelectorAll(".actions-only")) e.remove();
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyReadOnly();
    if (config.static) {
      for (const e of document.querySelectorAll(".live-only")) e.remove();
      renderOverview(); renderReport();
    } else {
      if (!config.readOnly) wire();
      poll();
    }
    window.addEventListener("hashchange", showView);
    showView();
  });
})();

// The dashboard's one page: plain HTML, CSS and JavaScript, no build step and
// nothing fetched from elsewhere. It follows /events (server-sent events: one
// JSON snapshot per second) and draws nodes, links, resources with their sync
// and verify bars, groups and where they run, and the recent events. Actions
// post to /api/actions/* with the token the user types (kept for the tab only).

export const dashboardPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tandem</title>
<style>
  :root {
    --bg: #0f1419; --card: #182029; --line: #263241; --text: #e6edf3; --dim: #8b98a5;
    --ok: #3fb950; --warn: #d29922; --bad: #f85149; --info: #58a6ff; --accent: #a371f7;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text);
    font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 24px;
    border-bottom: 1px solid var(--line); background: #121a22; position: sticky; top: 0; }
  header h1 { font-size: 18px; margin: 0; letter-spacing: .5px; }
  header h1 span { color: var(--accent); }
  .spacer { flex: 1; }
  .live { display: inline-flex; align-items: center; gap: 6px; color: var(--dim); font-size: 12px; }
  .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--bad); display: inline-block; }
  .dot.on { background: var(--ok); box-shadow: 0 0 6px var(--ok); }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; padding: 20px 24px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
  section h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: 1px; color: var(--dim); }
  .wide { grid-column: 1 / -1; }
  .chip { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
    border: 1px solid currentColor; }
  .ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
  .info { color: var(--info); } .dim { color: var(--dim); }
  table { width: 100%; border-collapse: collapse; }
  th { text-align: left; font-weight: 500; color: var(--dim); font-size: 12px; padding: 4px 6px; }
  td { padding: 6px; border-top: 1px solid var(--line); vertical-align: middle; }
  .node { display: flex; align-items: center; gap: 10px; padding: 8px 0; border-top: 1px solid var(--line); }
  .node:first-of-type { border-top: 0; }
  .node .name { font-weight: 600; min-width: 110px; }
  .links { color: var(--dim); font-size: 12px; }
  .bar { position: relative; height: 18px; background: #0b1016; border: 1px solid var(--line); border-radius: 6px;
    overflow: hidden; min-width: 240px; }
  .barnote { font-size: 11px; color: var(--dim); margin-top: 2px; white-space: nowrap; }
  .bar > .fill { height: 100%; background: linear-gradient(90deg, #2f81f7, var(--accent)); transition: width .8s ease; }
  .bar > .label { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
    font-size: 11px; font-weight: 600; white-space: nowrap; }
  .owner { font-weight: 700; color: var(--info); }
  button { background: #21262d; color: var(--text); border: 1px solid var(--line); border-radius: 6px;
    padding: 5px 12px; font: inherit; cursor: pointer; }
  button:hover:not(:disabled) { border-color: var(--info); }
  button:disabled { opacity: .45; cursor: not-allowed; }
  ol.events { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow: auto;
    font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; }
  ol.events li { padding: 3px 0; border-top: 1px solid var(--line); }
  ol.events time { color: var(--dim); margin-right: 8px; }
  #toast { position: fixed; bottom: 18px; right: 18px; background: var(--card); border: 1px solid var(--line);
    border-radius: 8px; padding: 10px 14px; display: none; max-width: 420px; }
</style>
</head>
<body>
<header>
  <h1><span>tandem</span> · <span id="node" class="dim"></span></h1>
  <span id="quorum"></span>
  <span class="spacer"></span>
  <button id="standby" data-testid="action-standby">Standby</button>
  <button id="takeover" data-testid="action-takeover">Takeover</button>
  <span class="live"><span id="live" class="dot"></span><span id="livetext">connecting</span></span>
</header>
<main>
  <section><h2>Nodes and heartbeat links</h2><div id="nodes"></div></section>
  <section><h2>Resource groups</h2><table><thead><tr><th>group</th><th>state here</th><th>runs on</th></tr></thead>
    <tbody id="groups"></tbody></table></section>
  <section class="wide"><h2>Replicated resources</h2>
    <table><thead><tr><th>resource</th><th>role (here / peer)</th><th>disk (here / peer)</th><th>connection</th>
      <th>out of sync</th><th>sync / verify</th><th></th></tr></thead><tbody id="resources"></tbody></table>
    <div id="resnote" class="dim"></div></section>
  <section class="wide"><h2>Recent events</h2><ol class="events" id="events"></ol></section>
</main>
<div id="toast"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const chip = (text, cls) => '<span class="chip ' + cls + '">' + esc(text) + '</span>';
const stateClass = (s) => ({ up: "ok", running: "ok", UpToDate: "ok", Connected: "ok", Primary: "info",
  dead: "bad", failed: "bad", Diskless: "bad", Failed: "bad", StandAlone: "bad",
  starting: "warn", stopping: "warn", Inconsistent: "warn", Outdated: "warn", SyncSource: "info", SyncTarget: "info",
  VerifyS: "info", VerifyT: "info", WFConnection: "warn" })[s] || "dim";
const mb = (b) => (b / 1e6).toFixed(b < 1e7 ? 1 : 0) + " MB";
const eta = (s) => s < 60 ? Math.ceil(s) + " s" : Math.floor(s / 60) + " min " + Math.ceil(s % 60) + " s";
let snap = null;

function drawNodes(s) {
  const rows = [];
  rows.push('<div class="node" data-testid="node-' + esc(s.node) + '"><span class="name">' + esc(s.node) + '</span>' +
    chip("this node", "info") + (s.ha.standby ? " " + chip("standby", "warn") : "") + "</div>");
  for (const n of s.ha.nodes) {
    const links = Object.entries(n.links).map(([l, ms]) =>
      '<span class="' + (ms < s.deadtimeMs ? "ok" : "bad") + '">●</span> ' + esc(l) + " " + (ms / 1000).toFixed(1) + " s").join(" &nbsp; ");
    rows.push('<div class="node" data-testid="node-' + esc(n.name) + '"><span class="name">' + esc(n.name) + "</span>" +
      chip(n.state, stateClass(n.state)) + (n.late ? " " + chip("late", "warn") : "") +
      (n.name === s.ha.witness ? " " + chip("witness", "dim") : "") +
      '<span class="links">' + (links || "no packet yet") + "</span></div>");
  }
  $("nodes").innerHTML = rows.join("");
  $("quorum").innerHTML = s.ha.quorum.applies
    ? chip(s.ha.quorum.has ? "majority held" : "no majority", s.ha.quorum.has ? "ok" : "bad")
    : chip("two nodes, no witness", "dim");
}

function owner(s, key) {
  const here = s.ha.groups.find((g) => g.key === key);
  if (here && (here.state === "running" || here.state === "starting")) return s.node;
  for (const n of s.ha.nodes) if (n.state === "up" && n.groups.some((g) => g.key === key && g.state === "running")) return n.name;
  return null;
}

function drawGroups(s) {
  $("groups").innerHTML = s.ha.groups.map((g) => {
    const o = owner(s, g.key);
    return "<tr><td>" + esc(g.key) + "</td><td>" + chip(g.state, stateClass(g.state)) +
      (g.reason ? ' <span class="bad">' + esc(g.reason) + "</span>" : "") + "</td>" +
      '<td data-testid="group-owner" data-group="' + esc(g.key) + '">' +
      (o ? '<span class="owner">' + esc(o) + "</span>" : '<span class="dim">nowhere</span>') + "</td></tr>";
  }).join("") || '<tr><td colspan="3" class="dim">no groups in haresources</td></tr>';
}

function drawResources(s) {
  if (!s.resources) {
    $("resources").innerHTML = "";
    $("resnote").textContent = "tandemd does not answer here: " + (s.resourcesError || "");
    return;
  }
  $("resnote").textContent = "";
  const rows = [];
  for (const r of s.resources) for (const v of r.volumes) {
    const name = r.name + (r.volumes.length > 1 ? "/" + v.volume : "");
    let bar = '<span class="dim">—</span>';
    if (v.sync) {
      const pct = v.sync.totalBytes > 0 ? Math.min(100, 100 * v.sync.doneBytes / v.sync.totalBytes) : 0;
      const speed = v.sync.speedBytesPerSecond;
      const left = Math.max(0, v.sync.totalBytes - v.sync.doneBytes);
      bar = '<div class="bar" data-testid="sync-bar" data-resource="' + esc(r.name) + '" data-percent="' + pct.toFixed(2) + '">' +
        '<div class="fill" style="width:' + pct.toFixed(2) + '%"></div><div class="label">' + esc(v.replication) + " " +
        pct.toFixed(1) + "%</div></div>" + '<div class="barnote">' + mb(speed) + "/s" +
        (speed > 0 ? " · " + eta(left / speed) + " left" : "") + " · " + mb(left) + " to go</div>";
    }
    rows.push("<tr><td><b>" + esc(name) + "</b></td>" +
      '<td data-testid="roles" data-resource="' + esc(r.name) + '">' + chip(r.role, stateClass(r.role)) + " / " + chip(r.peerRole, stateClass(r.peerRole)) + "</td>" +
      "<td>" + chip(v.disk, stateClass(v.disk)) + " / " + chip(v.peerDisk, stateClass(v.peerDisk)) + "</td>" +
      "<td>" + chip(v.replication, stateClass(v.replication)) + "</td>" +
      "<td>" + (v.outOfSyncBytes > 0 ? '<span class="warn">' + mb(v.outOfSyncBytes) + "</span>" : '<span class="dim">0</span>') + "</td>" +
      "<td>" + bar + "</td>" +
      '<td><button data-verify="' + esc(r.name) + '"' + (s.readOnly ? " disabled" : "") + ">Verify</button></td></tr>");
  }
  $("resources").innerHTML = rows.join("") || '<tr><td colspan="7" class="dim">no resources</td></tr>';
}

function drawEvents(s) {
  $("events").innerHTML = s.events.slice().reverse().map((e) =>
    '<li class="' + (e.level === "error" ? "bad" : e.level === "warn" ? "warn" : "") + '"><time>' +
    new Date(e.at).toLocaleTimeString() + "</time>" + esc(e.text) + "</li>").join("");
}

function draw(s) {
  snap = s;
  $("node").textContent = s.node;
  for (const id of ["standby", "takeover"]) {
    $(id).disabled = s.readOnly;
    $(id).title = s.readOnly ? "read-only: no dashboard_token_file in ha.cf" : "";
  }
  drawNodes(s); drawGroups(s); drawResources(s); drawEvents(s);
}

function toast(text, bad) {
  const t = $("toast");
  t.textContent = text; t.className = bad ? "bad" : ""; t.style.display = "block";
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.style.display = "none"; }, 5000);
}

async function act(action, body) {
  let token = sessionStorage.getItem("tandem-token");
  if (!token) {
    token = prompt("Token for the dashboard's actions (ha.cf dashboard_token_file):");
    if (!token) return;
  }
  const res = await fetch("/api/actions/" + action, { method: "POST",
    headers: { "authorization": "Bearer " + token, "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  const out = await res.json().catch(() => ({ message: res.statusText }));
  if (res.status === 401) sessionStorage.removeItem("tandem-token"); else sessionStorage.setItem("tandem-token", token);
  toast(out.message || action + ": " + res.status, !res.ok);
}
$("standby").onclick = () => act("standby");
$("takeover").onclick = () => act("takeover");
$("resources").onclick = (e) => { const r = e.target.getAttribute && e.target.getAttribute("data-verify"); if (r) act("verify", { resource: r }); };

function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("live").className = "dot on"; $("livetext").textContent = "live"; };
  es.onmessage = (m) => draw(JSON.parse(m.data));
  es.onerror = () => { $("live").className = "dot"; $("livetext").textContent = "reconnecting"; };
}
connect();
</script>
</body>
</html>
`;

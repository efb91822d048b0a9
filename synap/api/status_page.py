"""The status page: ``GET /`` redirects to ``GET /ui``, a self-contained HTML page (no
CDN, no JS library) that polls ``GET /ui/status`` every second and draws the group.

``/ui`` itself holds no data and is open; ``/ui/status`` needs an API key when keys are
set, and the page then asks for one (kept in the tab's sessionStorage) and shows only
the public ``/health`` verdict until it has one.

``/ui/status`` is this node's stats plus those of the replicas it serves, fetched from
their HTTP addresses (as announced at the handshake) and, through their own
``replicas`` lists, their sub-replicas: at most ``MAX_DEPTH`` levels and ``MAX_NODES``
nodes, ``PEER_TIMEOUT_S`` per fetch, all in parallel. This node's own API key is sent
to peers only when replication is authenticated (``replication.auth_secret``): an
unauthenticated peer could announce any address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from synap.replication.peer_fields import escape_text

if TYPE_CHECKING:
    from synap.api.services import StatusServices

MAX_DEPTH = 3
MAX_NODES = 32
PEER_TIMEOUT_S = 1.0

# What the page shows of each node; the same names as the stats JSON.
_FIELDS = (
    "role",
    "replica_id",
    "master_offset",
    "replica_offset",
    "lag_operations",
    "lag_ms",
    "connected",
    "synced",
    "state",
    "master_address",
    "last_error",
    "writes_paused",
    "sync_full",
    "sync_partial_ok",
    "sync_partial_err",
    "full_syncs",
    "partial_syncs",
    "replication_id",
)


def _summary(stats: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: stats.get(k) for k in _FIELDS}
    offset = stats.get("replica_offset")
    out["offset"] = offset if offset is not None else stats.get("master_offset")
    return out


def _entry(view: Mapping[str, Any], parent: str | None) -> dict[str, Any]:
    """A node as its master sees it (``replicas[]`` of the master's stats)."""
    return {
        "id": escape_text(view.get("id")),
        "address": escape_text(view.get("address")),
        "parent": parent,
        "seen_by_master": {
            k: view.get(k) for k in ("offset", "lag_operations", "lag_ms", "state", "lagging")
        },
        "reachable": None,
        "error": None,
        "stats": None,
    }


async def group_status(node: StatusServices) -> dict[str, Any]:
    stats = node.replication.stats()
    ok, status, replication = node.replication.health()
    me = {
        "id": node.node_id,
        "address": "{}:{}".format(*node.http_address) if node.http_address else None,
        "parent": None,
        "self": True,
        "health": status,
        "reachable": True,
        "error": None,
        "stats": _summary(stats),
        "seen_by_master": None,
    }
    nodes: list[dict[str, Any]] = [me]
    headers: dict[str, str] = {}
    keys = node.config.server.api_keys
    if keys and node.config.replication.auth_secret:
        headers["authorization"] = f"Bearer {keys[0]}"
    level = [_entry(r, node.node_id) for r in stats.get("replicas") or []]
    seen = {node.node_id}
    async with httpx.AsyncClient(timeout=PEER_TIMEOUT_S, headers=headers) as client:
        for _ in range(MAX_DEPTH):
            level = [e for e in level if e["id"] not in seen][: MAX_NODES - len(nodes)]
            if not level:
                break
            seen.update(e["id"] for e in level)
            nodes.extend(level)
            results = await asyncio.gather(*(_fetch(client, e) for e in level))
            level = [
                _entry(r, e["id"])
                for e, peer in zip(level, results, strict=True)
                if peer is not None
                for r in peer.get("replicas") or []
            ]
    return {"time": time.time(), "master": _master_of(nodes), "nodes": nodes}


def _master_of(nodes: list[dict[str, Any]]) -> str | None:
    for n in nodes:
        stats = n.get("stats") or {}
        if stats.get("role") == "master":
            return str(n["id"])
    return None


async def _fetch(client: httpx.AsyncClient, entry: dict[str, Any]) -> dict[str, Any] | None:
    try:
        response = await client.get(f"http://{entry['address']}/api/replication/stats")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        entry["reachable"] = False
        entry["error"] = f"unreachable: {type(exc).__name__}"
        return None
    entry["reachable"] = True
    if response.status_code != 200:
        entry["error"] = f"HTTP {response.status_code} from its stats"
        return None
    try:
        body = response.json()
    except ValueError:
        entry["error"] = "its stats are not JSON"
        return None
    if not isinstance(body, dict):
        entry["error"] = "its stats are not a JSON object"
        return None
    entry["stats"] = _summary(body)
    return body


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Synap status</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em} .muted{color:#777}
table{border-collapse:collapse;margin:.8em 0;background:#fff}
td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f0f0f0} .ok{color:#07702a} .bad{color:#b00020;font-weight:bold}
.warn{color:#a65e00} svg{background:#fff;border:1px solid #ddd}
#auth{display:none;margin:.8em 0}
</style></head><body>
<h1>Synap status</h1>
<div id="summary" class="muted">loading…</div>
<div id="auth">This node needs an API key for its status:
<input id="key" type="password" size="30"> <button id="save">Use key</button></div>
<svg id="topology" width="720" height="160" role="img" aria-label="topology"></svg>
<table id="nodes"><thead><tr><th>node</th><th>address</th><th>role</th><th>offset</th>
<th>lag (records)</th><th>lag (ms)</th><th>link</th><th>full / partial syncs served</th>
<th>syncs performed</th><th>error</th></tr></thead><tbody></tbody></table>
<div>Lag per replica, last 5 minutes (ms)</div>
<svg id="chart" width="720" height="200" role="img" aria-label="lag chart"></svg>
<script>
"use strict";
const POLL_MS = 1000, KEEP_MS = 300000, history = {};
function el(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls; return td;
}
function shortId(id) { return String(id).slice(0, 13); }
function link(n) {
  const s = n.stats || {}, m = n.seen_by_master;
  if (n.reachable === false) return ["unreachable", "bad"];
  if (s.role === "replica") return [s.connected ? "connected" : (s.state || "down"), s.connected ? "ok" : "bad"];
  if (m) return [m.state, m.state === "online" ? "ok" : "warn"];
  return [s.role === "master" ? "master" : (s.role || "?"), "ok"];
}
function headers() {
  const k = sessionStorage.getItem("synap-key");
  return k ? {"Authorization": "Bearer " + k} : {};
}
function drawTopology(nodes) {
  const svg = document.getElementById("topology"); svg.replaceChildren();
  const depth = {}, rows = {};
  for (const n of nodes) {
    depth[n.id] = n.parent && depth[n.parent] !== undefined ? depth[n.parent] + 1 : 0;
    (rows[depth[n.id]] = rows[depth[n.id]] || []).push(n);
  }
  const levels = Object.keys(rows).length;
  svg.setAttribute("height", String(Math.max(80, levels * 60 + 10)));
  const pos = {};
  for (const d in rows) rows[d].forEach((n, i) => {
    pos[n.id] = [(i + 0.5) * 720 / rows[d].length, 30 + d * 60];
  });
  for (const n of nodes) if (n.parent && pos[n.parent]) {
    const [x1, y1] = pos[n.parent], [x2, y2] = pos[n.id], [, cls] = link(n);
    svg.appendChild(el("line", {x1, y1, x2, y2, stroke: cls === "ok" ? "#07702a" : "#b00020",
      "stroke-width": 2, "stroke-dasharray": cls === "ok" ? "" : "5,4"}));
  }
  for (const n of nodes) {
    const [x, y] = pos[n.id], s = n.stats || {}, role = s.role || "replica";
    const g = el("g", {"data-node": n.id, "data-role": role});
    g.appendChild(el("rect", {x: x - 80, y: y - 16, width: 160, height: 32, rx: 6,
      fill: role === "master" ? "#dcefff" : "#eef7ee", stroke: "#555"}));
    g.appendChild(el("text", {x, y: y + 5, "text-anchor": "middle"}, role + " " + (n.address || "")));
    svg.appendChild(g);
  }
}
function drawChart(now) {
  const svg = document.getElementById("chart"); svg.replaceChildren();
  const series = Object.entries(history); let max = 1;
  for (const [, pts] of series) for (const p of pts) max = Math.max(max, p[1]);
  svg.appendChild(el("text", {x: 4, y: 14, fill: "#777"}, String(Math.round(max)) + " ms"));
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
  series.forEach(([id, pts], i) => {
    const d = pts.map(p => ((720 * (1 - (now - p[0]) / KEEP_MS)).toFixed(1) + "," +
      (190 - 170 * p[1] / max).toFixed(1))).join(" ");
    svg.appendChild(el("polyline", {points: d, fill: "none", stroke: colors[i % 5], "stroke-width": 2}));
    const [t, v] = pts[pts.length - 1];
    svg.appendChild(el("circle", {cx: (720 * (1 - (now - t) / KEEP_MS)).toFixed(1),
      cy: (190 - 170 * v / max).toFixed(1), r: 3, fill: colors[i % 5]}));
    svg.appendChild(el("text", {x: 600, y: 16 + 14 * i, fill: colors[i % 5]}, shortId(id)));
  });
}
function render(data) {
  const nodes = data.nodes, now = Date.now();
  const master = nodes.find(n => (n.stats || {}).role === "master");
  document.getElementById("summary").textContent = nodes.length + " node(s); master: " +
    (master ? master.address : "none seen from this node") + "; updated " + new Date().toLocaleTimeString();
  drawTopology(nodes);
  const body = document.querySelector("#nodes tbody"); body.replaceChildren();
  for (const n of nodes) {
    const s = n.stats || {}, m = n.seen_by_master || {}, row = body.insertRow();
    row.dataset.node = n.id; const [state, cls] = link(n);
    row.dataset.link = state;
    cell(row, shortId(n.id) + (n.self ? " (this node)" : ""));
    cell(row, n.address); cell(row, s.role || "?", "role");
    cell(row, s.offset !== undefined && s.offset !== null ? s.offset : m.offset);
    const lagOps = s.role === "replica" ? s.lag_operations : m.lag_operations;
    const lagMs = s.role === "replica" ? s.lag_ms : m.lag_ms;
    cell(row, lagOps); cell(row, lagMs); cell(row, state, cls + " link");
    cell(row, s.role ? (s.sync_full + " / " + s.sync_partial_ok + " (refused " + s.sync_partial_err + ")") : "");
    cell(row, s.role ? (s.full_syncs + " full, " + s.partial_syncs + " partial") : "");
    cell(row, n.error || s.last_error || "", "bad");
    if (n.parent && typeof lagMs === "number") {
      const pts = history[n.id] = history[n.id] || [];
      pts.push([now, lagMs]);
      while (pts.length && now - pts[0][0] > KEEP_MS) pts.shift();
    }
  }
  drawChart(now);
}
async function poll() {
  try {
    const r = await fetch("/ui/status", {headers: headers(), cache: "no-store"});
    if (r.status === 401) {
      document.getElementById("auth").style.display = "block";
      const h = await fetch("/health", {cache: "no-store"}), body = await h.json();
      document.getElementById("summary").textContent = "health: " + body.status + ", role: " +
        body.role + " (send an API key for the group's status)";
    } else {
      document.getElementById("auth").style.display = "none";
      render(await r.json());
    }
  } catch (e) {
    document.getElementById("summary").textContent = "node unreachable: " + e;
  }
  setTimeout(poll, POLL_MS);
}
document.getElementById("save").onclick = () => {
  sessionStorage.setItem("synap-key", document.getElementById("key").value);
};
poll();
</script></body></html>
"""

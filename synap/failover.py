"""Failover orchestration for ``synap-cli``: the planned switchover and the unplanned
promotion, driven from outside over each node's HTTP admin API.

Planned switchover (``synap-cli failover``), Redis ``FAILOVER`` done step by step::

    1. read the master's stats; pick the target (``--to``, or the replica that has
       acknowledged the highest offset)
    2. pause writes on the master with a *lease* (POST /api/replication/pause
       {"seconds": timeout + margin}): clients get TRYAGAIN / HTTP 503 and retry
    3. wait until the target's replica_offset equals the (now frozen) master offset;
       on timeout resume the master and stop: nothing changed
    4. turn the lease into a *fence* ({"seconds": null}: paused until resumed or
       demoted), so that from here on the old master cannot take writes again even if
       this tool dies: the failure mode is "no writable master", never "two masters"
    5. promote the target (POST /api/replication/promote): it keeps dataset and offset
       and starts a new replication id that remembers the old one (PSYNC2)
    6. repoint the old master to the target's replica listener (its demotion also ends
       the fence: it answers READONLY from now on), then the other replicas; all of
       them continue by partial sync
    7. check that they follow the new master and say whether any needed a full sync

Zero acknowledged writes are lost: every write the master acknowledged before the pause
is in the target's history by step 3, and the master acknowledges none after it.

Unplanned promotion (``synap-cli promote``), what Sentinel does after an ODOWN, minus
the voting: ask every listed node for its stats, keep the reachable replicas whose
dataset is complete, group them by the history they follow (replication id), take the
largest group (never a replica of another history: promoting it would make everybody
else full-sync to a dataset they never had), promote the one with the highest offset and
repoint the rest of its group to it. They continue by partial sync. The dead master must
not come back as a master: see docs/OPERATIONS.md.

The choice of node is made by pure functions (:func:`pick_switchover_target`,
:func:`plan_promotion`) so each rule is a unit test; the rest only makes HTTP calls and
prints what it does.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from synap.http_errors import http_problem, is_auth_status

Echo = Callable[[str], None]

# Each admin call is small; a node that does not answer in this time is treated as down.
REQUEST_TIMEOUT_S = 5.0
# Probing the nodes for ``promote``: some of them are expected to be dead, and a frozen
# one would otherwise hold the whole command for the full request timeout.
PROBE_TIMEOUT_S = 2.0
# The catch-up wait polls the target this often. Replication on one LAN takes well under
# a millisecond per batch, so polling dominates the time writes stay paused.
POLL_INTERVAL_S = 0.005
# The first pause outlives the catch-up wait by this much, so the lease cannot run out
# while we still act on the result of the wait.
PAUSE_MARGIN_S = 5.0
# After repointing, wait at most this long to report that the nodes follow the new master.
VERIFY_TIMEOUT_S = 5.0

_ANY_HOST = ("0.0.0.0", "::", "[::]", "")


class FailoverError(Exception):
    """A step failed; the message says what state the nodes were left in."""


# ------------------------------------------------------------------------- addresses


def normalize_url(url: str) -> str:
    """``host:port`` or ``http://host:port/`` -> ``http://host:port``."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def url_hostport(url: str) -> str:
    """``http://host:port`` -> ``host:port`` (what the master's stats call ``address``)."""
    return urlsplit(normalize_url(url)).netloc


def routable(listen_address: str, node_url: str) -> str:
    """The address other nodes use to reach a replica listener.

    A listener bound to every interface (``0.0.0.0:15501``) is reached on the host
    the operator used for the node's HTTP API."""
    host, _, port = listen_address.rpartition(":")
    if host in _ANY_HOST:
        host = urlsplit(normalize_url(node_url)).hostname or "127.0.0.1"
    return f"{host}:{port}"


# ------------------------------------------------------------------------- choices


def pick_switchover_target(replicas: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The master's replica to promote when none is named: an online one with the
    highest acknowledged offset; ties go to the lower lag, then the lower address
    (so the choice is repeatable). None if no replica is online."""
    online = [r for r in replicas if r.get("state") == "online"]
    if not online:
        return None
    return min(online, key=lambda r: (-int(r["offset"]), int(r.get("lag_ms") or 0), r["address"]))


@dataclass
class NodeView:
    """One node as ``promote`` saw it: its stats, or why it could not be read."""

    url: str
    stats: dict[str, Any] | None = None
    error: str | None = None

    @property
    def role(self) -> str | None:
        return self.stats["role"] if self.stats else None

    @property
    def replid(self) -> str | None:
        return self.stats.get("replication_id") if self.stats else None

    @property
    def offset(self) -> int:
        if not self.stats:
            return -1
        value = self.stats.get("replica_offset", self.stats.get("master_offset"))
        return int(value) if value is not None else -1


@dataclass
class PromotionPlan:
    candidate: NodeView
    followers: list[NodeView]  # same history: repointed to the candidate
    foreign: list[NodeView] = field(default_factory=list)  # another history: left alone
    skipped: list[tuple[NodeView, str]] = field(default_factory=list)


class PlanError(Exception):
    """No safe promotion exists; the message says why and what to do instead."""


def plan_promotion(views: list[NodeView]) -> PromotionPlan:
    """Choose the replica to promote after the master died.

    Rules, in order:

    1. A reachable master means this is not an unplanned failover: refuse (use
       ``synap-cli failover``, or stop that master first).
    2. Unreachable nodes, standalone nodes and replicas in the middle of a full sync
       (their dataset is incomplete) are not candidates.
    3. Replicas are grouped by the history they follow (replication id). The largest
       group is the dead master's history; a tie is refused, since nothing here says
       which history is the real one. Replicas of another history are neither promoted
       nor repointed (repointing them would wipe them with a full sync).
    4. In that group: the highest offset wins (Sentinel: lowest priority, then highest
       offset, then smallest run id); then a node that already runs a replica listener;
       then the order the nodes were given in.
    """
    skipped: list[tuple[NodeView, str]] = []
    masters = [v for v in views if v.role == "master"]
    if masters:
        names = ", ".join(f"{v.url} (offset {v.offset})" for v in masters)
        raise PlanError(
            f"{names} is a reachable master, so there is nothing to fail over from. For a "
            "planned switchover run `synap-cli failover --node MASTER_URL`; to replace that "
            "master anyway, stop it first (and keep it from coming back as a master)"
        )
    replicas: list[NodeView] = []
    for view in views:
        if view.stats is None:
            error = view.error or ""
            auth = "authentication problem" in error
            skipped.append((view, error if auth else f"unreachable ({error})"))
        elif view.role != "replica":
            skipped.append((view, f"role {view.role}, not a replica"))
        elif view.stats.get("sync_in_progress"):
            skipped.append((view, "in the middle of a full sync (incomplete dataset)"))
        else:
            replicas.append(view)
    if not replicas:
        raise PlanError("no reachable replica with a complete dataset to promote")
    groups = Counter(v.replid for v in replicas)
    ranked = groups.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        tied = [replid for replid, count in ranked if count == ranked[0][1]]
        raise PlanError(
            "the replicas follow different histories with no majority ("
            + ", ".join(
                f"{replid}: " + ", ".join(v.url for v in replicas if v.replid == replid)
                for replid in tied
            )
            + "); promote one yourself with POST /api/replication/promote"
        )
    history = ranked[0][0]
    group = [v for v in replicas if v.replid == history]
    foreign = [v for v in replicas if v.replid != history]
    order = {id(v): i for i, v in enumerate(views)}
    candidate = min(
        group,
        key=lambda v: (
            -v.offset,
            0 if v.stats and v.stats.get("replica_listen_address") else 1,
            order[id(v)],
        ),
    )
    followers = [v for v in group if v is not candidate]
    return PromotionPlan(candidate, followers, foreign, skipped)


# ------------------------------------------------------------------------- HTTP


class Session:
    """One HTTP connection pool for every node a command talks to.

    A single ``httpx.Client`` because building one costs 50-80 ms (its TLS context),
    time that would otherwise pass while writes are paused. Plain ``http://`` URLs
    never use TLS, so the context is only built when some URL is ``https://``."""

    def __init__(self, api_key: str | None, urls: Iterable[str]) -> None:
        tls = any(normalize_url(u).startswith("https://") for u in urls)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # TCP_NODELAY: httpx writes a POST's headers and body separately, and Nagle plus
        # the server's delayed ACK would hold the body back ~40 ms per request.
        transport = httpx.HTTPTransport(
            verify=tls, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self.http = httpx.Client(headers=headers, transport=transport, timeout=REQUEST_TIMEOUT_S)
        self._nodes: dict[str, NodeClient] = {}

    def node(self, url: str, timeout: float = REQUEST_TIMEOUT_S) -> NodeClient:
        url = normalize_url(url)
        key = f"{url} {timeout}"
        if key not in self._nodes:
            self._nodes[key] = NodeClient(self.http, url, timeout)
        return self._nodes[key]

    def close(self) -> None:
        self.http.close()


class NodeClient:
    """The admin API of one node; every failure becomes a :class:`FailoverError`."""

    def __init__(self, http: httpx.Client, url: str, timeout: float = REQUEST_TIMEOUT_S):
        self.url = normalize_url(url)
        self._http = http
        self._timeout = timeout

    def stats(self) -> dict[str, Any]:
        return self._request("GET", "/api/replication/stats")

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, self.url + path, json=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise FailoverError(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if data is None and not is_auth_status(response.status_code):
            raise FailoverError(f"{self.url}{path}: HTTP {response.status_code}, not JSON")
        if response.status_code >= 400:
            key_given = "authorization" in self._http.headers
            raise FailoverError(
                f"{self.url}{path}: {http_problem(response.status_code, data, key_given)}"
            )
        if not isinstance(data, dict):
            raise FailoverError(f"{self.url}{path}: unexpected answer {data!r}")
        return data


class _Steps:
    """Prints each step with the time since the command started."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.started:7.3f}s] {text}")


# ------------------------------------------------------------------------- switchover


def run_failover(
    node: str,
    target: str | None,
    timeout: float,
    api_key: str | None,
    echo: Echo,
    *,
    replica_listen: str | None = None,
) -> bool:
    """Planned switchover with zero loss of acknowledged writes (module docstring).

    ``node`` is the master's HTTP URL, ``target`` a replica's (None: the most up to date
    one), ``timeout`` the seconds allowed for the target to catch up. ``replica_listen``
    is the replica listener the target opens when it has none yet (default: the
    target's ``replication.replica_listen_address``). Returns True when the target is
    the new master and every other node follows it."""
    step = _Steps(echo)
    session = Session(api_key, [node, target or ""])
    try:
        return _switchover(session.node, node, target, timeout, replica_listen, step)
    except FailoverError as exc:
        step(f"FAILED: {exc}")
        return False
    finally:
        session.close()


def _switchover(
    client: Callable[[str], NodeClient],
    node: str,
    target: str | None,
    timeout: float,
    replica_listen: str | None,
    step: _Steps,
) -> bool:
    master = client(node)
    ms = master.stats()
    if ms["role"] != "master":
        raise FailoverError(
            f"{master.url} is a {ms['role']}, not a master: give --node the current master"
        )
    replicas: list[dict[str, Any]] = ms.get("replicas") or []
    if target is not None:
        wanted = url_hostport(target)
        entry = next((r for r in replicas if r["address"] == wanted), None)
        target_url = normalize_url(target)
    else:
        entry = pick_switchover_target(replicas)
        if entry is None:
            raise FailoverError(f"{master.url} has no online replica to fail over to")
        target_url = normalize_url(entry["address"])
    tgt = client(target_url)
    ts = tgt.stats()
    if ts["role"] != "replica" or ts.get("replication_id") != ms["replication_id"]:
        raise FailoverError(
            f"{target_url} does not follow {master.url} (it is a {ts['role']} of history "
            f"{ts.get('replication_id')}, the master's is {ms['replication_id']})"
        )
    others = [r for r in replicas if r is not entry and r["address"] != url_hostport(target_url)]
    before = {master.url: ms}
    for r in others:
        try:
            before[normalize_url(r["address"])] = client(r["address"]).stats()
        except FailoverError:
            pass  # reported when it is repointed
    step(
        f"master {master.url}: offset {ms['master_offset']}, id {ms['replication_id']}, "
        f"{len(replicas)} replica(s)"
    )
    step(
        f"target {target_url}: offset {ts['replica_offset']} "
        f"(lag {ts['lag_operations']} ops), listener {ts.get('replica_listen_address')}"
    )
    listen = replica_listen or ts.get("replica_listen_address")

    # 2. Pause with a lease: if we die now, the master resumes by itself.
    lease = timeout + PAUSE_MARGIN_S
    paused = master.post("/api/replication/pause", {"seconds": lease})
    frozen = int(paused["master_offset"])
    paused_at = time.monotonic()
    step(f"paused writes on {master.url} at offset {frozen} (lease {lease:g}s)")

    # 3. Wait for the target.
    caught_up = _wait_offset(tgt, ms["replication_id"], frozen, timeout)
    if caught_up is not True:
        master.post("/api/replication/resume")
        step(
            f"ABORTED: {target_url} did not reach offset {frozen} within {timeout:g}s "
            f"({caught_up}); writes resumed on {master.url}, nothing changed"
        )
        return False
    step(f"{target_url} caught up at offset {frozen}")

    # 4. Fence: from here the old master stays paused until it is demoted.
    fenced = master.post("/api/replication/pause", {"seconds": None})
    if int(fenced["master_offset"]) != frozen or fenced["role"] != "master":
        master.post("/api/replication/resume")
        raise FailoverError(
            f"{master.url} moved to offset {fenced['master_offset']} (role {fenced['role']}) "
            "while paused; writes resumed there, nothing changed. Was it resumed by someone else?"
        )

    # 5. Promote.
    body = {"replica_listen_address": listen} if listen else None
    try:
        promoted = tgt.post("/api/replication/promote", body)
    except FailoverError as exc:
        state = _role_of(tgt)
        if state != "master":
            master.post("/api/replication/resume")
            raise FailoverError(
                f"promoting the target failed ({exc}); it is still a {state}. "
                f"Writes resumed on {master.url}, nothing changed"
            ) from None
        now = tgt.stats()  # it did become master; only the answer was lost
        promoted = {
            "replication_id": now["replication_id"],
            "offset": now["master_offset"],
            "replica_listen_address": now.get("replica_listen_address"),
        }
    new_id = promoted["replication_id"]
    if not promoted.get("replica_listen_address"):
        raise FailoverError(
            f"{target_url} is the new master but runs no replica listener; the old master "
            f"{master.url} stays fenced (writes paused). Promote it again with a "
            '{"replica_listen_address": "host:port"} body, then repoint the others'
        )
    new_address = routable(promoted["replica_listen_address"], target_url)
    step(
        f"promoted {target_url}: new replication id {new_id}, offset {promoted['offset']}, "
        f"replica listener {new_address}; it accepts writes "
        f"(writes were paused {time.monotonic() - paused_at:.3f}s)"
    )

    # 6. Demote the old master (this also ends its fence), then the other replicas.
    try:
        master.post("/api/replication/replicaof", {"master_address": new_address})
    except FailoverError as exc:
        raise FailoverError(
            f"could not repoint the old master ({exc}). It is fenced (writes paused until "
            "resumed or demoted), so it takes no writes. Repoint it now: curl -X POST "
            f'{master.url}/api/replication/replicaof -d \'{{"master_address": "{new_address}"}}\''
        ) from None
    step(f"old master {master.url} now replicates from {new_address}")
    ok = True
    for r in others:
        url = normalize_url(r["address"])
        try:
            client(url).post("/api/replication/replicaof", {"master_address": new_address})
            step(f"replica {url} now replicates from {new_address}")
        except FailoverError as exc:
            ok = False
            step(
                f"WARNING: could not repoint {url} ({exc}); it still follows the old "
                "master, which now forwards the new master's stream to it"
            )

    # 7. Check.
    ok = _verify(client, before, new_id, new_address, step) and ok
    step(f"switchover {'complete' if ok else 'done with warnings'}: {target_url} is the master")
    return ok


def _wait_offset(tgt: NodeClient, replid: str, offset: int, timeout: float) -> bool | str:
    """True once the target applied ``offset`` of history ``replid``; else what it showed."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            s = tgt.stats()
            if s.get("replication_id") == replid and s.get("replica_offset") == offset:
                return True
            last = (
                f"at offset {s.get('replica_offset')}, role {s.get('role')}, "
                f"connected {s.get('connected')}"
            )
        except FailoverError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            return last
        time.sleep(POLL_INTERVAL_S)


def _role_of(c: NodeClient) -> str:
    try:
        return str(c.stats()["role"])
    except FailoverError as exc:
        return f"unknown ({exc})"


def _verify(
    client: Callable[[str], NodeClient],
    before: dict[str, dict[str, Any]],
    new_id: str,
    new_address: str,
    step: _Steps,
) -> bool:
    """Wait (bounded) until every repointed node streams the new history; report how
    each one got there (a full sync means it had diverged or fell out of the log)."""
    pending = dict(before)
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                s = client(url).stats()
            except FailoverError:
                continue
            if s.get("connected") and s.get("replication_id") == new_id:
                full = int(s.get("full_syncs", 0)) - int(pending[url].get("full_syncs", 0))
                how = "by FULL sync (it had diverged)" if full > 0 else "by partial sync"
                step(f"{url} follows the new master at offset {s['replica_offset']}, {how}")
                del pending[url]
        if pending:
            time.sleep(0.05)
    for url in pending:
        step(
            f"WARNING: {url} is not streaming from {new_address} yet after "
            f"{VERIFY_TIMEOUT_S:g}s; check `synap-cli replication status --node {url}`"
        )
    return not pending


# ------------------------------------------------------------------------- promotion


def run_promote(
    nodes: list[str],
    api_key: str | None,
    replica_listen: str | None,
    dry_run: bool,
    echo: Echo,
) -> bool:
    """Unplanned failover (module docstring): promote the most up-to-date reachable
    replica of the dead master's history and repoint the rest of that history to it."""
    step = _Steps(echo)
    session = Session(api_key, nodes)
    client = session.node
    try:
        views = []
        for url in nodes:
            probe = session.node(url, timeout=PROBE_TIMEOUT_S)
            try:
                views.append(NodeView(probe.url, stats=probe.stats()))
            except FailoverError as exc:
                views.append(NodeView(probe.url, error=str(exc)))
        for v in views:
            if v.stats is None:
                auth = "authentication problem" in (v.error or "")
                step(f"{v.url}: {v.error}" if auth else f"{v.url}: unreachable")
            else:
                step(
                    f"{v.url}: {v.role}, id {v.replid}, offset {v.offset}"
                    + (
                        f", following {v.stats.get('master_address')}"
                        if v.role == "replica"
                        else ""
                    )
                )
        try:
            plan = plan_promotion(views)
        except PlanError as exc:
            step(f"REFUSED: {exc}")
            return False
        cand = plan.candidate
        step(
            f"candidate {cand.url}: offset {cand.offset} of history {cand.replid}"
            + "".join(f"; {f.url} at {f.offset}" for f in plan.followers)
        )
        for view, why in plan.skipped:
            step(f"not considered: {view.url}: {why}")
        for view in plan.foreign:
            step(
                f"WARNING: {view.url} follows another history ({view.replid}); left alone. "
                "Repointing it would replace its dataset by a full sync"
            )
        if dry_run:
            step("dry run: nothing changed")
            return True

        listen = replica_listen or (cand.stats or {}).get("replica_listen_address")
        if not listen:
            step("the candidate runs no replica listener: it opens its configured one")
        body = {"replica_listen_address": listen} if listen else None
        try:
            promoted = client(cand.url).post("/api/replication/promote", body)
        except FailoverError as exc:
            step(f"FAILED to promote {cand.url}: {exc}; nothing changed")
            return False
        new_address = routable(promoted["replica_listen_address"], cand.url)
        new_id = promoted["replication_id"]
        step(
            f"promoted {cand.url}: new replication id {new_id} (continues "
            f"{promoted.get('previous_replication_id')} up to offset {promoted['offset']}), "
            f"replica listener {new_address}; it accepts writes"
        )
        ok = True
        before: dict[str, dict[str, Any]] = {}
        for f in plan.followers:
            try:
                client(f.url).post("/api/replication/replicaof", {"master_address": new_address})
                step(f"replica {f.url} now replicates from {new_address}")
                assert f.stats is not None
                before[f.url] = f.stats
            except FailoverError as exc:
                ok = False
                step(f"WARNING: could not repoint {f.url}: {exc}")
        ok = _verify(client, before, new_id, new_address, step) and ok
        step(
            "REMEMBER: the old master must not come back as a master. Start it with "
            f"--role replica --master-address {new_address}, or repoint it the moment it "
            "is up (see docs/OPERATIONS.md)"
        )
        return ok
    finally:
        session.close()

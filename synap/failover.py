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
    7. verify the end state: exactly one master (the target) and every other node a
       replica connected to it, on its history; otherwise exit non-zero, printing each
       node's state and the command that fixes it

In an etcd group (``replication.failover.mode: etcd``) steps 1-4 are the same; then,
instead of promoting and repointing by hand, the master is asked to hand its leader key
to the target (POST /api/replication/handoff {"to": node_id}): it fences itself, writes
a short-lived hint naming the target and deletes its leader key in one etcd
transaction; only the target campaigns and wins with epoch + 1, and every other node
(the old master included) follows it by the election, by partial sync. Step 7 checks
each node's stats and GET /api/replication/leader.

Nodes are matched by their replica id (``replica_id`` in each node's stats, ``id`` in a
master's list of replicas), never by how an address is spelled: ``localhost:5500``,
``127.0.0.1:5500`` and ``http://localhost:5500`` are the same node.

Zero acknowledged writes are lost: every write the master acknowledged before the pause
is in the target's history by step 3, and the master acknowledges none after it.

Unplanned promotion (``synap-cli promote``), what Sentinel does after an ODOWN, minus
the voting: ask every listed node for its stats, keep the reachable replicas whose
dataset is complete, group them by the history they follow (replication id), take the
largest group (never a replica of another history: promoting it would make everybody
else full-sync to a dataset they never had), promote the one with the highest offset and
repoint the rest of its group to it. They continue by partial sync. The same end-state
check follows. The dead master must not come back as a master: see docs/OPERATIONS.md.

The choice of node is made by pure functions (:func:`pick_switchover_target`,
:func:`plan_promotion`) so each rule is a unit test; the rest only makes HTTP calls and
prints what it does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from synap.admin_client import (
    AdminError,
    NodeClient,
    Session,
    normalize_url,
)
from synap.replication.stats import MasterStats, ReplicaEntry, ReplicaStats, ReplicationStats

Echo = Callable[[str], None]

# Each admin call is small; a node that does not answer in this time is treated as down.
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


# A step failed; the message says what state the nodes were left in.
FailoverError = AdminError


# ------------------------------------------------------------------------- addresses


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


def pick_switchover_target(replicas: Iterable[ReplicaEntry]) -> ReplicaEntry | None:
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
    stats: ReplicationStats | None = None
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
        s = self.stats
        return s["replica_offset"] if s["role"] == "replica" else s["master_offset"]


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
            + "); promote one yourself with `synap-cli replicaof --node URL --no-one`"
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


def _dedupe(views: list[NodeView], step: Echo) -> list[NodeView]:
    """One view per node: the same node listed under two spellings (``localhost`` and
    ``127.0.0.1``) has one replica id."""
    out: list[NodeView] = []
    ids: dict[str, str] = {}
    for v in views:
        rid = v.stats.get("replica_id") if v.stats else None
        if rid is not None and rid in ids:
            step(f"{v.url} is the same node as {ids[rid]} (replica id {rid}); counted once")
            continue
        if rid is not None:
            ids[rid] = v.url
        out.append(v)
    return out


# ------------------------------------------------------------------------- HTTP


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
    etcd = (ms.get("failover") or {}).get("mode") == "etcd"
    if etcd and not ms["failover"].get("is_leader"):
        raise FailoverError(
            f"{master.url} does not hold the leader key of etcd group "
            f"{ms['failover'].get('group')!r} (leader: {ms['failover'].get('leader')}); "
            "give --node the elected master. Nothing changed"
        )
    master_id = ms.get("replica_id")
    replicas: list[ReplicaEntry] = ms.get("replicas") or []
    if target is not None:
        target_url = normalize_url(target)
        tgt = client(target_url)
        ts = tgt.stats()
        target_id = ts.get("replica_id")
        if target_id == master_id:
            raise FailoverError(
                f"--to {target} is the master {master.url} itself (same replica id "
                f"{master_id}); give --to a replica of it, or leave --to out"
            )
        entry = next((r for r in replicas if r.get("id") == target_id), None)
        if entry is None:
            listed = ", ".join(f"{r.get('id')} at {r.get('address')}" for r in replicas)
            raise FailoverError(
                f"{target_url} (replica id {target_id}, role {ts['role']}) is not a replica "
                f"connected to {master.url}; its replicas are: {listed or 'none'}. "
                "Nothing changed"
            )
    else:
        pool = replicas
        if etcd:
            pool = [r for r in replicas if _may_lead(client, r)]
        entry = pick_switchover_target(pool)
        if entry is None:
            raise FailoverError(f"{master.url} has no online replica to fail over to")
        target_url = normalize_url(entry["address"])
        tgt = client(target_url)
        ts = tgt.stats()
        target_id = ts.get("replica_id")
        if target_id != entry.get("id"):
            raise FailoverError(
                f"{target_url}, the address replica {entry.get('id')} announces, answers as "
                f"{target_id}; give the replica's HTTP URL with --to. Nothing changed"
            )
    if ts["role"] != "replica" or ts.get("replication_id") != ms["replication_id"]:
        raise FailoverError(
            f"{target_url} does not follow {master.url} (it is a {ts['role']} of history "
            f"{ts.get('replication_id')}, the master's is {ms['replication_id']})"
        )
    # Every other replica of the master, by id: never the target, never the master.
    others = [r for r in replicas if r.get("id") not in (target_id, master_id)]
    before: dict[str, ReplicationStats] = {master.url: ms}
    other_urls: list[str] = []
    for r in others:
        url = normalize_url(r["address"])
        other_urls.append(url)
        try:
            before[url] = client(url).stats()
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

    if etcd:
        return _etcd_handoff(client, master, ms, tgt, ts, other_urls, before, paused_at, step)

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
        f"replica listener bound on {promoted['replica_listen_address']} (reached as "
        f"{new_address}); it accepts writes "
        f"(writes were paused {time.monotonic() - paused_at:.3f}s)"
    )

    # 6. Demote the old master (this also ends its fence), then the other replicas.
    try:
        master.post("/api/replication/replicaof", {"master_address": new_address})
    except FailoverError as exc:
        raise FailoverError(
            f"could not repoint the old master ({exc}). It is fenced (writes paused until "
            "resumed or demoted), so it takes no writes. Repoint it now: "
            f"synap-cli replicaof --node {master.url} --master {new_address}"
        ) from None
    step(f"old master {master.url} now replicates from {new_address}")
    for r, url in zip(others, other_urls, strict=True):
        _repoint(client, url, str(r.get("id")), target_id, new_address, step)

    # 7. Verify the end state.
    ok = verify_group(client, target_url, [master.url, *other_urls], new_address, step, before)
    if ok:
        step(f"switchover complete: {target_url} is the master")
    else:
        step(f"switchover FAILED to converge: see the state above ({target_url} was promoted)")
    return ok


def _may_lead(client: Callable[[str], NodeClient], entry: ReplicaEntry) -> bool:
    """In an etcd group: whether the master's replica ``entry`` may be elected
    (priority > 0), read from its own stats; False when it cannot be read."""
    try:
        status = client(normalize_url(entry["address"])).stats().get("failover") or {}
    except FailoverError:
        return False
    return int(status.get("priority") or 0) > 0


def _etcd_handoff(
    client: Callable[[str], NodeClient],
    master: NodeClient,
    ms: MasterStats,
    tgt: NodeClient,
    ts: ReplicaStats,
    other_urls: list[str],
    before: dict[str, ReplicationStats],
    paused_at: float,
    step: _Steps,
) -> bool:
    """Steps 5-7 in an etcd group: the (fenced, caught-up) master hands its leader key
    to the target; the election does the rest; then the end state is checked."""
    info = ms["failover"]
    group = info.get("group")
    epoch = int(info.get("epoch") or 0)
    target_id = (ts.get("failover") or {}).get("node_id")
    if not target_id:
        master.post("/api/replication/resume")
        raise FailoverError(
            f"{tgt.url} is not in etcd mode (no failover.node_id in its stats); writes "
            f"resumed on {master.url}, nothing changed"
        )
    try:
        master.post("/api/replication/handoff", {"to": target_id})
    except FailoverError as exc:
        master.post("/api/replication/resume")
        raise FailoverError(
            f"the master refused to hand over its leadership ({exc}); writes resumed on "
            f"{master.url}. If it kept the leader key nothing changed; check with "
            f"synap-cli group status --etcd URL --group {group}"
        ) from None
    step(f"{master.url} handed the leader key of group {group!r} (epoch {epoch}) to {target_id}")

    deadline = time.monotonic() + VERIFY_TIMEOUT_S + 2 * float(info.get("lease_ttl_secs") or 3)
    now: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            now = dict(tgt.stats())
        except FailoverError:
            now = {}
        fo = now.get("failover") or {}
        if now.get("role") == "master" and fo.get("is_leader") and fo.get("epoch", 0) > epoch:
            break
        time.sleep(0.05)
    else:
        step(
            f"FAILED: {tgt.url} did not win the election within the handoff window (it is a "
            f"{now.get('role', 'unreachable node')}); the hint expires after one lease TTL "
            "and the group elects its best candidate by itself. Check with "
            f"synap-cli group status --etcd URL --group {group}"
        )
        verify_group(client, tgt.url, [master.url, *other_urls], "?", step, before, timeout=0)
        return False
    new_epoch = int(now["failover"]["epoch"])
    step(
        f"{tgt.url} won the election: epoch {new_epoch}, new replication id "
        f"{now.get('replication_id')}, offset {now.get('master_offset')} "
        f"(writes were paused {time.monotonic() - paused_at:.3f}s)"
    )
    new_address = routable(str(now.get("replica_listen_address")), tgt.url)
    ok = verify_group(client, tgt.url, [master.url, *other_urls], new_address, step, before)
    if ok:
        ok = _verify_leader_views(client, [tgt.url, master.url, *other_urls], target_id, step)
    if ok:
        step(f"switchover complete: {tgt.url} is the master (epoch {new_epoch})")
    else:
        step(
            "switchover FAILED to converge: roles come from the election in etcd mode; "
            f"check synap-cli group status --etcd URL --group {group} and each node's log"
        )
    return ok


def _verify_leader_views(
    client: Callable[[str], NodeClient], urls: list[str], leader_id: str, step: _Steps
) -> bool:
    """Wait (bounded) until every node's GET /api/replication/leader names ``leader_id``."""
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    while True:
        wrong = []
        for url in urls:
            try:
                view = client(url)._request("GET", "/api/replication/leader")
                named = (view.get("master") or {}).get("id")
            except FailoverError as exc:
                named = f"unknown ({exc})"
            if named != leader_id:
                wrong.append(f"{url} names {named}")
        if not wrong:
            step(f"verified: every node's /api/replication/leader names {leader_id}")
            return True
        if time.monotonic() >= deadline:
            step("FAILED: " + "; ".join(wrong))
            return False
        time.sleep(0.1)


def _repoint(
    client: Callable[[str], NodeClient],
    url: str,
    expected_id: str | None,
    new_master_id: str | None,
    new_address: str,
    step: _Steps,
) -> None:
    """Repoint one replica to the new master, after checking by its id that ``url`` is
    the node we mean and not the new master itself. Failures are reported; the final
    check decides the outcome."""
    node = client(url)
    try:
        found = node.stats().get("replica_id")
    except FailoverError as exc:
        step(f"WARNING: could not reach {url} to repoint it ({exc})")
        return
    if found == new_master_id:
        step(f"not repointing {url}: it is the new master")
        return
    if expected_id is not None and found != expected_id:
        step(
            f"WARNING: not repointing {url}: it answers as {found}, not {expected_id} "
            "(the address it announces reaches another node)"
        )
        return
    try:
        node.post("/api/replication/replicaof", {"master_address": new_address})
    except FailoverError as exc:
        step(f"WARNING: could not repoint {url} ({exc})")
        return
    step(f"replica {url} now replicates from {new_address}")


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


@dataclass
class _Seen:
    """One node in the end-state check."""

    url: str
    stats: ReplicationStats | None
    error: str | None = None

    @property
    def id(self) -> str | None:
        return self.stats.get("replica_id") if self.stats else None

    def describe(self) -> str:
        s = self.stats
        if s is None:
            return f"{self.url}: UNREACHABLE ({self.error})"
        text = (
            f"{self.url}: {s['role']}, id {s.get('replica_id')}, history {s.get('replication_id')}"
        )
        if s["role"] == "replica":
            text += (
                f", follows {s.get('master_address')}, connected {s.get('connected')}, "
                f"offset {s.get('replica_offset')}"
            )
            if s.get("last_error"):
                text += f", last error: {s['last_error']}"
        else:
            text += f", offset {s.get('master_offset')}, {len(s.get('replicas') or [])} replica(s)"
            if s.get("writes_paused"):
                text += ", WRITES PAUSED"
        if s.get("last_role_error"):
            text += f", refused: {s['last_role_error']}"
        return text


def _look(client: Callable[[str], NodeClient], urls: list[str]) -> list[_Seen]:
    seen = []
    for url in urls:
        try:
            seen.append(_Seen(url, client(url).stats()))
        except FailoverError as exc:
            seen.append(_Seen(url, None, str(exc)))
    return seen


def _problems(master: _Seen, others: list[_Seen]) -> list[str]:
    """Why the group is not "exactly one master, every other node follows it"; empty
    when it is. Nodes are told apart by replica id."""
    problems = []
    ms = master.stats
    if ms is None or ms["role"] != "master":
        problems.append(
            f"{master.url} should be the master but is {ms['role'] if ms else 'unreachable'}"
        )
        ms = None
    online = (
        {r.get("id") for r in ms.get("replicas") or [] if r.get("state") == "online"}
        if ms
        else set()
    )
    for o in others:
        s = o.stats
        if s is None:
            problems.append(f"{o.url} is unreachable")
        elif o.id == master.id:
            continue  # the same node listed twice
        elif s["role"] != "replica":
            problems.append(f"{o.url} is a {s['role']}, not a replica of {master.url}")
        elif s.get("sync_in_progress"):
            problems.append(
                f"{o.url} is still in a full sync from its master (re-check with "
                f"`synap-cli replication status --node {o.url}` when it is done)"
            )
        elif not s.get("connected") or (ms and s.get("replication_id") != ms["replication_id"]):
            problems.append(f"{o.url} is not connected to {master.url}'s history yet")
        elif ms and o.id not in online:
            problems.append(f"{o.url} is connected, but not to {master.url}")
    return problems


def verify_group(
    client: Callable[[str], NodeClient],
    master_url: str,
    other_urls: list[str],
    new_address: str,
    step: _Steps,
    before: dict[str, ReplicationStats] | None = None,
    timeout: float | None = None,
) -> bool:
    """Wait (bounded) until ``master_url`` is the only master and every node of
    ``other_urls`` is a replica connected to it on its history (by replica id, in the
    master's list of online replicas). Reports how each got there (a full sync means it
    had diverged). On failure prints each node's state and what to run to fix it."""
    before = before or {}
    deadline = time.monotonic() + (VERIFY_TIMEOUT_S if timeout is None else timeout)
    while True:
        seen = _look(client, [master_url, *other_urls])
        master, others = seen[0], seen[1:]
        problems = _problems(master, others)
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not problems:
        for o in others:
            if o.stats is None or o.id == master.id:
                continue
            old = before.get(o.url)
            full = o.stats["full_syncs"] - (old["full_syncs"] if old else 0)
            how = "by FULL sync (it had diverged)" if old and full > 0 else "by partial sync"
            if old is None:
                how = "in sync"
            step(f"{o.url} follows the new master at offset {o.stats.get('replica_offset')}, {how}")
        step(f"verified: {master_url} is the only master and {len(others)} node(s) follow it")
        return True
    step("FAILED: the group is not in a safe state: " + "; ".join(problems))
    step("state of each node:")
    for node in seen:
        step(f"  {node.describe()}")
    step("to fix it:")
    if master.stats is None or master.stats["role"] != "master":
        step(f"  promote a replica: synap-cli replicaof --node {master_url} --no-one")
    for o in others:
        s = o.stats
        if s is None:
            step(
                f"  {o.url}: start it as a replica of the new master (--role replica "
                f"--master-address {new_address}), or once it answers: "
                f"synap-cli replicaof --node {o.url} --master {new_address}"
            )
        elif o.id != master.id and (s["role"] != "replica" or not s.get("connected")):
            step(f"  synap-cli replicaof --node {o.url} --master {new_address}")
    step(
        "  then check: synap-cli replication status "
        + " ".join(f"--node {u}" for u in [master_url, *other_urls])
    )
    return False


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
        views = _dedupe(views, step)
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

        listen = replica_listen or (
            cand.stats.get("replica_listen_address") if cand.stats else None
        )
        if not listen:
            step(
                "the candidate runs no replica listener: it opens its configured one, else "
                "one on its own host, port 15501"
            )
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
            f"replica listener bound on {promoted['replica_listen_address']} (reached as "
            f"{new_address}); it accepts writes"
        )
        cand_id = cand.stats["replica_id"] if cand.stats else None
        before: dict[str, ReplicationStats] = {}
        for f in plan.followers:
            assert f.stats is not None
            before[f.url] = f.stats
            _repoint(client, f.url, f.stats.get("replica_id"), cand_id, new_address, step)
        others = [f.url for f in plan.followers] + [f.url for f in plan.foreign]
        ok = verify_group(client, cand.url, others, new_address, step, before)
        step(
            ("promotion complete" if ok else "promotion FAILED to converge")
            + f": {cand.url} is the master"
        )
        step(
            "REMEMBER: the old master must not come back as a master. Start it with "
            f"--role replica --master-address {new_address}, or repoint it the moment it "
            "is up (see docs/OPERATIONS.md)"
        )
        return ok
    finally:
        session.close()

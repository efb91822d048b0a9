"""``synap-cli``: operator commands over the HTTP admin API.

* ``synap-cli replication status [--node URL ...]``: role, offsets, lag, last error and
  write pause of each node; exits 1 if any is unhealthy
* ``synap-cli promote --node URL ...``: unplanned failover, picks the best replica
* ``synap-cli failover --node MASTER_URL [--to URL] [--timeout S]``: planned switchover
* ``synap-cli replicaof --node URL --master HOST:PORT`` (repoint) / ``--no-one`` (promote)
* ``synap-cli pause-writes --node URL --seconds S|--until-resumed`` / ``resume-writes``
* ``synap-cli group status --etcd URL [--group NAME]``: an automatic-failover group in etcd
* ``synap-cli get KEY`` / ``set KEY VALUE`` / ``digest``: quick checks
* ``synap-cli --version``

A node answering 401/403 is reported as an authentication problem naming the key to pass
(``--api-key`` / ``SYNAP_API_KEY``), not as unreachable (synap/admin_client.py).
* ``synap-cli log inspect --data-dir D [--from OFFSET] [--limit N]``: print and verify
  the log's records (offline tool: reads the WAL segments of a data directory)
* ``synap-cli log diverged FILE``: print the records an old master truncated at a fork
  point (``diverged-<replid>-<offset>.jsonl`` in its data directory)
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, cast

import click

from synap import __version__
from synap.admin_client import AdminError, Session
from synap.replication.peer_fields import escape_text
from synap.replication.stats import MasterStats, ReplicationStats

DEFAULT_NODE = "http://127.0.0.1:5500"


class AuthenticationProblem(click.ClickException):
    """The node answered 401/403: reachable, but the key is missing or wrong."""


def _call(url: str, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    """One admin request (synap/admin_client.py); failures become click errors."""
    with Session(api_key, [url]) as session:
        try:
            return session.node(url).request(method, path, body)
        except AdminError as exc:
            if exc.auth:
                raise AuthenticationProblem(exc.message) from None
            raise click.ClickException(exc.message) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-key", envvar="SYNAP_API_KEY", help="API/admin key (or SYNAP_API_KEY).")
@click.version_option(__version__, prog_name="synap-cli")
@click.pass_context
def main(ctx: click.Context, api_key: str | None) -> None:
    """Operate Synap nodes over their HTTP API."""
    ctx.obj = {"api_key": api_key}


@main.group()
def replication() -> None:
    """Replication views."""


@replication.command("status")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    default=[DEFAULT_NODE],
    show_default=True,
    help="HTTP URL of a node (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw stats JSON.")
@click.pass_obj
def replication_status(obj: dict[str, Any], nodes: tuple[str, ...], as_json: bool) -> None:
    """Show role, offsets, lag, last error and write pause of each node.

    Exits 1 when any node is unhealthy: unreachable, or a replica that has not synced or
    is disconnected from its master."""
    failed = False
    for url in nodes:
        try:
            stats = _stats(url, obj["api_key"])
        except AuthenticationProblem as exc:
            click.echo(exc.message)
            failed = True
            continue
        except click.ClickException as exc:
            click.echo(f"{url}: unreachable ({escape_text(exc.message)})")
            failed = True
            continue
        problems = _problems(stats)
        failed = failed or bool(problems)
        if as_json:
            click.echo(json.dumps({"node": url, **stats, "problems": problems}, indent=2))
            continue
        click.echo(_describe(url, stats, problems))
    if failed:
        sys.exit(1)


def _stats(url: str, api_key: str | None) -> ReplicationStats:
    """``GET /api/replication/stats`` (the shapes of synap/replication/stats.py)."""
    return cast("ReplicationStats", _call(url, api_key, "GET", "/api/replication/stats"))


def _problems(s: ReplicationStats) -> list[str]:
    """What makes a node unhealthy, from its stats (empty when healthy)."""
    problems = []
    if s["role"] == "replica":
        if not s["synced"]:
            problems.append("not synced with its master yet")
        if not s["connected"]:
            down = s["link_down_seconds"]
            problems.append(
                "disconnected from its master" + (f" for {down}s" if down is not None else "")
            )
    return problems


def _writes(s: MasterStats) -> str:
    if not s["writes_paused"]:
        return "accepted"
    seconds = s["writes_paused_for"]
    if seconds is None:
        return "FENCED (paused until resumed or demoted: POST /api/replication/resume)"
    return f"PAUSED for {seconds:g}s more"


def _describe(url: str, s: ReplicationStats, problems: list[str]) -> str:
    # Every value is escaped: ids, addresses and errors come from other nodes.
    e = escape_text
    verdict = f" UNHEALTHY: {'; '.join(problems)}" if problems else ""
    lines = [f"{url}: role={e(s['role'])} replication_id={e(s['replication_id'])}{verdict}"]
    served = (
        f"served: sync_full={s['sync_full']} sync_partial_ok={s['sync_partial_ok']} "
        f"sync_partial_err={s['sync_partial_err']}"
    )
    if s["role"] == "replica":
        lines.append(
            f"  master={e(s['master_address'])} connected={s['connected']} "
            f"synced={s['synced']} state={e(s['state'])} "
            f"offset={s['replica_offset']}/{s['master_offset']} lag={s['lag_operations']} ops "
            f"({s['lag_ms']} ms) full_syncs={s['full_syncs']} partial_syncs={s['partial_syncs']}"
        )
        lines.append(f"  last_error: {e(s['last_error'] or 'none')}")
    else:
        lines.append(
            f"  master_offset={s['master_offset']} replicas={len(s['replicas'])} "
            f"writes={_writes(s)}"
        )
    lines.append(f"  {served}")
    for r in s.get("replicas", []):
        lines.append(
            f"  - {e(r['id'])} at {e(r.get('listen_address') or r['address'])}: "
            f"offset={r['offset']} lag={r['lag_operations']} ops ({r['lag_ms']} ms) "
            f"state={e(r.get('state'))}"
        )
    return "\n".join(lines)


@main.command()
@click.option(
    "--node",
    "nodes",
    multiple=True,
    required=True,
    help="HTTP URL of every node of the group (repeatable).",
)
@click.option(
    "--replica-listen", help="Replica listener address for the new master (default: its config)."
)
@click.option("--dry-run", is_flag=True, help="Only say which replica would be promoted.")
@click.pass_obj
def promote(
    obj: dict[str, Any], nodes: tuple[str, ...], replica_listen: str | None, dry_run: bool
) -> None:
    """Unplanned failover: promote the most up-to-date reachable replica and repoint the rest."""
    from synap.failover import run_promote

    ok = run_promote(list(nodes), obj["api_key"], replica_listen, dry_run, click.echo)
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--node", required=True, help="HTTP URL of the current master.")
@click.option(
    "--to", "target", help="HTTP URL of the replica to promote (default: the most up to date)."
)
@click.option(
    "--timeout", default=10.0, show_default=True, help="Seconds to wait for the target to catch up."
)
@click.option(
    "--replica-listen",
    help="Replica listener for the target if it has none yet (default: its config).",
)
@click.pass_obj
def failover(
    obj: dict[str, Any], node: str, target: str | None, timeout: float, replica_listen: str | None
) -> None:
    """Planned switchover with zero loss: pause writes, let the target catch up, promote it,
    demote the old master to its replica, repoint the others, resume. In an etcd group the
    master hands its leader key to the target instead, and the election repoints the rest."""
    from synap.failover import run_failover

    ok = run_failover(
        node, target, timeout, obj["api_key"], click.echo, replica_listen=replica_listen
    )
    sys.exit(0 if ok else 1)


def _persisted(reply: dict[str, Any]) -> str:
    path = reply.get("topology_file")
    if path:
        return f"persisted to {path} (a restart keeps it)"
    return "NOT persisted: the node has no data directory, a restart goes back to its flags"


@main.command()
@click.option("--node", required=True, help="HTTP URL of the node to change.")
@click.option(
    "--master",
    "master",
    metavar="HOST:PORT",
    help="The new master's replica listener (not its HTTP port).",
)
@click.option("--no-one", is_flag=True, help="Promote the node to master (REPLICAOF NO ONE).")
@click.option(
    "--replica-listen",
    metavar="HOST:PORT",
    help="With --no-one: the replica listener to open (default: the node's own, its config, "
    "or its --host and port 15501).",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    help="With --master: seconds to wait for the node to connect (0: do not wait).",
)
@click.pass_obj
def replicaof(
    obj: dict[str, Any],
    node: str,
    master: str | None,
    no_one: bool,
    replica_listen: str | None,
    timeout: float,
) -> None:
    """Repoint a node at another master (--master HOST:PORT), or promote it (--no-one).

    Exits non-zero if the node refuses (e.g. HOST:PORT is its own listener) or, with
    --master, is not connected to the new master within --timeout seconds."""
    if (master is None) == (not no_one):
        raise click.UsageError("give exactly one of --master HOST:PORT and --no-one")
    if no_one:
        body = {"replica_listen_address": replica_listen} if replica_listen else None
        reply = _call(node, obj["api_key"], "POST", "/api/replication/promote", body)
        click.echo(
            f"{node}: {reply.get('message') or 'promoted'}: master, replication id "
            f"{reply.get('replication_id')}, offset {reply.get('offset')}, replica listener "
            f"bound on {reply.get('replica_listen_address')}; " + _persisted(reply)
        )
        return
    if replica_listen:
        raise click.UsageError("--replica-listen goes with --no-one")
    reply = _call(
        node, obj["api_key"], "POST", "/api/replication/replicaof", {"master_address": master}
    )
    click.echo(f"{node}: now a replica of {reply.get('master_address')}; " + _persisted(reply))
    if timeout <= 0:
        return
    deadline = time.monotonic() + timeout
    while True:
        stats = _call(node, obj["api_key"], "GET", "/api/replication/stats")
        if stats.get("role") == "replica" and stats.get("connected"):
            click.echo(
                f"{node}: connected to {stats.get('master_address')} at offset "
                f"{stats.get('replica_offset')}"
            )
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    click.echo(
        f"{node}: NOT connected to {master} after {timeout:g}s (role {stats.get('role')}, "
        f"state {stats.get('state')}, last error: {stats.get('last_error') or stats.get('last_role_error')}); "
        "it keeps retrying. Check the address is the master's replica listener",
        err=True,
    )
    sys.exit(1)


@main.command("pause-writes")
@click.option("--node", required=True, help="HTTP URL of the master.")
@click.option("--seconds", type=float, help="Pause for this many seconds (a lease).")
@click.option(
    "--until-resumed",
    is_flag=True,
    help="Pause until `synap-cli resume-writes` or a demotion (a fence).",
)
@click.pass_obj
def pause_writes(
    obj: dict[str, Any], node: str, seconds: float | None, until_resumed: bool
) -> None:
    """Refuse client writes with TRYAGAIN (HTTP 503) on a master."""
    if (seconds is None) == (not until_resumed):
        raise click.UsageError("give exactly one of --seconds S and --until-resumed")
    reply = _call(node, obj["api_key"], "POST", "/api/replication/pause", {"seconds": seconds})
    how = "until resumed or demoted" if seconds is None else f"for {seconds:g}s"
    click.echo(f"{node}: writes paused {how} at offset {reply.get('master_offset')}")


@main.command("resume-writes")
@click.option("--node", required=True, help="HTTP URL of the master.")
@click.pass_obj
def resume_writes(obj: dict[str, Any], node: str) -> None:
    """End a write pause (or fence) on a master."""
    reply = _call(node, obj["api_key"], "POST", "/api/replication/resume")
    state = "resumed" if reply.get("was_paused") else "were not paused"
    click.echo(f"{node}: writes {state}, offset {reply.get('master_offset')}")


@main.group("group")
def group_cmd() -> None:
    """Automatic-failover groups in etcd (replication.failover.mode: etcd)."""


@group_cmd.command("status")
@click.option("--etcd", "etcd", required=True, help="etcd client URL[,URL...].")
@click.option("--group", "name", default="synap", show_default=True, help="Group name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def group_status(etcd: str, name: str, as_json: bool) -> None:
    """Show the group's members, roles, epoch, offsets, lag and leases, read from etcd."""
    import asyncio

    from pydantic import ValidationError

    from synap.config import FailoverConfig
    from synap.coordination.etcd import EtcdError
    from synap.coordination.status import read_group, render

    try:
        endpoints = FailoverConfig(etcd_endpoints=etcd, group=name).etcd_endpoints
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise click.UsageError(problems) from None
    try:
        status = asyncio.run(read_group(endpoints, name))
    except EtcdError as exc:
        raise click.ClickException(f"cannot read group {name!r} from etcd: {exc}") from None
    click.echo(json.dumps(status, indent=2) if as_json else render(status))


@main.command()
@click.option("--node", "nodes", multiple=True, default=[DEFAULT_NODE], show_default=True)
@click.pass_obj
def digest(obj: dict[str, Any], nodes: tuple[str, ...]) -> None:
    """Print each node's dataset digest (equal on caught-up nodes)."""
    digests = set()
    for url in nodes:
        d = _call(url, obj["api_key"], "GET", "/api/replication/digest")
        digests.add(d["digest"])
        click.echo(
            f"{url}: {escape_text(d['digest'])} keys={d['keys']} offset={d['offset']} "
            f"role={escape_text(d['role'])}"
        )
    if len(nodes) > 1:
        click.echo("digests match" if len(digests) == 1 else "DIGESTS DIFFER")
        sys.exit(0 if len(digests) == 1 else 1)


@main.command("get")
@click.argument("key")
@click.option("--node", default=DEFAULT_NODE, show_default=True)
@click.pass_obj
def get_cmd(obj: dict[str, Any], key: str, node: str) -> None:
    """Read a key."""
    reply = _call(
        node,
        obj["api_key"],
        "POST",
        "/api/v1/command",
        {"command": "kv.get", "payload": {"key": key}},
    )
    click.echo(json.dumps(reply.get("payload")))


@main.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=int)
@click.option("--node", default=DEFAULT_NODE, show_default=True)
@click.pass_obj
def set_cmd(obj: dict[str, Any], key: str, value: str, ttl: int | None, node: str) -> None:
    """Write a key."""
    payload: dict[str, Any] = {"key": key, "value": value}
    if ttl:
        payload["ttl"] = ttl
    reply = _call(
        node, obj["api_key"], "POST", "/api/v1/command", {"command": "kv.set", "payload": payload}
    )
    if not reply.get("success"):
        raise click.ClickException(str(reply.get("error")))
    click.echo("OK")


@main.group("log")
def log_group() -> None:
    """The replication log on disk (the WAL segments of a data directory)."""


@log_group.command("inspect")
@click.option("--data-dir", required=True, help="Data directory of a node.")
@click.option("--from", "from_offset", type=click.IntRange(min=0), help="First offset to print.")
@click.option("--limit", type=click.IntRange(min=0), help="Print at most N records.")
def log_inspect(data_dir: str, from_offset: int | None, limit: int | None) -> None:
    """Print records (offset, operation, key) and verify their checksums.

    Exits 1 if a record is corrupt (the segment and byte are named)."""
    from pathlib import Path

    from synap.persistence.inspect import inspect_log

    status = inspect_log(
        Path(data_dir), from_offset, limit, click.echo, lambda line: click.echo(line, err=True)
    )
    sys.exit(status)


@log_group.command("diverged")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def log_diverged(file: str) -> None:
    """Print the records truncated at a fork point (a diverged-*.jsonl file), in the
    format of ``log inspect``."""
    from pathlib import Path

    from synap.persistence.divergence import read_diverged_file
    from synap.persistence.inspect import describe_record

    try:
        header, records = read_diverged_file(Path(file))
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot read {file}: {exc}") from None
    click.echo(
        f"# history {header.get('replid')} forked after offset {header.get('fork_offset')}: "
        f"{header.get('records')} record(s) truncated, up to offset {header.get('last_offset')} "
        f"(new master history {header.get('new_master_replid')})"
    )
    for offset, record in records:
        click.echo(f"{offset}  {describe_record(record)}")

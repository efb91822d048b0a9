"""``synap-cli``: operator commands over the HTTP admin API.

* ``synap-cli replication status [--node URL ...]``: role, offsets and lag of each node
* ``synap-cli promote --node URL ...``: unplanned failover, picks the best replica
* ``synap-cli failover --node MASTER_URL [--to URL] [--timeout S]``: planned switchover
* ``synap-cli get KEY`` / ``set KEY VALUE`` / ``digest``: quick checks
* ``synap-cli log inspect --data-dir D [--from OFFSET] [--limit N]``: print and verify
  the log's records (offline tool: reads the WAL segments of a data directory)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import httpx

DEFAULT_NODE = "http://127.0.0.1:5500"


def _client(url: str, api_key: str | None, timeout: float = 5.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if "://" not in url:
        url = f"http://{url}"
    return httpx.Client(base_url=url, headers=headers, timeout=timeout)


def _call(url: str, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    try:
        with _client(url, api_key) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        raise click.ClickException(f"{url}{path}: HTTP {response.status_code}, not JSON") from None
    if response.status_code >= 400:
        raise click.ClickException(
            f"{url}{path}: HTTP {response.status_code}: {data.get('error', data)}"
        )
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-key", envvar="SYNAP_API_KEY", help="API/admin key (or SYNAP_API_KEY).")
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
    """Show role, offsets and lag of each node."""
    failed = False
    for url in nodes:
        try:
            stats = _call(url, obj["api_key"], "GET", "/api/replication/stats")
        except click.ClickException as exc:
            click.echo(f"{url}: unreachable ({exc.message})")
            failed = True
            continue
        if as_json:
            click.echo(json.dumps({"node": url, **stats}, indent=2))
            continue
        click.echo(_describe(url, stats))
    if failed:
        sys.exit(1)


def _describe(url: str, s: dict[str, Any]) -> str:
    lines = [f"{url}: role={s['role']} replication_id={s.get('replication_id', '?')}"]
    if s["role"] == "replica":
        lines.append(
            f"  master={s.get('master_address')} connected={s['connected']} "
            f"offset={s['replica_offset']}/{s['master_offset']} lag={s['lag_operations']} ops "
            f"({s['lag_ms']} ms) full_syncs={s.get('full_syncs')} partial_syncs={s.get('partial_syncs')}"
        )
    else:
        lines.append(f"  master_offset={s['master_offset']} replicas={len(s.get('replicas', []))}")
        for r in s.get("replicas", []):
            lines.append(
                f"  - {r['id']} at {r.get('listen_address') or r['address']}: offset={r['offset']} "
                f"lag={r['lag_operations']} ops ({r['lag_ms']} ms) state={r.get('state')}"
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
    demote the old master to its replica, repoint the others, resume."""
    from synap.failover import run_failover

    ok = run_failover(
        node, target, timeout, obj["api_key"], click.echo, replica_listen=replica_listen
    )
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--node", "nodes", multiple=True, default=[DEFAULT_NODE], show_default=True)
@click.pass_obj
def digest(obj: dict[str, Any], nodes: tuple[str, ...]) -> None:
    """Print each node's dataset digest (equal on caught-up nodes)."""
    digests = set()
    for url in nodes:
        d = _call(url, obj["api_key"], "GET", "/api/replication/digest")
        digests.add(d["digest"])
        click.echo(f"{url}: {d['digest']} keys={d['keys']} offset={d['offset']} role={d['role']}")
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

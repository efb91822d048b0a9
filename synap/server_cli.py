"""``synap-server``: command-line flags (the spec's, exactly), config loading, logging."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from synap import __version__, build, hugepages, sizeclasses
from synap.config import Config, ConfigError, load_config


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise click.BadParameter(f"{value!r} is not true or false")


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Examples:\n\n"
    "  synap-server --role master --replica-listen 0.0.0.0:15501\n\n"
    "  synap-server --role replica --master-address 127.0.0.1:15501 --port 5501 --resp-port 6380 --rpc-port 15510\n\n"
    "  synap-server --role master --etcd-endpoints http://127.0.0.1:2379 --group g1\n\n"
    "Every option overrides the matching key of the config file.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML config file (see config.yml).",
)
@click.option(
    "--host",
    help="Address for the HTTP, Redis-protocol and SynapRPC listeners [server.host; 127.0.0.1].",
)
@click.option("--port", type=click.IntRange(0, 65535), help="HTTP API port [server.port; 5500].")
@click.option(
    "--resp-port",
    type=click.IntRange(0, 65535),
    help="Redis-protocol port, 0 = off [server.resp_port; 6379].",
)
@click.option(
    "--rpc-port",
    type=click.IntRange(0, 65535),
    help="SynapRPC port (synap-sdk's synap://host:PORT), 0 = off [server.rpc_port; 15500].",
)
@click.option(
    "--data-dir",
    help="Directory for WAL and snapshots; enables persistence [persistence.data_dir].",
)
@click.option(
    "--role",
    type=click.Choice(["master", "replica", "standalone"]),
    help="Replication role; master or replica also sets replication.enabled: true "
    "[replication.role; standalone].",
)
@click.option(
    "--master-address",
    help="IP:port of the master's replica listener; without --role it means --role replica "
    "[replication.master_address].",
)
@click.option(
    "--replica-listen",
    help="IP:port to accept replicas on (masters; replicas that serve sub-replicas) [replication.replica_listen_address; 0.0.0.0:15501].",
)
@click.option(
    "--auto-reconnect",
    type=str,
    help="true|false: replicas reconnect after a disconnect [replication.auto_reconnect; true].",
)
@click.option(
    "--replication-secret",
    envvar="SYNAP_REPLICATION_SECRET",
    show_envvar=True,
    help="Shared secret replicas must prove they know [replication.auth_secret]. Prefer "
    "the environment variable or the config file: a flag is visible in `ps`.",
)
@click.option(
    "--etcd-endpoints",
    help="URL[,URL...] of etcd; turns on automatic failover (elected roles) "
    "[replication.failover.etcd_endpoints].",
)
@click.option(
    "--group",
    help="Replication group name in etcd [replication.failover.group; synap].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="[logging.level; info]",
)
@click.version_option(
    __version__,
    prog_name="synap-server",
    message=f"%(prog)s, version %(version)s, {build.state().describe()}",
)
def main(config_path: str | None, **options: Any) -> None:
    """Run a Synap node: an in-memory key-value server with master-replica replication."""
    built = build.state()
    if built.stale:
        click.echo(f"error: {build.stale_message(built.stale)}", err=True)
        sys.exit(2)
    overrides: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            overrides.setdefault(section, {})[key] = value

    put("server", "host", options["host"])
    put("server", "port", options["port"])
    put("server", "resp_port", options["resp_port"])
    put("server", "rpc_port", options["rpc_port"])
    if options["data_dir"] is not None:
        put("persistence", "data_dir", options["data_dir"])
        put("persistence", "enabled", True)
    put("replication", "role", options["role"])
    put("replication", "master_address", options["master_address"])
    put("replication", "replica_listen_address", options["replica_listen"])
    if options["auto_reconnect"] is not None:
        try:
            put("replication", "auto_reconnect", _bool(options["auto_reconnect"]))
        except click.BadParameter as exc:
            raise click.UsageError(f"--auto-reconnect: {exc.message}") from None
    put("replication", "auth_secret", options["replication_secret"])
    failover: dict[str, Any] = {}
    if options["etcd_endpoints"] is not None:
        failover["etcd_endpoints"] = options["etcd_endpoints"]
    if options["group"] is not None:
        failover["group"] = options["group"]
    put("replication", "failover", failover or None)
    if options["log_level"]:
        put("logging", "level", options["log_level"].upper())
    try:
        config = load_config(config_path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: invalid configuration: {problem}", err=True)
        sys.exit(2)
    setup_logging(config.logging.level.upper(), config.logging.format)
    # Before the node is built: arenas allocated from here on can be huge pages.
    hugepages.start(config.kv_store.huge_pages)
    sizeclasses.start(
        config.kv_store.size_classes,
        hugepages.status().active,
        config.kv_store.shared_values,
    )
    for warning in _idle_flags(config, options):
        logging.getLogger("synap.server_cli").warning("%s", warning)
    from synap.node import run_node

    # Explicit replication flags win over the topology persisted in the data directory.
    given = frozenset(
        key
        for key, option in (
            ("role", "role"),
            ("master_address", "master_address"),
            ("replica_listen_address", "replica_listen"),
        )
        if options[option] is not None
    )
    sys.exit(run_node(config, given))


def _idle_flags(config: Config, options: dict[str, Any]) -> list[str]:
    """Flags that have no effect in the role the node starts in: said, not ignored."""
    repl = config.replication
    role = repl.role if repl.enabled else "standalone"
    out = []
    if options["replica_listen"] is not None and role == "standalone":
        out.append(
            "--replica-listen has no effect on a standalone node (it does not accept "
            "replicas); it is used if the node is made a master. Pass --role master to "
            "listen now"
        )
    if options["auto_reconnect"] is not None and role != "replica":
        out.append(
            f"--auto-reconnect applies to replicas; this node starts as {role} (it is used "
            "if the node is made a replica later)"
        )
    return out


def setup_logging(level: str, fmt: str) -> None:
    from synap.logfmt import setup_logging as setup

    setup(level, fmt)

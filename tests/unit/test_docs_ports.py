"""Nodes that a docs shell block starts together on one machine never share a port: each
``synap-server ... &`` of a block (a ``for i in 0 1 2`` loop expanded) gets its HTTP,
RESP, SynapRPC and replica-listener ports from its flags or the config defaults, and no
port may be listed twice. (The etcd runbooks once left ``--rpc-port`` at its default
15500 on every node, which was also node 0's replica listener: one node failed to start.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from synap.config import ReplicationConfig, ServerConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LOOP = re.compile(r"^for (\w+) in ([^;]+); do$")


def shell_blocks(path: Path) -> list[list[str]]:
    """The fenced shell blocks of a file, as logical lines (continuations joined)."""
    blocks: list[list[str]] = []
    fence: str | None = None  # the open fence's language, None outside a fence
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            if fence in ("", "bash", "sh"):
                blocks.append([])
            pending = ""
            continue
        if fence not in ("", "bash", "sh"):
            continue
        text = pending + stripped
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        blocks[-1].append(re.sub(r"(^|\s)#.*$", "", text).strip())
    return blocks


def started_servers(block: list[str]) -> list[list[str]]:
    """Argument lists of the synap-server processes a block starts in the background."""
    servers: list[list[str]] = []
    loop: tuple[str, list[str]] | None = None
    for line in block:
        match = _LOOP.match(line)
        if match:
            loop = (match.group(1), match.group(2).split())
            continue
        if line == "done":
            loop = None
            continue
        if not line.startswith("synap-server") or not line.endswith("&"):
            continue
        for value in loop[1] if loop else [""]:
            text = re.sub(rf"\$\{{?{loop[0]}\}}?", value, line) if loop else line
            tokens = shlex.split(text)
            for i, token in enumerate(tokens):
                if token.startswith((">", "2>")) or token == "&":
                    tokens = tokens[:i]
                    break
            servers.append(tokens[1:])
    return servers


def listener_ports(args: list[str]) -> list[int]:
    """HTTP, RESP, SynapRPC and replica-listener ports of one synap-server command line."""
    flags = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    server = ServerConfig()
    ports = [
        int(flags.get("--port", server.port)),
        int(flags.get("--resp-port", server.resp_port)),
        int(flags.get("--rpc-port", server.rpc_port)),
    ]
    listen = flags.get("--replica-listen")
    if listen is None and flags.get("--role") == "master":
        listen = ReplicationConfig().replica_listen_address
    if listen is not None:
        ports.append(int(listen.rsplit(":", 1)[1]))
    return [p for p in ports if p != 0]


def collisions(servers: list[list[str]]) -> list[str]:
    seen: dict[int, int] = {}
    problems = []
    for n, args in enumerate(servers):
        for port in listener_ports(args):
            if port in seen:
                problems.append(f"port {port}: node {seen[port]} and node {n}")
            seen.setdefault(port, n)
    return problems


def test_nodes_started_together_in_the_docs_never_share_a_port() -> None:
    problems = []
    checked = 0
    for path in DOCS:
        for block in shell_blocks(path):
            servers = started_servers(block)
            if len(servers) > 1:
                checked += 1
                problems += [f"{path.relative_to(ROOT)}: {p}" for p in collisions(servers)]
    assert checked >= 3  # README: by hand and etcd; OPERATIONS: etcd runbook
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_default_port_shared_with_a_listener() -> None:
    block = [
        "for i in 0 1 2; do",
        "synap-server --role master --port 550$i --resp-port 638$i "
        "--replica-listen 127.0.0.1:1550$i --data-dir ./data/n$i &",
        "done",
    ]
    servers = started_servers(block)
    assert len(servers) == 3
    assert "port 15500: node 0 and node 1" in collisions(servers)
    fixed = [block[0], block[1].replace("--replica", "--rpc-port 1560$i --replica"), block[2]]
    assert collisions(started_servers(fixed)) == []

"""The import graph of ``synap/`` has no cycle and no edge pointing up the layer order.

The graph is built from the source (``ast``), so it sees every import: module level,
inside ``if TYPE_CHECKING:`` and inside functions.  A function-level import that dodges a
cycle at run time is still a cycle here.  The layer order is the one docs/ARCHITECTURE.md
draws ("Layers"); a module may import its own layer and the layers below it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "synap"

# Lowest first.  A module belongs to the layer with the longest prefix matching its name
# (so a new top-level module lands in "foundation" until listed elsewhere).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Leaf utilities every layer may use: version, settings, log format, counters, TLS
    # contexts, listener errors.
    (
        "foundation",
        (
            "synap",
            "synap.clock",
            "synap.build",
            "synap.config",
            "synap.logfmt",
            "synap.latency",
            "synap.tls",
            "synap.listen",
            "synap.hugepages",
            "synap.hugearena",
        ),
    ),
    ("store", ("synap.store",)),
    ("commands", ("synap.commands",)),
    # Sans-IO replication: protocol objects fed bytes, no sockets or tasks.
    (
        "persistence / sans-IO replication",
        (
            "synap.persistence",
            "synap.replication",
            "synap.replication.backlog",
            "synap.replication.foreign",
            "synap.replication.framing",
            "synap.replication.handshake",
            "synap.replication.link_state",
            "synap.replication.messages",
            "synap.replication.master_session",
            "synap.replication.replica_session",
            "synap.replication.peer_fields",
            "synap.replication.roles",
            "synap.replication.stats",
            "synap.replication.control",
        ),
    ),
    (
        "asyncio replication",
        (
            "synap.replication.host",
            "synap.replication.waiters",
            "synap.replication.log",
            "synap.replication.master",
            "synap.replication.replica",
            "synap.replication.views",
            "synap.replication.manager",
            "synap.replication.consistency",
        ),
    ),
    ("coordination", ("synap.coordination",)),
    ("api", ("synap.api",)),
    ("node", ("synap.node",)),
    # Operator tools and entry points: synap-server, synap-cli, the failover driver and
    # its admin HTTP client, the demo.
    (
        "cli",
        (
            "synap.server_cli",
            "synap.__main__",
            "synap.cli",
            "synap.failover",
            "synap.admin_client",
            "synap.demo",
        ),
    ),
]


# Protocol logic fed bytes and times: these import nothing that does I/O or runs tasks.
SANS_IO = [
    "synap.replication.backlog",
    "synap.replication.control",
    "synap.replication.foreign",
    "synap.replication.framing",
    "synap.replication.handshake",
    "synap.replication.link_state",
    "synap.replication.master_session",
    "synap.replication.messages",
    "synap.replication.peer_fields",
    "synap.replication.replica_session",
    "synap.replication.roles",
    "synap.replication.stats",
    "synap.coordination.election",
    "synap.api.resp_framing",
    "synap.api.resp_reader",
    "synap.api.rpc_codec",
]
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "threading", "httpx", "uvicorn"}


def module_files() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def imported(module: str, path: Path, mods: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """``(imported synap module, line)`` for every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from synap.api import resp_codec`` imports the module synap.api.resp_codec;
            # ``from synap.node import Node`` the module synap.node.
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.append(sub if sub in mods else base)
        for name in dict.fromkeys(names):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, node.lineno


def graph() -> dict[str, dict[str, int]]:
    mods = module_files()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for module, path in mods.items():
        for target, line in imported(module, path, mods):
            edges[module].setdefault(target, line)
    return edges


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and ARCHITECTURE.md)")
    return best[0]


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_no_import_cycle() -> None:
    edges = graph()
    found = cycles(edges)
    described = [
        "\n".join(f"  {a} -> {b} (line {edges[a][b]})" for a in c for b in edges[a] if b in c)
        for c in found
    ]
    assert not found, "import cycles:\n" + "\n\n".join(described)


def test_no_upward_import() -> None:
    edges = graph()
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]}), line {line}"
        for a, targets in sorted(edges.items())
        for b, line in sorted(targets.items())
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "imports pointing up the layers:\n  " + "\n  ".join(upward)


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_io(module: str) -> None:
    path = module_files()[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    assert not found & IO_MODULES, f"{module} imports {sorted(found & IO_MODULES)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import synap.node\n", {"synap.node"}),
        ("from synap.api import resp_codec\n", {"synap.api.resp_codec"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from synap.node import Node\n",
         {"synap.node"}),
        ("def f():\n    from ..node import bind_error\n", {"synap.node"}),
        ("from . import resp_codec as R\n", {"synap.api.resp_codec"}),
    ],
)  # fmt: skip
def test_the_graph_sees_every_kind_of_import(
    source: str, expected: set[str], tmp_path: Path
) -> None:
    """The checker itself: TYPE_CHECKING, function-level and relative imports all count."""
    path = tmp_path / "resp.py"
    path.write_text(source)
    mods = module_files()
    assert {name for name, _ in imported("synap.api.resp", path, mods)} == expected


def test_an_upward_edge_is_reported() -> None:
    assert layer_of("synap.replication.manager") > layer_of("synap.replication.handshake")
    assert layer_of("synap.node") > layer_of("synap.api.http") > layer_of("synap.commands.layer")
    assert cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {"a": 3}}) == [["a", "b"]]


# RESP replies are encoded in synap/api/ only (resp_codec and the RESP front end): a bytes
# or str literal elsewhere holding CRLF framing ("+OK\r\n", "$5\r\n...") or a bare RESP
# status/error ("+OK", "-ERR ...") means a lower layer is producing wire replies again.
_RESP_STATUS = re.compile(r"^[-+][A-Z]{2,}(?: |$)")


def resp_literals(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes | str):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if "\r\n" in text or (isinstance(node.value, bytes) and _RESP_STATUS.match(text)):
                found.append((node.lineno, repr(node.value)))
    return found


def test_no_resp_reply_literal_outside_api() -> None:
    offenders = [
        f"{module} line {line}: {literal}"
        for module, path in sorted(module_files().items())
        if not (module == "synap.api" or module.startswith("synap.api."))
        for line, literal in resp_literals(path.read_text())
    ]
    assert not offenders, "RESP reply bytes outside synap/api/:\n  " + "\n  ".join(offenders)


@pytest.mark.parametrize(
    ("source", "hits"),
    [
        ('OK = b"+OK\\r\\n"\n', 1),
        ('def f(m):\n    return b"-ERR " + m.encode() + b"\\r\\n"\n', 2),
        ('X = b"-READONLY"\n', 1),
        ('X = "line\\r\\n"\n', 1),
        ('X = b"-"\nY = b"*"\nZ = b"SYNWAL1\\n"\nW = "-ERR is only text"\n', 0),
    ],
)  # fmt: skip
def test_the_resp_literal_check_sees_replies(source: str, hits: int) -> None:
    assert len(resp_literals(source)) == hits

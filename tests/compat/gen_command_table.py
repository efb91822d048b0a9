"""Regenerate ``synap/api/command_table.py`` from a real ``redis-server`` 7.0.15.

    python -m tests.compat.gen_command_table --port 6379 > synap/api/command_table.py
    python -m tests.compat.gen_command_table --port 6379 --docs > synap/api/command_docs.py

Reads ``COMMAND INFO`` (RESP3) for the commands synap implements and writes their arity,
flags, key positions, ACL categories, tips, key specs and (implemented) subcommands as
one Python table.  Commands of ours that Redis lacks are added by hand in the template.
"""

from __future__ import annotations

import argparse
import pprint
import socket
from typing import Any


def _words(text: str) -> list[str]:
    return text.split()


# Command -> the subcommands synap implements (None: no subcommands).
IMPLEMENTED: dict[str, list[str] | None] = {
    name: None
    for name in _words(
        "get set setnx setex psetex getset getdel getex mget mset msetnx del unlink exists "
        "incr decr incrby decrby incrbyfloat append strlen getrange setrange substr "
        "setbit getbit bitcount bitpos lcs copy touch randomkey "
        "expire pexpire expireat pexpireat expiretime pexpiretime ttl pttl persist keys scan "
        "type rename renamenx dbsize flushall flushdb multi exec discard watch unwatch "
        "ping echo quit auth hello select info role replicaof slaveof wait debug time save "
        "bgsave failover reset shutdown monitor"
    )
}
IMPLEMENTED["client"] = _words(
    "setname getname id info list kill no-evict no-touch reply pause unpause setinfo help"
)
IMPLEMENTED["config"] = _words("get set resetstat rewrite help")
IMPLEMENTED["command"] = _words("count docs getkeys getkeysandflags info list help")
IMPLEMENTED["object"] = _words("encoding freq idletime refcount help")


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def read(self) -> Any:
        line = self.file.readline()[:-2]
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return ("status", rest)
        if kind == b"$":
            return self.file.read(int(rest) + 2)[:-2].decode()
        if kind == b":":
            return int(rest)
        if kind == b"_":
            return None
        if kind in (b"*", b"~"):
            items = [self.read() for _ in range(int(rest))]
            return ("set", items) if kind == b"~" else items
        if kind == b"%":
            return {self.read(): self.read() for _ in range(int(rest))}
        raise ValueError(line)


def _plain(value: Any) -> Any:
    """Key specs: bulk strings stay str, the status-string flag sets become lists."""
    if isinstance(value, tuple):
        return [v[1] if isinstance(v, tuple) else v for v in value[1]]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _items(value: Any) -> list[Any]:
    return value[1] if isinstance(value, tuple) else value  # type: ignore[no-any-return]


def _row(info: list[Any], subs: list[str] | None) -> tuple[Any, ...]:
    name, arity, flags, first, last, step, acl, tips, specs, children = info
    kept = []
    for child in _items(children):
        if subs is not None and child[0].split("|", 1)[1] in subs:
            kept.append(_row(child, None))
    return (
        name,
        arity,
        tuple(f[1] for f in flags[1]),
        first,
        last,
        step,
        tuple(a[1] for a in acl[1]),
        tuple(_items(tips)),
        tuple(_plain(s) for s in _items(specs)),
        tuple(sorted(kept)),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--docs", action="store_true", help="write command_docs.py instead")
    args = parser.parse_args()
    sock = socket.create_connection(("127.0.0.1", args.port))
    reader = _Reader(sock)
    sock.sendall(b"HELLO 3\r\n")
    reader.read()
    names = sorted(IMPLEMENTED)
    request = ["COMMAND", "INFO", *names]
    sock.sendall(
        b"*%d\r\n" % len(request)
        + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in request)
    )
    rows = [_row(info, IMPLEMENTED[n]) for n, info in zip(names, reader.read(), strict=True)]
    if args.docs:
        request = ["COMMAND", "DOCS", *names]
        sock.sendall(
            b"*%d\r\n" % len(request)
            + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in request)
        )
        docs = {}
        for name, doc in reader.read().items():
            doc = _plain(doc)
            subs = IMPLEMENTED[name]
            if "subcommands" in doc:
                doc["subcommands"] = {
                    k: v for k, v in doc["subcommands"].items() if subs and k.split("|")[1] in subs
                }
            docs[name] = doc
        print(DOCS_TEMPLATE.format(docs=pprint.pformat(docs, width=100, sort_dicts=False)))
        return
    print(TEMPLATE.format(rows=pprint.pformat(rows, width=100, sort_dicts=False)))


TEMPLATE = '''"""What ``COMMAND INFO`` says about every command (generated from Redis 7.0.15's own table
by ``tests/compat/gen_command_table.py``; regenerate rather than edit).

One row per command: name, arity (negative: at least that many arguments), flags, first
key, last key, key step, ACL categories, tips, key specs, subcommands (rows of the same
shape).  :mod:`synap.api.resp_table` joins them with the handlers: the dispatcher checks
arity against them, as Redis does, and ``COMMAND`` reports them.
"""

from __future__ import annotations

from typing import Any

Row = tuple[Any, ...]

ROWS: list[Row] = {rows}

# Commands of ours that Redis does not have (WAITAOF is Redis 7.2's; SENTINEL answers the
# read-only subset that clients use to find the master).
ROWS.append(("kvstats", 1, ("readonly", "fast"), 0, 0, 0, ("@read", "@fast"), (), (), ()))
ROWS.append(
    (
        "waitaof",
        4,
        ("noscript",),
        0,
        0,
        0,
        ("@slow", "@connection"),
        ("request_policy:all_shards", "response_policy:agg_min"),
        (),
        (),
    )
)
ROWS.append(
    ("synap.offset", 1, ("loading", "stale", "fast"), 0, 0, 0, ("@fast", "@connection"), (), (), ())
)
ROWS.append(("synap.waitoffset", 3, ("noscript",), 0, 0, 0, ("@slow", "@connection"), (), (), ()))
ROWS.append(("sentinel", -2, ("noscript", "loading", "stale"), 0, 0, 0, ("@slow",), (), (), ()))

# Subcommands of Redis 7.2 that clients send (redis-py: CLIENT SETINFO on connect).
_CLIENT_72 = (
    ("client|no-touch", 3, ("noscript", "loading", "stale"), 0, 0, 0,
     ("@slow", "@connection"), (), (), ()),
    ("client|setinfo", 4, ("noscript", "loading", "stale"), 0, 0, 0,
     ("@slow", "@connection"), ("request_policy:all_nodes", "response_policy:all_succeeded"),
     (), ()),
)  # fmt: skip
ROWS = [
    (*r[:9], tuple(sorted(r[9] + _CLIENT_72, key=lambda s: str(s[0])))) if r[0] == "client" else r
    for r in ROWS
]

#: name (upper case, bytes) -> row; subcommands as b"CLIENT|ID".
TABLE: dict[bytes, Row] = {{}}
for _row in ROWS:
    TABLE[_row[0].upper().encode()] = _row
    for _sub in _row[9]:
        TABLE[_sub[0].upper().encode()] = _sub
'''

DOCS_TEMPLATE = '''"""What ``COMMAND DOCS`` says about every command (generated from Redis 7.0.15 by
``tests/compat/gen_command_table.py``; regenerate rather than edit).  Lists under the keys
``flags``, ``doc_flags`` and ``history`` are sets in the reply, flags as status strings.
"""

from __future__ import annotations

from typing import Any

DOCS: dict[str, dict[str, Any]] = {docs}
'''

if __name__ == "__main__":
    main()

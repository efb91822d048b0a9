"""Why each remaining failure of Redis's suite fails on synap-server, in one line, for
``docs/COMPATIBILITY.md``.

First the tests looked at one by one (:data:`BY_TEST`, matched on the test name); then
the error the suite logged is classified (:data:`BY_ERROR`): a command we do not have
(named in the error) or a configuration parameter we do not have."""

from __future__ import annotations

import re

# Data types and features out of scope (issue 9): the commands that need them.
_COMMANDS = {
    "needs lists: out of scope": "lpush rpush lrange lpop rpop blpop brpop lmove linsert",
    "needs sets: out of scope": "sadd srandmember smembers spop sinter",
    "needs hashes: out of scope": "hset hmset hget hgetall",
    "needs sorted sets: out of scope": "zadd zrange zunionstore",
    "needs geo (sorted sets): out of scope": "geoadd georadius",
    "needs streams: out of scope": "xadd xgroup xreadgroup xread",
    "needs scripting (EVAL / FUNCTION): out of scope": "eval evalsha script function fcall",
    "needs pub/sub: out of scope": "subscribe psubscribe publish",
    "needs ACLs: out of scope": "acl",
    "needs MIGRATE (cluster tooling): out of scope": "migrate",
    "needs SORT (lists/sets): out of scope": "sort",
}
_COMMAND_REASON = {cmd: why for why, cmds in _COMMANDS.items() for cmd in cmds.split()}

_PARAMETERS = {
    "repl-ping-replica-period": "reads Redis's replication stream (SYNC); our replication "
    "protocol is our own (effect records), not Redis's command stream",
    "lua-time-limit": "needs scripting (script timeout): out of scope",
    "replica-serve-stale-data": "needs replica-serve-stale-data (a replica of an unreachable "
    "master answering MASTERDOWN)",
    "zset-max-ziplist-entries": "needs sorted sets: out of scope",
    "hash-max-ziplist-entries": "needs hashes: out of scope",
    "aof-use-rdb-preamble": "needs AOF rewriting and DEBUG LOADAOF (our WAL is not an AOF)",
    "maxmemory-clients": "needs maxmemory-clients (client eviction)",
    "daemonize": "expects every Redis parameter to be known (daemonize as immutable)",
}

_CASCADE = (
    "the connection was left inside MULTI by the failed 'command stats for MULTI' (GEOADD, "
    "out of scope): this test's commands were answered QUEUED"
)

# (file or "" for any, substring of the test name, reason): checked first.
BY_TEST: list[tuple[str, str, str]] = [
    ("", "Check consistency of different data types", "needs lists, sets, hashes, sorted sets"),
    ("", "command stats for GEOADD", "needs geo (sorted sets): out of scope"),
    ("", "command stats for BRPOP", "needs lists: out of scope"),
    ("", "command stats for MULTI", "needs geo (GEOADD inside the transaction): out of scope"),
    ("", "command stats for scripts", "needs scripting (EVAL): out of scope"),
    (
        "",
        "against integer-encoded key",
        "OBJECT ENCODING is worked out from the content "
        "(int); Redis turns a value SETRANGE changed into raw, our values carry no encoding",
    ),
    (
        "",
        "shared objects in the 0-9999 range",
        "values are never shared here (OBJECT REFCOUNT is 1)",
    ),
    ("", "modify objects in-place", "needs DEBUG OBJECT (object identity in memory)"),
    ("", "alter the last access time", "needs OBJECT IDLETIME: no per-key access clock"),
    ("", "alters the last access time", "needs OBJECT IDLETIME: no per-key access clock"),
    ("", "after loadaof", "needs AOF and DEBUG LOADAOF (our WAL is not an AOF)"),
    ("", "after AOF reload", "needs AOF and DEBUG LOADAOF (our WAL is not an AOF)"),
    ("", "BGSAVE", "needs DEBUG RELOAD (save and load the dataset in place)"),
    ("", "after a reload", "needs DEBUG RELOAD (save and load the dataset in place)"),
    ("", "RESET clears client state", "needs CLIENT TRACKING (client-side caching)"),
    (
        "",
        "is marked with movablekeys",
        "COMMAND INFO describes only the commands this server has; this one is out of scope",
    ),
    ("unit/introspection-2", "COMMAND GETKEYS", _CASCADE),
    ("unit/introspection-2", "COMMAND LIST", _CASCADE),
    ("unit/introspection-2", "COMMAND INFO", _CASCADE),
    (
        "",
        "CONFIG sanity",
        "sets every Redis parameter to its own value; most of them do not exist here",
    ),
    (
        "",
        "CONFIG SET with multiple args",
        "CONFIG SET of repl-backlog-size (not settable here: the backlog is sized at start)",
    ),
    (
        "",
        "rollback on set error",
        "needs maxmemory-clients and client-query-buffer-limit as "
        "settable parameters (client eviction, query buffer limits)",
    ),
    ("", "rollback on apply error", "needs CONFIG SET port (moving the listener)"),
    ("", "CONFIG GET hidden configs", "needs Redis's hidden debug parameters (key-load-delay)"),
    ("", "CONFIG GET multiple args", "asks for slaveof and other parameters we do not have"),
    ("", "errors stats for GEOADD", "needs geo (sorted sets): out of scope"),
    ("", "raw protocol response", "needs sets (SRANDMEMBER): out of scope"),
]


def reason_for(file: str, test: str, error: str = "") -> str:
    for where, needle, reason in BY_TEST:
        if (not where or where == file) and needle.lower() in test.lower():
            return reason
    m = re.search(r"command '([A-Za-z_]+)'", error)
    if m and m.group(1).lower() in _COMMAND_REASON:
        return _COMMAND_REASON[m.group(1).lower()]
    m = re.search(r"CONFIG SET - '([a-z-]+)'", error)
    if m and m.group(1) in _PARAMETERS:
        return _PARAMETERS[m.group(1)]
    if "replication_stream" in error or "'SYNC'" in error:
        return _PARAMETERS["repl-ping-replica-period"]
    return f"not analysed yet ({error.strip()[:80]})" if error else "not analysed yet"

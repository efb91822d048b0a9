"""What ``COMMAND DOCS`` says about every command (generated from Redis 7.0.15 by
``tests/compat/gen_command_table.py``; regenerate rather than edit).  Lists under the keys
``flags``, ``doc_flags`` and ``history`` are sets in the reply, flags as status strings.
"""

from __future__ import annotations

from typing import Any

DOCS: dict[str, dict[str, Any]] = {
    "append": {
        "summary": "Append a value to a key",
        "since": "2.0.0",
        "group": "string",
        "complexity": "O(1). The amortized time complexity is O(1) assuming the appended value "
        "is small and the already present value is of any size, since the "
        "dynamic string library used by Redis will double the free space "
        "available on every reallocation.",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "value", "type": "string"},
        ],
    },
    "auth": {
        "summary": "Authenticate to the server",
        "since": "1.0.0",
        "group": "connection",
        "complexity": "O(N) where N is the number of passwords defined for the user",
        "history": [["6.0.0", "Added ACL style (username and password)."]],
        "arguments": [
            {"name": "username", "type": "string", "since": "6.0.0", "flags": ["optional"]},
            {"name": "password", "type": "string"},
        ],
    },
    "bgsave": {
        "summary": "Asynchronously save the dataset to disk",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(1)",
        "history": [["3.2.2", "Added the `SCHEDULE` option."]],
        "arguments": [
            {
                "name": "schedule",
                "type": "pure-token",
                "token": "SCHEDULE",
                "since": "3.2.2",
                "flags": ["optional"],
            }
        ],
    },
    "bitcount": {
        "summary": "Count set bits in a string",
        "since": "2.6.0",
        "group": "bitmap",
        "complexity": "O(N)",
        "history": [["7.0.0", "Added the `BYTE|BIT` option."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {
                "name": "index",
                "type": "block",
                "flags": ["optional"],
                "arguments": [
                    {"name": "start", "type": "integer"},
                    {"name": "end", "type": "integer"},
                    {
                        "name": "index_unit",
                        "type": "oneof",
                        "since": "7.0.0",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "byte", "type": "pure-token", "token": "BYTE"},
                            {"name": "bit", "type": "pure-token", "token": "BIT"},
                        ],
                    },
                ],
            },
        ],
    },
    "bitpos": {
        "summary": "Find first bit set or clear in a string",
        "since": "2.8.7",
        "group": "bitmap",
        "complexity": "O(N)",
        "history": [["7.0.0", "Added the `BYTE|BIT` option."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "bit", "type": "integer"},
            {
                "name": "index",
                "type": "block",
                "flags": ["optional"],
                "arguments": [
                    {"name": "start", "type": "integer"},
                    {
                        "name": "end_index",
                        "type": "block",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "end", "type": "integer"},
                            {
                                "name": "index_unit",
                                "type": "oneof",
                                "since": "7.0.0",
                                "flags": ["optional"],
                                "arguments": [
                                    {"name": "byte", "type": "pure-token", "token": "BYTE"},
                                    {"name": "bit", "type": "pure-token", "token": "BIT"},
                                ],
                            },
                        ],
                    },
                ],
            },
        ],
    },
    "client": {
        "summary": "A container for client connection commands",
        "since": "2.4.0",
        "group": "connection",
        "complexity": "Depends on subcommand.",
        "subcommands": {
            "client|setname": {
                "summary": "Set the current connection name",
                "since": "2.6.9",
                "group": "connection",
                "complexity": "O(1)",
                "arguments": [{"name": "connection-name", "type": "string"}],
            },
            "client|reply": {
                "summary": "Instruct the server whether to reply to commands",
                "since": "3.2.0",
                "group": "connection",
                "complexity": "O(1)",
                "arguments": [
                    {
                        "name": "on_off_skip",
                        "type": "oneof",
                        "arguments": [
                            {"name": "on", "type": "pure-token", "token": "ON"},
                            {"name": "off", "type": "pure-token", "token": "OFF"},
                            {"name": "skip", "type": "pure-token", "token": "SKIP"},
                        ],
                    }
                ],
            },
            "client|info": {
                "summary": "Returns information about the current client connection.",
                "since": "6.2.0",
                "group": "connection",
                "complexity": "O(1)",
            },
            "client|list": {
                "summary": "Get the list of client connections",
                "since": "2.4.0",
                "group": "connection",
                "complexity": "O(N) where N is the number of client connections",
                "history": [
                    ["2.8.12", "Added unique client `id` field."],
                    ["5.0.0", "Added optional `TYPE` filter."],
                    ["6.0.0", "Added `user` field."],
                    [
                        "6.2.0",
                        "Added `argv-mem`, `tot-mem`, `laddr` and "
                        "`redir` fields and the optional `ID` "
                        "filter.",
                    ],
                    ["7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."],
                    ["7.0.3", "Added `ssub` field."],
                ],
                "arguments": [
                    {
                        "name": "normal_master_replica_pubsub",
                        "type": "oneof",
                        "token": "TYPE",
                        "since": "5.0.0",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "normal", "type": "pure-token", "token": "NORMAL"},
                            {"name": "master", "type": "pure-token", "token": "MASTER"},
                            {"name": "replica", "type": "pure-token", "token": "REPLICA"},
                            {"name": "pubsub", "type": "pure-token", "token": "PUBSUB"},
                        ],
                    },
                    {
                        "name": "id",
                        "type": "block",
                        "token": "ID",
                        "since": "6.2.0",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "client-id", "type": "integer", "flags": ["multiple"]}
                        ],
                    },
                ],
            },
            "client|getname": {
                "summary": "Get the current connection name",
                "since": "2.6.9",
                "group": "connection",
                "complexity": "O(1)",
            },
            "client|id": {
                "summary": "Returns the client ID for the current connection",
                "since": "5.0.0",
                "group": "connection",
                "complexity": "O(1)",
            },
            "client|no-evict": {
                "summary": "Set client eviction mode for the current connection",
                "since": "7.0.0",
                "group": "connection",
                "complexity": "O(1)",
                "arguments": [
                    {
                        "name": "enabled",
                        "type": "oneof",
                        "arguments": [
                            {"name": "on", "type": "pure-token", "token": "ON"},
                            {"name": "off", "type": "pure-token", "token": "OFF"},
                        ],
                    }
                ],
            },
            "client|help": {
                "summary": "Show helpful text about the different subcommands",
                "since": "5.0.0",
                "group": "connection",
                "complexity": "O(1)",
            },
            "client|unpause": {
                "summary": "Resume processing of clients that were paused",
                "since": "6.2.0",
                "group": "connection",
                "complexity": "O(N) Where N is the number of paused clients",
            },
            "client|kill": {
                "summary": "Kill the connection of a client",
                "since": "2.4.0",
                "group": "connection",
                "complexity": "O(N) where N is the number of client connections",
                "history": [
                    ["2.8.12", "Added new filter format."],
                    ["2.8.12", "`ID` option."],
                    ["3.2.0", "Added `master` type in for `TYPE` option."],
                    [
                        "5.0.0",
                        "Replaced `slave` `TYPE` with `replica`. "
                        "`slave` still supported for backward "
                        "compatibility.",
                    ],
                    ["6.2.0", "`LADDR` option."],
                ],
                "arguments": [
                    {
                        "name": "filter",
                        "type": "oneof",
                        "arguments": [
                            {"name": "ip:port", "type": "string", "deprecated_since": "2.8.12"},
                            {
                                "name": "new-format",
                                "type": "oneof",
                                "flags": ["multiple"],
                                "arguments": [
                                    {
                                        "name": "client-id",
                                        "type": "integer",
                                        "token": "ID",
                                        "since": "2.8.12",
                                        "flags": ["optional"],
                                    },
                                    {
                                        "name": "normal_master_slave_pubsub",
                                        "type": "oneof",
                                        "token": "TYPE",
                                        "since": "2.8.12",
                                        "flags": ["optional"],
                                        "arguments": [
                                            {
                                                "name": "normal",
                                                "type": "pure-token",
                                                "token": "NORMAL",
                                            },
                                            {
                                                "name": "master",
                                                "type": "pure-token",
                                                "token": "MASTER",
                                                "since": "3.2.0",
                                            },
                                            {
                                                "name": "slave",
                                                "type": "pure-token",
                                                "token": "SLAVE",
                                            },
                                            {
                                                "name": "replica",
                                                "type": "pure-token",
                                                "token": "REPLICA",
                                                "since": "5.0.0",
                                            },
                                            {
                                                "name": "pubsub",
                                                "type": "pure-token",
                                                "token": "PUBSUB",
                                            },
                                        ],
                                    },
                                    {
                                        "name": "username",
                                        "type": "string",
                                        "token": "USER",
                                        "flags": ["optional"],
                                    },
                                    {
                                        "name": "ip:port",
                                        "type": "string",
                                        "token": "ADDR",
                                        "flags": ["optional"],
                                    },
                                    {
                                        "name": "ip:port",
                                        "type": "string",
                                        "token": "LADDR",
                                        "since": "6.2.0",
                                        "flags": ["optional"],
                                    },
                                    {
                                        "name": "yes/no",
                                        "type": "string",
                                        "token": "SKIPME",
                                        "flags": ["optional"],
                                    },
                                ],
                            },
                        ],
                    }
                ],
            },
            "client|pause": {
                "summary": "Stop processing commands from clients for some time",
                "since": "2.9.50",
                "group": "connection",
                "complexity": "O(1)",
                "history": [
                    ["6.2.0", "`CLIENT PAUSE WRITE` mode added along with the `mode` option."]
                ],
                "arguments": [
                    {"name": "timeout", "type": "integer"},
                    {
                        "name": "mode",
                        "type": "oneof",
                        "since": "6.2.0",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "write", "type": "pure-token", "token": "WRITE"},
                            {"name": "all", "type": "pure-token", "token": "ALL"},
                        ],
                    },
                ],
            },
        },
    },
    "command": {
        "summary": "Get array of Redis command details",
        "since": "2.8.13",
        "group": "server",
        "complexity": "O(N) where N is the total number of Redis commands",
        "subcommands": {
            "command|help": {
                "summary": "Show helpful text about the different subcommands",
                "since": "5.0.0",
                "group": "server",
                "complexity": "O(1)",
            },
            "command|info": {
                "summary": "Get array of specific Redis command "
                "details, or all when no argument is "
                "given.",
                "since": "2.8.13",
                "group": "server",
                "complexity": "O(N) where N is the number of commands to look up",
                "history": [
                    ["7.0.0", "Allowed to be called with no argument to get info on all commands."]
                ],
                "arguments": [
                    {"name": "command-name", "type": "string", "flags": ["optional", "multiple"]}
                ],
            },
            "command|count": {
                "summary": "Get total number of Redis commands",
                "since": "2.8.13",
                "group": "server",
                "complexity": "O(1)",
            },
            "command|list": {
                "summary": "Get an array of Redis command names",
                "since": "7.0.0",
                "group": "server",
                "complexity": "O(N) where N is the total number of Redis commands",
                "arguments": [
                    {
                        "name": "filterby",
                        "type": "oneof",
                        "token": "FILTERBY",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "module-name", "type": "string", "token": "MODULE"},
                            {"name": "category", "type": "string", "token": "ACLCAT"},
                            {"name": "pattern", "type": "pattern", "token": "PATTERN"},
                        ],
                    }
                ],
            },
            "command|getkeys": {
                "summary": "Extract keys given a full Redis command",
                "since": "2.8.13",
                "group": "server",
                "complexity": "O(N) where N is the number of arguments to the command",
            },
            "command|docs": {
                "summary": "Get array of specific Redis command documentation",
                "since": "7.0.0",
                "group": "server",
                "complexity": "O(N) where N is the number of commands to look up",
                "arguments": [
                    {"name": "command-name", "type": "string", "flags": ["optional", "multiple"]}
                ],
            },
            "command|getkeysandflags": {
                "summary": "Extract keys and access flags given a full Redis command",
                "since": "7.0.0",
                "group": "server",
                "complexity": "O(N) where N is the number of arguments to the command",
            },
        },
    },
    "config": {
        "summary": "A container for server configuration commands",
        "since": "2.0.0",
        "group": "server",
        "complexity": "Depends on subcommand.",
        "subcommands": {
            "config|help": {
                "summary": "Show helpful text about the different subcommands",
                "since": "5.0.0",
                "group": "server",
                "complexity": "O(1)",
            },
            "config|resetstat": {
                "summary": "Reset the stats returned by INFO",
                "since": "2.0.0",
                "group": "server",
                "complexity": "O(1)",
            },
            "config|rewrite": {
                "summary": "Rewrite the configuration file with the in memory configuration",
                "since": "2.8.0",
                "group": "server",
                "complexity": "O(1)",
            },
            "config|get": {
                "summary": "Get the values of configuration parameters",
                "since": "2.0.0",
                "group": "server",
                "complexity": "O(N) when N is the number of configuration parameters provided",
                "history": [
                    ["7.0.0", "Added the ability to pass multiple pattern parameters in one call"]
                ],
                "arguments": [
                    {
                        "name": "parameter",
                        "type": "block",
                        "flags": ["multiple"],
                        "arguments": [{"name": "parameter", "type": "string"}],
                    }
                ],
            },
            "config|set": {
                "summary": "Set configuration parameters to the given values",
                "since": "2.0.0",
                "group": "server",
                "complexity": "O(N) when N is the number of configuration parameters provided",
                "history": [["7.0.0", "Added the ability to set multiple parameters in one call."]],
                "arguments": [
                    {
                        "name": "parameter_value",
                        "type": "block",
                        "flags": ["multiple"],
                        "arguments": [
                            {"name": "parameter", "type": "string"},
                            {"name": "value", "type": "string"},
                        ],
                    }
                ],
            },
        },
    },
    "copy": {
        "summary": "Copy a key",
        "since": "6.2.0",
        "group": "generic",
        "complexity": "O(N) worst case for collections, where N is the number of nested items. "
        "O(1) for string values.",
        "arguments": [
            {"name": "source", "type": "key", "key_spec_index": 0},
            {"name": "destination", "type": "key", "key_spec_index": 1},
            {"name": "destination-db", "type": "integer", "token": "DB", "flags": ["optional"]},
            {"name": "replace", "type": "pure-token", "token": "REPLACE", "flags": ["optional"]},
        ],
    },
    "dbsize": {
        "summary": "Return the number of keys in the selected database",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(1)",
    },
    "debug": {
        "summary": "A container for debugging commands",
        "since": "1.0.0",
        "group": "server",
        "complexity": "Depends on subcommand.",
        "doc_flags": ["syscmd"],
    },
    "decr": {
        "summary": "Decrement the integer value of a key by one",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "decrby": {
        "summary": "Decrement the integer value of a key by the given number",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "decrement", "type": "integer"},
        ],
    },
    "del": {
        "summary": "Delete a key",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(N) where N is the number of keys that will be removed. When a key to "
        "remove holds a value other than a string, the individual complexity for "
        "this key is O(M) where M is the number of elements in the list, set, "
        "sorted set or hash. Removing a single key that holds a string value is "
        "O(1).",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
    "discard": {
        "summary": "Discard all commands issued after MULTI",
        "since": "2.0.0",
        "group": "transactions",
        "complexity": "O(N), when N is the number of queued commands",
    },
    "echo": {
        "summary": "Echo the given string",
        "since": "1.0.0",
        "group": "connection",
        "complexity": "O(1)",
        "arguments": [{"name": "message", "type": "string"}],
    },
    "exec": {
        "summary": "Execute all commands issued after MULTI",
        "since": "1.2.0",
        "group": "transactions",
        "complexity": "Depends on commands in the transaction",
    },
    "exists": {
        "summary": "Determine if a key exists",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(N) where N is the number of keys to check.",
        "history": [["3.0.3", "Accepts multiple `key` arguments."]],
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
    "expire": {
        "summary": "Set a key's time to live in seconds",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "seconds", "type": "integer"},
            {
                "name": "condition",
                "type": "oneof",
                "since": "7.0.0",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nx", "type": "pure-token", "token": "NX"},
                    {"name": "xx", "type": "pure-token", "token": "XX"},
                    {"name": "gt", "type": "pure-token", "token": "GT"},
                    {"name": "lt", "type": "pure-token", "token": "LT"},
                ],
            },
        ],
    },
    "expireat": {
        "summary": "Set the expiration for a key as a UNIX timestamp",
        "since": "1.2.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "unix-time-seconds", "type": "unix-time"},
            {
                "name": "condition",
                "type": "oneof",
                "since": "7.0.0",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nx", "type": "pure-token", "token": "NX"},
                    {"name": "xx", "type": "pure-token", "token": "XX"},
                    {"name": "gt", "type": "pure-token", "token": "GT"},
                    {"name": "lt", "type": "pure-token", "token": "LT"},
                ],
            },
        ],
    },
    "expiretime": {
        "summary": "Get the expiration Unix timestamp for a key",
        "since": "7.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "failover": {
        "summary": "Start a coordinated failover between this server and one of its replicas.",
        "since": "6.2.0",
        "group": "server",
        "complexity": "O(1)",
        "arguments": [
            {
                "name": "target",
                "type": "block",
                "token": "TO",
                "flags": ["optional"],
                "arguments": [
                    {"name": "host", "type": "string"},
                    {"name": "port", "type": "integer"},
                    {
                        "name": "force",
                        "type": "pure-token",
                        "token": "FORCE",
                        "flags": ["optional"],
                    },
                ],
            },
            {"name": "abort", "type": "pure-token", "token": "ABORT", "flags": ["optional"]},
            {"name": "milliseconds", "type": "integer", "token": "TIMEOUT", "flags": ["optional"]},
        ],
    },
    "flushall": {
        "summary": "Remove all keys from all databases",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(N) where N is the total number of keys in all databases",
        "history": [
            ["4.0.0", "Added the `ASYNC` flushing mode modifier."],
            ["6.2.0", "Added the `SYNC` flushing mode modifier."],
        ],
        "arguments": [
            {
                "name": "async",
                "type": "oneof",
                "flags": ["optional"],
                "arguments": [
                    {"name": "async", "type": "pure-token", "token": "ASYNC", "since": "4.0.0"},
                    {"name": "sync", "type": "pure-token", "token": "SYNC", "since": "6.2.0"},
                ],
            }
        ],
    },
    "flushdb": {
        "summary": "Remove all keys from the current database",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(N) where N is the number of keys in the selected database",
        "history": [
            ["4.0.0", "Added the `ASYNC` flushing mode modifier."],
            ["6.2.0", "Added the `SYNC` flushing mode modifier."],
        ],
        "arguments": [
            {
                "name": "async",
                "type": "oneof",
                "flags": ["optional"],
                "arguments": [
                    {"name": "async", "type": "pure-token", "token": "ASYNC", "since": "4.0.0"},
                    {"name": "sync", "type": "pure-token", "token": "SYNC", "since": "6.2.0"},
                ],
            }
        ],
    },
    "get": {
        "summary": "Get the value of a key",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "getbit": {
        "summary": "Returns the bit value at offset in the string value stored at key",
        "since": "2.2.0",
        "group": "bitmap",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "offset", "type": "integer"},
        ],
    },
    "getdel": {
        "summary": "Get the value of a key and delete the key",
        "since": "6.2.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "getex": {
        "summary": "Get the value of a key and optionally set its expiration",
        "since": "6.2.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {
                "name": "expiration",
                "type": "oneof",
                "flags": ["optional"],
                "arguments": [
                    {"name": "seconds", "type": "integer", "token": "EX"},
                    {"name": "milliseconds", "type": "integer", "token": "PX"},
                    {"name": "unix-time-seconds", "type": "unix-time", "token": "EXAT"},
                    {"name": "unix-time-milliseconds", "type": "unix-time", "token": "PXAT"},
                    {"name": "persist", "type": "pure-token", "token": "PERSIST"},
                ],
            },
        ],
    },
    "getrange": {
        "summary": "Get a substring of the string stored at a key",
        "since": "2.4.0",
        "group": "string",
        "complexity": "O(N) where N is the length of the returned string. The complexity is "
        "ultimately determined by the returned length, but because creating a "
        "substring from an existing string is very cheap, it can be considered "
        "O(1) for small strings.",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "start", "type": "integer"},
            {"name": "end", "type": "integer"},
        ],
    },
    "getset": {
        "summary": "Set the string value of a key and return its old value",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "doc_flags": ["deprecated"],
        "deprecated_since": "6.2.0",
        "replaced_by": "`SET` with the `!GET` argument",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "value", "type": "string"},
        ],
    },
    "hello": {
        "summary": "Handshake with Redis",
        "since": "6.0.0",
        "group": "connection",
        "complexity": "O(1)",
        "history": [
            [
                "6.2.0",
                "`protover` made optional; when called without arguments the command "
                "reports the current connection's context.",
            ]
        ],
        "arguments": [
            {
                "name": "arguments",
                "type": "block",
                "flags": ["optional"],
                "arguments": [
                    {"name": "protover", "type": "integer"},
                    {
                        "name": "username_password",
                        "type": "block",
                        "token": "AUTH",
                        "flags": ["optional"],
                        "arguments": [
                            {"name": "username", "type": "string"},
                            {"name": "password", "type": "string"},
                        ],
                    },
                    {
                        "name": "clientname",
                        "type": "string",
                        "token": "SETNAME",
                        "flags": ["optional"],
                    },
                ],
            }
        ],
    },
    "incr": {
        "summary": "Increment the integer value of a key by one",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "incrby": {
        "summary": "Increment the integer value of a key by the given amount",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "increment", "type": "integer"},
        ],
    },
    "incrbyfloat": {
        "summary": "Increment the float value of a key by the given amount",
        "since": "2.6.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "increment", "type": "double"},
        ],
    },
    "info": {
        "summary": "Get information and statistics about the server",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(1)",
        "history": [["7.0.0", "Added support for taking multiple section arguments."]],
        "arguments": [{"name": "section", "type": "string", "flags": ["optional", "multiple"]}],
    },
    "keys": {
        "summary": "Find all keys matching the given pattern",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(N) with N being the number of keys in the database, under the "
        "assumption that the key names in the database and the given pattern have "
        "limited length.",
        "arguments": [{"name": "pattern", "type": "pattern"}],
    },
    "lcs": {
        "summary": "Find longest common substring",
        "since": "7.0.0",
        "group": "string",
        "complexity": "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        "arguments": [
            {"name": "key1", "type": "key", "key_spec_index": 0},
            {"name": "key2", "type": "key", "key_spec_index": 0},
            {"name": "len", "type": "pure-token", "token": "LEN", "flags": ["optional"]},
            {"name": "idx", "type": "pure-token", "token": "IDX", "flags": ["optional"]},
            {"name": "len", "type": "integer", "token": "MINMATCHLEN", "flags": ["optional"]},
            {
                "name": "withmatchlen",
                "type": "pure-token",
                "token": "WITHMATCHLEN",
                "flags": ["optional"],
            },
        ],
    },
    "mget": {
        "summary": "Get the values of all the given keys",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(N) where N is the number of keys to retrieve.",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
    "monitor": {
        "summary": "Listen for all requests received by the server in real time",
        "since": "1.0.0",
        "group": "server",
    },
    "mset": {
        "summary": "Set multiple keys to multiple values",
        "since": "1.0.1",
        "group": "string",
        "complexity": "O(N) where N is the number of keys to set.",
        "arguments": [
            {
                "name": "key_value",
                "type": "block",
                "flags": ["multiple"],
                "arguments": [
                    {"name": "key", "type": "key", "key_spec_index": 0},
                    {"name": "value", "type": "string"},
                ],
            }
        ],
    },
    "msetnx": {
        "summary": "Set multiple keys to multiple values, only if none of the keys exist",
        "since": "1.0.1",
        "group": "string",
        "complexity": "O(N) where N is the number of keys to set.",
        "arguments": [
            {
                "name": "key_value",
                "type": "block",
                "flags": ["multiple"],
                "arguments": [
                    {"name": "key", "type": "key", "key_spec_index": 0},
                    {"name": "value", "type": "string"},
                ],
            }
        ],
    },
    "multi": {
        "summary": "Mark the start of a transaction block",
        "since": "1.2.0",
        "group": "transactions",
        "complexity": "O(1)",
    },
    "object": {
        "summary": "A container for object introspection commands",
        "since": "2.2.3",
        "group": "generic",
        "complexity": "Depends on subcommand.",
        "subcommands": {
            "object|help": {
                "summary": "Show helpful text about the different subcommands",
                "since": "6.2.0",
                "group": "generic",
                "complexity": "O(1)",
            },
            "object|encoding": {
                "summary": "Inspect the internal encoding of a Redis object",
                "since": "2.2.3",
                "group": "generic",
                "complexity": "O(1)",
                "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
            },
            "object|idletime": {
                "summary": "Get the time since a Redis object was last accessed",
                "since": "2.2.3",
                "group": "generic",
                "complexity": "O(1)",
                "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
            },
            "object|freq": {
                "summary": "Get the logarithmic access frequency counter of a Redis object",
                "since": "4.0.0",
                "group": "generic",
                "complexity": "O(1)",
                "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
            },
            "object|refcount": {
                "summary": "Get the number of references to the value of the key",
                "since": "2.2.3",
                "group": "generic",
                "complexity": "O(1)",
                "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
            },
        },
    },
    "persist": {
        "summary": "Remove the expiration from a key",
        "since": "2.2.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "pexpire": {
        "summary": "Set a key's time to live in milliseconds",
        "since": "2.6.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "milliseconds", "type": "integer"},
            {
                "name": "condition",
                "type": "oneof",
                "since": "7.0.0",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nx", "type": "pure-token", "token": "NX"},
                    {"name": "xx", "type": "pure-token", "token": "XX"},
                    {"name": "gt", "type": "pure-token", "token": "GT"},
                    {"name": "lt", "type": "pure-token", "token": "LT"},
                ],
            },
        ],
    },
    "pexpireat": {
        "summary": "Set the expiration for a key as a UNIX timestamp specified in milliseconds",
        "since": "2.6.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`."]],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "unix-time-milliseconds", "type": "unix-time"},
            {
                "name": "condition",
                "type": "oneof",
                "since": "7.0.0",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nx", "type": "pure-token", "token": "NX"},
                    {"name": "xx", "type": "pure-token", "token": "XX"},
                    {"name": "gt", "type": "pure-token", "token": "GT"},
                    {"name": "lt", "type": "pure-token", "token": "LT"},
                ],
            },
        ],
    },
    "pexpiretime": {
        "summary": "Get the expiration Unix timestamp for a key in milliseconds",
        "since": "7.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "ping": {
        "summary": "Ping the server",
        "since": "1.0.0",
        "group": "connection",
        "complexity": "O(1)",
        "arguments": [{"name": "message", "type": "string", "flags": ["optional"]}],
    },
    "psetex": {
        "summary": "Set the value and expiration in milliseconds of a key",
        "since": "2.6.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "milliseconds", "type": "integer"},
            {"name": "value", "type": "string"},
        ],
    },
    "pttl": {
        "summary": "Get the time to live for a key in milliseconds",
        "since": "2.6.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["2.8.0", "Added the -2 reply."]],
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "quit": {
        "summary": "Close the connection",
        "since": "1.0.0",
        "group": "connection",
        "complexity": "O(1)",
    },
    "randomkey": {
        "summary": "Return a random key from the keyspace",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
    },
    "rename": {
        "summary": "Rename a key",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "newkey", "type": "key", "key_spec_index": 1},
        ],
    },
    "renamenx": {
        "summary": "Rename a key, only if the new key does not exist",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [
            [
                "3.2.0",
                "The command no longer returns an error when source and destination "
                "names are the same.",
            ]
        ],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "newkey", "type": "key", "key_spec_index": 1},
        ],
    },
    "replicaof": {
        "summary": "Make the server a replica of another instance, or promote it as master.",
        "since": "5.0.0",
        "group": "server",
        "complexity": "O(1)",
        "arguments": [
            {
                "name": "args",
                "type": "oneof",
                "arguments": [
                    {
                        "name": "host-port",
                        "type": "block",
                        "arguments": [
                            {"name": "host", "type": "string"},
                            {"name": "port", "type": "integer"},
                        ],
                    },
                    {
                        "name": "no-one",
                        "type": "block",
                        "arguments": [
                            {"name": "no", "type": "pure-token", "token": "NO"},
                            {"name": "one", "type": "pure-token", "token": "ONE"},
                        ],
                    },
                ],
            }
        ],
    },
    "reset": {
        "summary": "Reset the connection",
        "since": "6.2.0",
        "group": "connection",
        "complexity": "O(1)",
    },
    "role": {
        "summary": "Return the role of the instance in the context of replication",
        "since": "2.8.12",
        "group": "server",
        "complexity": "O(1)",
    },
    "save": {
        "summary": "Synchronously save the dataset to disk",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(N) where N is the total number of keys in all databases",
    },
    "scan": {
        "summary": "Incrementally iterate the keys space",
        "since": "2.8.0",
        "group": "generic",
        "complexity": "O(1) for every call. O(N) for a complete iteration, including enough "
        "command calls for the cursor to return back to 0. N is the number of "
        "elements inside the collection.",
        "history": [["6.0.0", "Added the `TYPE` subcommand."]],
        "arguments": [
            {"name": "cursor", "type": "integer"},
            {"name": "pattern", "type": "pattern", "token": "MATCH", "flags": ["optional"]},
            {"name": "count", "type": "integer", "token": "COUNT", "flags": ["optional"]},
            {
                "name": "type",
                "type": "string",
                "token": "TYPE",
                "since": "6.0.0",
                "flags": ["optional"],
            },
        ],
    },
    "select": {
        "summary": "Change the selected database for the current connection",
        "since": "1.0.0",
        "group": "connection",
        "complexity": "O(1)",
        "arguments": [{"name": "index", "type": "integer"}],
    },
    "set": {
        "summary": "Set the string value of a key",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "history": [
            ["2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."],
            ["6.0.0", "Added the `KEEPTTL` option."],
            ["6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."],
            ["7.0.0", "Allowed the `NX` and `GET` options to be used together."],
        ],
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "value", "type": "string"},
            {
                "name": "condition",
                "type": "oneof",
                "since": "2.6.12",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nx", "type": "pure-token", "token": "NX"},
                    {"name": "xx", "type": "pure-token", "token": "XX"},
                ],
            },
            {
                "name": "get",
                "type": "pure-token",
                "token": "GET",
                "since": "6.2.0",
                "flags": ["optional"],
            },
            {
                "name": "expiration",
                "type": "oneof",
                "flags": ["optional"],
                "arguments": [
                    {"name": "seconds", "type": "integer", "token": "EX", "since": "2.6.12"},
                    {"name": "milliseconds", "type": "integer", "token": "PX", "since": "2.6.12"},
                    {
                        "name": "unix-time-seconds",
                        "type": "unix-time",
                        "token": "EXAT",
                        "since": "6.2.0",
                    },
                    {
                        "name": "unix-time-milliseconds",
                        "type": "unix-time",
                        "token": "PXAT",
                        "since": "6.2.0",
                    },
                    {"name": "keepttl", "type": "pure-token", "token": "KEEPTTL", "since": "6.0.0"},
                ],
            },
        ],
    },
    "setbit": {
        "summary": "Sets or clears the bit at offset in the string value stored at key",
        "since": "2.2.0",
        "group": "bitmap",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "offset", "type": "integer"},
            {"name": "value", "type": "integer"},
        ],
    },
    "setex": {
        "summary": "Set the value and expiration of a key",
        "since": "2.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "seconds", "type": "integer"},
            {"name": "value", "type": "string"},
        ],
    },
    "setnx": {
        "summary": "Set the value of a key, only if the key does not exist",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "value", "type": "string"},
        ],
    },
    "setrange": {
        "summary": "Overwrite part of a string at key starting at the specified offset",
        "since": "2.2.0",
        "group": "string",
        "complexity": "O(1), not counting the time taken to copy the new string in place. "
        "Usually, this string is very small so the amortized complexity is "
        "O(1). Otherwise, complexity is O(M) with M being the length of the "
        "value argument.",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "offset", "type": "integer"},
            {"name": "value", "type": "string"},
        ],
    },
    "shutdown": {
        "summary": "Synchronously save the dataset to disk and then shut down the server",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(N) when saving, where N is the total number of keys in all "
        "databases when saving data, otherwise O(1)",
        "history": [["7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers."]],
        "arguments": [
            {
                "name": "nosave_save",
                "type": "oneof",
                "flags": ["optional"],
                "arguments": [
                    {"name": "nosave", "type": "pure-token", "token": "NOSAVE"},
                    {"name": "save", "type": "pure-token", "token": "SAVE"},
                ],
            },
            {
                "name": "now",
                "type": "pure-token",
                "token": "NOW",
                "since": "7.0.0",
                "flags": ["optional"],
            },
            {
                "name": "force",
                "type": "pure-token",
                "token": "FORCE",
                "since": "7.0.0",
                "flags": ["optional"],
            },
            {
                "name": "abort",
                "type": "pure-token",
                "token": "ABORT",
                "since": "7.0.0",
                "flags": ["optional"],
            },
        ],
    },
    "slaveof": {
        "summary": "Make the server a replica of another instance, or promote it as master.",
        "since": "1.0.0",
        "group": "server",
        "complexity": "O(1)",
        "doc_flags": ["deprecated"],
        "deprecated_since": "5.0.0",
        "replaced_by": "`REPLICAOF`",
        "arguments": [
            {
                "name": "args",
                "type": "oneof",
                "arguments": [
                    {
                        "name": "host-port",
                        "type": "block",
                        "arguments": [
                            {"name": "host", "type": "string"},
                            {"name": "port", "type": "integer"},
                        ],
                    },
                    {
                        "name": "no-one",
                        "type": "block",
                        "arguments": [
                            {"name": "no", "type": "pure-token", "token": "NO"},
                            {"name": "one", "type": "pure-token", "token": "ONE"},
                        ],
                    },
                ],
            }
        ],
    },
    "strlen": {
        "summary": "Get the length of the value stored in a key",
        "since": "2.2.0",
        "group": "string",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "substr": {
        "summary": "Get a substring of the string stored at a key",
        "since": "1.0.0",
        "group": "string",
        "complexity": "O(N) where N is the length of the returned string. The complexity is "
        "ultimately determined by the returned length, but because creating a "
        "substring from an existing string is very cheap, it can be considered "
        "O(1) for small strings.",
        "doc_flags": ["deprecated"],
        "deprecated_since": "2.0.0",
        "replaced_by": "`GETRANGE`",
        "arguments": [
            {"name": "key", "type": "key", "key_spec_index": 0},
            {"name": "start", "type": "integer"},
            {"name": "end", "type": "integer"},
        ],
    },
    "time": {
        "summary": "Return the current server time",
        "since": "2.6.0",
        "group": "server",
        "complexity": "O(1)",
    },
    "touch": {
        "summary": "Alters the last access time of a key(s). Returns the number of existing "
        "keys specified.",
        "since": "3.2.1",
        "group": "generic",
        "complexity": "O(N) where N is the number of keys that will be touched.",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
    "ttl": {
        "summary": "Get the time to live for a key in seconds",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "history": [["2.8.0", "Added the -2 reply."]],
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "type": {
        "summary": "Determine the type stored at key",
        "since": "1.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0}],
    },
    "unlink": {
        "summary": "Delete a key asynchronously in another thread. Otherwise it is just as "
        "DEL, but non blocking.",
        "since": "4.0.0",
        "group": "generic",
        "complexity": "O(1) for each key removed regardless of its size. Then the command does "
        "O(N) work in a different thread in order to reclaim memory, where N is "
        "the number of allocations the deleted objects where composed of.",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
    "unwatch": {
        "summary": "Forget about all watched keys",
        "since": "2.2.0",
        "group": "transactions",
        "complexity": "O(1)",
    },
    "wait": {
        "summary": "Wait for the synchronous replication of all the write commands sent in the "
        "context of the current connection",
        "since": "3.0.0",
        "group": "generic",
        "complexity": "O(1)",
        "arguments": [
            {"name": "numreplicas", "type": "integer"},
            {"name": "timeout", "type": "integer"},
        ],
    },
    "watch": {
        "summary": "Watch the given keys to determine execution of the MULTI/EXEC block",
        "since": "2.2.0",
        "group": "transactions",
        "complexity": "O(1) for every key.",
        "arguments": [{"name": "key", "type": "key", "key_spec_index": 0, "flags": ["multiple"]}],
    },
}

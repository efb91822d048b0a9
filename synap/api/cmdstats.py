"""Per-command and per-error counters for ``INFO commandstats`` / ``INFO errorstats``,
in Redis's terms: calls and microseconds of the commands that ran, ``rejected_calls``
(refused before running: authentication, permission, a bad transaction entry) and
``failed_calls`` (ran and answered an error); errors counted by their prefix."""

from __future__ import annotations

# Commands whose statistics are kept per subcommand (cmdstat_client|id), as in Redis.
CONTAINERS = frozenset({b"CLIENT", b"CONFIG", b"COMMAND", b"OBJECT"})


def stat_name(name: bytes, request: list[bytes]) -> bytes:
    if name in CONTAINERS and len(request) > 1:
        return name + b"|" + request[1].upper()
    return name


class CommandStats:
    """Errors are always counted.  Per-command calls and time cost every command a few
    hundred nanoseconds, so they are counted from the first ``INFO`` (of any section,
    that INFO included) or ``CONFIG RESETSTAT`` on (``per_command``): a server nobody
    inspects does not pay for them."""

    __slots__ = ("commands", "errors", "per_command")

    def __init__(self) -> None:
        # name (upper case, b"CLIENT|ID" for subcommands) -> [calls, ns, rejected, failed]
        self.commands: dict[bytes, list[int]] = {}
        self.errors: dict[str, int] = {}
        self.per_command = False

    def reset(self) -> None:
        self.commands = {}
        self.errors = {}
        self.per_command = True

    def ran(self, name: bytes, elapsed_ns: int, reply: object) -> None:
        row = self.commands.get(name) or self.row(name)
        row[0] += 1
        row[1] += elapsed_ns
        if type(reply) is bytes and reply[:1] == b"-":
            row[3] += 1
            self.error(reply)

    def ran_many(self, name: bytes, count: int, elapsed_ns: int) -> None:
        """``count`` calls of ``name`` that succeeded, ``elapsed_ns`` together."""
        row = self.commands.get(name) or self.row(name)
        row[0] += count
        row[1] += elapsed_ns

    def row(self, name: bytes) -> list[int]:
        row = self.commands.get(name)
        if row is None:
            row = self.commands[name] = [0, 0, 0, 0]
        return row

    def error(self, reply: bytes) -> None:
        prefix = reply[1:].split(b" ", 1)[0].decode(errors="replace")
        self.errors[prefix] = self.errors.get(prefix, 0) + 1

    def rejected(self, name: bytes | None, reply: bytes) -> None:
        self.error(reply)
        if name is not None and self.per_command:
            self.row(name)[2] += 1

    def command_fields(self) -> list[tuple[str, str]]:
        out = []
        for name, (calls, ns, rejected, failed) in sorted(self.commands.items()):
            usec = ns // 1000
            per_call = usec / calls if calls else 0.0
            out.append(
                (
                    f"cmdstat_{name.decode(errors='replace').lower()}",
                    f"calls={calls},usec={usec},usec_per_call={per_call:.2f},"
                    f"rejected_calls={rejected},failed_calls={failed}",
                )
            )
        return out

    def error_fields(self) -> list[tuple[str, str]]:
        return [(f"errorstat_{k}", f"count={v}") for k, v in sorted(self.errors.items())]

    def total_errors(self) -> int:
        return sum(self.errors.values())

"""``INFO commandstats`` / ``INFO errorstats`` in Redis's terms: calls and microseconds
of the commands that ran, ``rejected_calls`` (refused before running: arity,
authentication, permission, a bad transaction entry) and ``failed_calls`` (ran and
answered an error); errors counted by their prefix.

Calls and time are not counted twice: they are read from the RESP front end's
:class:`~synap.latency.CommandTimings` (kept for ``/metrics`` anyway, one observation per
command, per subcommand for container commands: ``CLIENT|ID``), less a baseline taken
at ``CONFIG RESETSTAT``.  Only refusals, failures and errors, which are rare, are
counted here."""

from __future__ import annotations

from synap.latency import CommandTimings

# Commands whose statistics are kept per subcommand (cmdstat_client|id), as in Redis.
CONTAINERS = frozenset({b"CLIENT", b"CONFIG", b"COMMAND", b"OBJECT"})


def stat_name(name: bytes, request: list[bytes]) -> bytes:
    if name in CONTAINERS and len(request) > 1:
        return name + b"|" + request[1].upper()
    return name


class CommandStats:
    __slots__ = ("timings", "baseline", "refusals", "errors")

    def __init__(self, timings: CommandTimings) -> None:
        self.timings = timings
        # name -> (calls, seconds) of the timings at the last CONFIG RESETSTAT
        self.baseline: dict[str | bytes, tuple[int, float]] = {}
        # name (upper case, b"CLIENT|ID" for subcommands) -> [rejected, failed]
        self.refusals: dict[bytes, list[int]] = {}
        self.errors: dict[str, int] = {}

    def reset(self) -> None:
        self.baseline = {k: (h.count, h.total) for k, h in self.timings.latency.items()}
        self.refusals = {}
        self.errors = {}

    def _row(self, name: bytes) -> list[int]:
        row = self.refusals.get(name)
        if row is None:
            row = self.refusals[name] = [0, 0]
        return row

    def error(self, reply: bytes) -> None:
        prefix = reply[1:].split(b" ", 1)[0].decode(errors="replace")
        self.errors[prefix] = self.errors.get(prefix, 0) + 1

    def failed(self, name: bytes, reply: bytes) -> None:
        """``name`` ran and answered the error ``reply``."""
        self.error(reply)
        self._row(name)[1] += 1

    def rejected(self, name: bytes | None, reply: bytes) -> None:
        """A command (``name``, None when unknown) refused before running."""
        self.error(reply)
        if name is not None:
            self._row(name)[0] += 1

    def rows(self) -> dict[bytes, tuple[int, int, int, int]]:
        """name -> (calls, microseconds, rejected, failed) since the last reset, for the
        commands with anything to show."""
        out: dict[bytes, tuple[int, int, int, int]] = {}
        baseline = self.baseline
        for key, hist in list(self.timings.latency.items()):
            if not isinstance(key, bytes):
                continue
            count, total = baseline.get(key, (0, 0.0))
            if hist.count > count:
                out[key] = (hist.count - count, int((hist.total - total) * 1e6), 0, 0)
        for key, (rejected, failed) in self.refusals.items():
            calls, usec, _, _ = out.get(key, (0, 0, 0, 0))
            out[key] = (calls, usec, rejected, failed)
        return out

    def command_fields(self) -> list[tuple[str, str]]:
        out = []
        for name, (calls, usec, rejected, failed) in sorted(self.rows().items()):
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

"""The node's replication topology in its data directory (``topology.json``), so that a
promotion or a repoint survives a restart: Redis ``CONFIG REWRITE``, for the role only.

Written atomically (temporary file, fsync, rename, fsync of the directory) after every
role change made at runtime; read once at start-up. Which source wins at start-up
(docs/CONFIGURATION.md, "Topology after a restart")::

    --role / --master-address on the command line   (explicit: they win)
    topology.json in the data directory             (the last runtime role change)
    replication.role / master_address in the config file, then the defaults

``--replica-listen`` on the command line likewise wins over a persisted listener.
Without a data directory (persistence disabled) nothing is persisted.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synap.persistence import fsync_directory

FILE_NAME = "topology.json"
ROLES = ("master", "replica", "standalone")


class TopologyError(Exception):
    """``topology.json`` exists but cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class Topology:
    role: str
    master_address: str | None = None  # replicas: the master's replica listener
    replica_listen_address: str | None = None  # the listener this node ran, if any
    reason: str = ""  # what changed it ("HTTP promote", "REPLICAOF", ...)
    updated_at: float = 0.0  # Unix time of the change

    def describe(self) -> str:
        text = self.role
        if self.role == "replica":
            text += f" of {self.master_address}"
        if self.replica_listen_address:
            text += f", replica listener {self.replica_listen_address}"
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.updated_at))
        return f"{text} (set by {self.reason or 'unknown'} at {when})"


def path_in(directory: Path) -> Path:
    return directory / FILE_NAME


def load(directory: Path) -> Topology | None:
    """The persisted topology, None if there is none."""
    path = path_in(directory)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TopologyError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise TopologyError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict) or data.get("role") not in ROLES:
        raise TopologyError(
            f'{path} must be an object with "role" one of {", ".join(ROLES)}; fix or delete it'
        )
    master = data.get("master_address")
    listen = data.get("replica_listen_address")
    if data["role"] == "replica" and not isinstance(master, str):
        raise TopologyError(f'{path}: a replica needs a "master_address"; fix or delete it')
    for name, value in (("master_address", master), ("replica_listen_address", listen)):
        if value is not None and not isinstance(value, str):
            raise TopologyError(f'{path}: {name!r} must be a "host:port" string')
    updated = data.get("updated_at", 0.0)
    return Topology(
        role=data["role"],
        master_address=master if data["role"] == "replica" else None,
        replica_listen_address=listen,
        reason=str(data.get("reason", "")),
        updated_at=float(updated) if isinstance(updated, int | float) else 0.0,
    )


def save(directory: Path, topology: Topology) -> Path:
    """Replace ``topology.json`` atomically; raises OSError on failure."""
    path = path_in(directory)
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    data = json.dumps(asdict(topology), indent=2) + "\n"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(directory)
    return path


# ---------------------------------------------------------------- last role
# ``role.json``: the role this node last ran with (written at start-up and at every role
# change, whatever set it), never read to choose a role -- so the precedence above stays
# true. It answers one question at start-up: was the recovered history one this node was
# *following as a replica*? A node started as master on such a history must begin a new
# one (synap/replication/manager.py), or it would write under its old master's id.
ROLE_FILE_NAME = "role.json"


def load_last_role(directory: Path) -> str | None:
    """The role recorded in ``role.json``, None if there is none or it cannot be read
    (a directory from an older version: nothing is known)."""
    try:
        data: Any = json.loads((directory / ROLE_FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    role = data.get("role") if isinstance(data, dict) else None
    return role if role in ROLES else None


def save_last_role(directory: Path, role: str, replid: str, offset: int) -> Path:
    """Replace ``role.json`` atomically; raises OSError on failure."""
    path = directory / ROLE_FILE_NAME
    tmp = path.with_name(f".{ROLE_FILE_NAME}.tmp")
    data = {"role": role, "replid": replid, "offset": offset, "updated_at": time.time()}
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(directory)
    return path

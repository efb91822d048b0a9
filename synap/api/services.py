"""What the front ends (RESP, SynapRPC, HTTP, the views) need from a node, as Protocols.

The front ends type against these, never against :class:`synap.node.Node`, which
satisfies them and is the composition root above this package (docs/ARCHITECTURE.md,
"Layers").  Each Protocol is one concern; :class:`NodeServices` is their union, what a
connection object is handed.  A unit test can hand in a small fake instead of a node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from synap.api.cmdstats import CommandStats
    from synap.commands.layer import Commands
    from synap.config import Config
    from synap.coordination.driver import EtcdCoordinator
    from synap.latency import CommandTimings, Count
    from synap.persistence.manager import Persistence
    from synap.replication.consistency import ConsistencyControls
    from synap.replication.manager import ReplicationManager
    from synap.replication.roles import RoleMachine
    from synap.store.history import History
    from synap.store.keyspace import Keyspace


class DataServices(Protocol):
    """The dataset and its one write path, and the settings that govern them."""

    config: Config
    node_id: str
    started_at: float

    @property
    def keyspace(self) -> Keyspace: ...
    @property
    def commands(self) -> Commands: ...
    @property
    def history(self) -> History: ...
    @property
    def roles(self) -> RoleMachine: ...
    @property
    def persistence(self) -> Persistence | None: ...

    def flush_writes(self) -> None:
        """Write out the read's records (WAL, replication log, replica streams as one
        batch; fsync under ``always``): before replies leave."""

    def reply_after_flush(self, transport: Any, data: bytes) -> None:
        """Send ``data`` on ``transport`` after the records committed before it are
        written out (at once, or held to the end of the loop iteration)."""

    def flush_replies(self) -> None:
        """Write out the committed records and send the replies held for them now."""


class ClientRegistry(Protocol):
    """Connected Redis-protocol / SynapRPC clients and the connection counters."""

    processed: Count  # total_commands_processed: the front ends add to its value
    connections_received: int
    clients_rejected: int
    monitors: set[Any]
    resp_timings: CommandTimings
    http_timings: CommandTimings
    command_stats: CommandStats

    @property
    def commands_processed(self) -> int:
        """``processed.value`` (INFO total_commands_processed)."""

    def next_client_id(self) -> int: ...
    def client_opened(self, client: Any) -> bool: ...
    def client_closed(self, client: Any) -> None: ...
    def clients(self) -> list[Any]: ...


class ReplicationServices(Protocol):
    """Replication control and the consistency controls (role changes, waits)."""

    @property
    def replication(self) -> ReplicationManager: ...
    @property
    def consistency(self) -> ConsistencyControls: ...
    @property
    def coordinator(self) -> EtcdCoordinator | None: ...
    @property
    def min_replicas_to_write(self) -> int: ...
    @property
    def min_replicas_max_lag(self) -> int: ...

    def set_min_replicas(self, count: int, max_lag_secs: int) -> None: ...
    def enough_good_replicas(self) -> bool: ...


class AdminServices(Protocol):
    """Administration: snapshots, CONFIG state, shutdown, debugging switches."""

    config_changed: set[str]
    snapshot_on_stop: bool
    active_expire_enabled: bool
    request_stop: Callable[[], None]

    async def save_snapshot(self) -> None: ...
    def reset_stats(self) -> None: ...


class Addresses(Protocol):
    """The ports this node serves (None when one is off)."""

    resp_address: tuple[str, int] | None
    rpc_address: tuple[str, int] | None
    http_address: tuple[str, int] | None


class Views(Protocol):
    """Read-only reports (their text and shapes live in synap/api/views.py, info.py and
    metrics.py; these only bind them to this node)."""

    def kv_stats(self) -> dict[str, Any]: ...
    def digest(self) -> str: ...
    def digest_report(self) -> dict[str, Any]: ...
    def config_values(self) -> dict[str, str]: ...
    def info_text(self, sections: list[str] | None = None) -> str: ...
    def metrics_text(self) -> bytes: ...


class NodeServices(
    DataServices,
    ClientRegistry,
    ReplicationServices,
    AdminServices,
    Addresses,
    Views,
    Protocol,
):
    """Everything a front end may use of its node."""


# The narrow unions the single-purpose front ends type against (docs/ARCHITECTURE.md,
# "Which front end uses which services").  A connection object (RESP, SynapRPC, HTTP)
# still gets the whole NodeServices and hands these modules its node.


class ReplicatedData(DataServices, ReplicationServices, Protocol):
    """The dataset and replication: write confirmation and min-offset reads
    (``api/consistency.py``), the stats and CONFIG views (``api/views.py``)."""


class EndpointServices(DataServices, ReplicationServices, Views, Protocol):
    """``POST /api/v1/command`` (``api/command_endpoint.py``)."""


class StatusServices(DataServices, ReplicationServices, Addresses, Protocol):
    """``GET /status`` and the group status JSON (``api/status_page.py``)."""


class MetricsServices(DataServices, ReplicationServices, ClientRegistry, Protocol):
    """``GET /metrics`` (``api/metrics.py``)."""

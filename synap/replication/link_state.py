"""Where a replica's link to its master is: one enum, as Redis's ``repl_state``.

:class:`~synap.replication.replica.ReplicaLink` holds one :class:`LinkState`; every view
derives from it: the stats JSON ``state`` word and the ``synap_replication_link_state``
metric (:attr:`LinkState.status`), ``ROLE``'s state (:attr:`LinkState.redis`), and
``connected`` / INFO ``master_link_status`` (:attr:`LinkState.up`).

Sans-IO: no sockets, no tasks.
"""

from __future__ import annotations

import enum


class LinkState(enum.Enum):
    # Redis: REPL_STATE_CONNECT. Waiting ``reconnect_delay_ms`` to dial again (or the
    # connection just ended).
    CONNECT = "connect"
    # REPL_STATE_CONNECTING: dialling (TCP connect, TLS handshake). Also a new link's
    # state before its first attempt.
    CONNECTING = "connecting"
    # Redis's handshake states: connected, HELLO sent, waiting for the master's answer.
    HANDSHAKE = "handshake"
    # REPL_STATE_TRANSFER: receiving a full sync.
    TRANSFER = "transfer"
    # REPL_STATE_CONNECTED: synced and streaming records.
    CONNECTED = "connected"
    # Not retrying: ``auto_reconnect: false``, or the master turned out to be this node.
    STOPPED = "stopped"

    @property
    def up(self) -> bool:
        """The link is synced and streaming (stats ``connected``, INFO link ``up``)."""
        return self is LinkState.CONNECTED

    @property
    def status(self) -> str:
        """The stats JSON ``state`` word (docs/MONITORING.md) and the metric's label."""
        return _STATUS[self]

    @property
    def redis(self) -> str:
        """The state ``ROLE`` prints on a replica, in Redis's words."""
        return _REDIS[self]


_STATUS = {  # in the order the metric lists its series
    LinkState.CONNECTING: "connecting",
    LinkState.HANDSHAKE: "sync",
    LinkState.TRANSFER: "sync",
    LinkState.CONNECTED: "connected",
    LinkState.CONNECT: "disconnected",
    LinkState.STOPPED: "stopped",
}
_REDIS = {
    LinkState.CONNECT: "connect",
    LinkState.CONNECTING: "connecting",
    LinkState.HANDSHAKE: "sync",
    LinkState.TRANSFER: "sync",
    LinkState.CONNECTED: "connected",
    LinkState.STOPPED: "connect",
}

# Every word the stats ``state`` field can hold (the link-state metric has one series each).
STATUS_WORDS = tuple(dict.fromkeys(_STATUS.values()))

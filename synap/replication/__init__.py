"""Master-replica replication, in two layers (docs/ARCHITECTURE.md, "Layers").

Sans-IO protocol logic, no sockets, tasks or clocks (in the style of h11): callers hand
in bytes and the current time in milliseconds, and get back events and bytes to write.

* :mod:`~synap.replication.framing`: u32 length-prefixed frames (``FrameDecoder``).
* :mod:`~synap.replication.messages`: the message types and their msgpack encoding.
* :mod:`~synap.replication.backlog`: the bounded in-memory log of effect records.
* :mod:`~synap.replication.handshake`: authentication proofs, the PSYNC2 full/partial
  decision, and the events that end a session.
* :mod:`~synap.replication.master_session` / :mod:`~synap.replication.replica_session`:
  one connection as the master and as the replica sees it.
* :mod:`~synap.replication.peer_fields`: the form a peer's id and address must have, and
  escaping for every text view that prints them.
* :mod:`~synap.replication.foreign`: recognising clients of other protocols on the port.
* :mod:`~synap.replication.roles`: the role state machine and the write pause.
* :mod:`~synap.replication.stats` / :mod:`~synap.replication.control`: the stats JSON
  TypedDicts and the values role changes return.

The asyncio code that moves those bytes and runs the timers:

* :mod:`~synap.replication.host`: the Protocols naming what it needs from the node.
* :mod:`~synap.replication.waiters`: futures for replica ACKs and offsets.
* :mod:`~synap.replication.log`: the replication log (backlog fed by the history).
* :mod:`~synap.replication.master` / :mod:`~synap.replication.replica`: the replica
  listener and the link to a master.
* :mod:`~synap.replication.views` / :mod:`~synap.replication.manager`: the operator
  views, and the control (which links run, promote, follow, stop, pause).
* :mod:`~synap.replication.consistency`: min-replicas guard, WAIT/WAITAOF, read offsets.

``docs/PROTOCOL.md`` describes the wire protocol and why it is shaped this way.
"""

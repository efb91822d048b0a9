"""Master-replica replication: the sans-IO protocol and the replication log.

Every module here is pure protocol logic with no sockets, tasks or clocks (in the style of
h11): callers hand in bytes and the current time in milliseconds, and get back events and
bytes to write.  The asyncio code that moves those bytes lives elsewhere.

* :mod:`~synap.replication.framing`: u32 length-prefixed frames (``FrameDecoder``).
* :mod:`~synap.replication.messages`: the message types and their msgpack encoding.
* :mod:`~synap.replication.backlog`: the bounded in-memory log of effect records.
* :mod:`~synap.replication.handshake`: replication ids, authentication proofs, the
  PSYNC2 full/partial decision, and the events that end a session.
* :mod:`~synap.replication.master_session` / :mod:`~synap.replication.replica_session`:
  one connection as the master and as the replica sees it.
* :mod:`~synap.replication.peer_fields`: the form a peer's id and address must have, and
  escaping for every text view that prints them.

``docs/PROTOCOL.md`` describes the wire protocol and why it is shaped this way.
"""

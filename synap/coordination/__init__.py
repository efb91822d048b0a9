"""Automatic failover: the nodes of a group elect their master through etcd.

* :mod:`.etcd` — a small etcd v3 client over etcd's JSON gateway (httpx, no gRPC).
* :mod:`.election` — sans-IO: the member and leader records, who may and who should
  campaign, and the lease arithmetic behind self-fencing. Pure functions, unit-tested.
* :mod:`.driver` — the asyncio loop that moves bytes and timers: keeps the lease alive,
  publishes this node's record, watches the leader key, and acts on the decisions through
  the replication manager (promote / follow).
"""

"""Test support for real-process integration tests.

- ``ports``: free TCP ports on 127.0.0.1 that stay unique across pytest-xdist workers and
  across concurrent pytest sessions on the same machine.
- ``faultproxy``: a TCP proxy with injectable faults (latency, freeze, reset, refuse,
  slow link), driven from synchronous tests.
- ``server``: ``SynapProcess`` runs a real ``synap-server`` process; helpers start masters
  and replicas and wait for replication to catch up.

``tests/conftest.py`` wires these into the ``node_factory`` fixture.
"""

"""Synap: an in-memory key-value server with master-replica replication."""

__version__ = "0.3.0"

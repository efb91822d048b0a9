"""The keyspace and the effect records that describe every change to it."""

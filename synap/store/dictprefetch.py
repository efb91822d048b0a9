"""Prefetch the dictionary slots of a batch of keys: one function, also written in C.

Applying a batch of records to a large keyspace is bound by memory latency: each
``data.get(key)`` of a random key misses the caches three times in a row (the hash
index, then the entry it points to, then the stored key it compares against, and the
old value that is freed), ~50 % of a replica's CPU during catch-up here. Issuing those
loads for a whole batch first lets the memory system fetch them in parallel, so the
lookups that follow hit the caches (Valkey 8 prefetches its own dictionary the same way
for batches of commands).

:func:`prefetch` is a hint: it changes nothing (no reference counts, no dict, no key),
and whether it ran makes no difference to any result. The compiled build has
``dictprefetch.c`` beside this file, built by setup.py into an extension of the same name
that Python imports instead of it; it reads CPython 3.11's dictionary layout and does
nothing on other versions. This pure-Python fallback does nothing: in Python, touching a
slot is the lookup itself.
"""

from __future__ import annotations

BUILT = 0  # the C module's BUILT is 1 (0 there too on a CPython it does not know)


def prefetch(data: dict[bytes, bytes], keys: list[bytes]) -> None:
    """Start loading the slots of ``data`` that looking up ``keys`` will read (the first
    256 keys; exact ``bytes`` keys only). Nothing else happens."""

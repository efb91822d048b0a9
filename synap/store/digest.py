"""An order-independent digest of a whole dataset, equal on nodes that hold the same data.

Each key contributes blake2b(key, value, expiry) and contributions are XOR-ed, so the
digest does not depend on insertion order.  An empty dataset digests to forty zeros, like
Redis's ``DEBUG DIGEST``.
"""

from __future__ import annotations

from hashlib import blake2b


def dataset_digest(data: dict[bytes, bytes], expires: dict[bytes, int]) -> str:
    acc = 0
    for key, value in data.items():
        h = blake2b(digest_size=20)
        h.update(len(key).to_bytes(4, "big"))
        h.update(key)
        h.update(value)
        h.update(expires.get(key, 0).to_bytes(8, "big"))
        acc ^= int.from_bytes(h.digest(), "big")
    return f"{acc:040x}"

"""An order-independent digest of a whole dataset, equal on nodes that hold the same data.

Each key contributes blake2b(key, value, expiry) and contributions are XOR-ed, so the
digest does not depend on insertion order.  A key of json kind (see
:mod:`synap.store.keyspace`) is hashed with a different blake2b personalisation, so a
node that lost or invented kinds digests differently, while datasets of plain values
digest as they always did.  An empty dataset digests to forty zeros, like Redis's
``DEBUG DIGEST``.
"""

from __future__ import annotations

from collections.abc import Container
from hashlib import blake2b

_JSON_PERSON = b"synap-json-kind"


def dataset_digest(
    data: dict[bytes, bytes],
    expires: dict[bytes, int],
    json_keys: Container[bytes] = frozenset(),
) -> str:
    acc = 0
    for key, value in data.items():
        h = (
            blake2b(digest_size=20, person=_JSON_PERSON)
            if key in json_keys
            else blake2b(digest_size=20)
        )
        h.update(len(key).to_bytes(4, "big"))
        h.update(key)
        h.update(value)
        h.update(expires.get(key, 0).to_bytes(8, "big"))
        acc ^= int.from_bytes(h.digest(), "big")
    return f"{acc:040x}"

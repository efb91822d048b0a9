"""Effect records: the one canonical description of every change to the keyspace.

Every write command, on whatever front end, produces exactly one *record*: a list of
operations that must be applied together (atomically) and that is fully deterministic
— expiry times are absolute milliseconds, INCR results are stored as values, expirations
and evictions become DELs.  A record is encoded once with msgpack and the same bytes feed
the WAL, the replication log and every replica's stream.  Replicas and crash recovery
apply records through :func:`apply_record`, the only code that replays history.

Operations (msgpack arrays, first element is the opcode):

=========  =====================================  ==========================================
opcode     layout                                 meaning
=========  =====================================  ==========================================
0 SET      ``[0, key, value, expire_at_ms]``      store plain bytes; ``expire_at_ms`` 0 = no
                                                  expiry
0 SET      ``[0, key, value, expire_at_ms, 1]``   store a value of *json kind*: ``value`` is
                                                  the compact JSON text of a non-string JSON
                                                  value (see :mod:`synap.store.keyspace`)
1 DEL      ``[1, key]``                           remove key (no-op if absent)
2 EXPIRE   ``[2, key, expire_at_ms]``             set an absolute expiry on an existing key
3 PERSIST  ``[3, key]``                           drop the expiry of a key
4 FLUSH    ``[4]``                                remove every key
=========  =====================================  ==========================================

The fifth element of SET is the value's kind: absent or 0 = plain, 1 = json (records
written before kinds existed have four elements and decode as plain).  Any other kind
is a :class:`CorruptRecord`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from synap.store.keyspace import Keyspace

OP_SET = 0
OP_DEL = 1
OP_EXPIRE = 2
OP_PERSIST = 3
OP_FLUSH = 4

#: Kinds of a SET's value (fifth element of the operation; absent = plain).
KIND_PLAIN = 0
KIND_JSON = 1

Op = list[Any]


def set_op(key: bytes, value: bytes, expire_at_ms: int, is_json: bool = False) -> Op:
    """The SET operation storing ``value`` with its kind (plain records stay 4 long)."""
    if is_json:
        return [OP_SET, key, value, expire_at_ms, KIND_JSON]
    return [OP_SET, key, value, expire_at_ms]


_packb = msgpack.Packer(use_bin_type=True).pack


class CorruptRecord(ValueError):
    """A record that does not decode to a list of known operations."""

    #: Position of the bad record in the batch given to :func:`apply_records`.
    index = 0


#: Encode the operations of one command as one record (done once per write). This is
#: the packer's own (C) method: every write calls it, and a wrapper would add a call.
encode_record: Callable[[list[Op]], bytes] = _packb


# msgpack's bin8 headers (bytes under 256 long), built once.
_BIN8 = [bytes((0xC4, n)) for n in range(256)]


def _bin_header(n: int) -> bytes:
    if n < 256:
        return _BIN8[n]
    if n < 65536:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def encode_set_record(key: bytes, value: bytes) -> bytes:
    """``encode_record([[OP_SET, key, value, 0]])`` (a plain SET without expiry, the
    commonest record), built directly: the same bytes without the lists or the packer's
    walk over them."""
    return b"\x91\x94\x00%b%b%b%b\x00" % (
        _bin_header(len(key)),
        key,
        _bin_header(len(value)),
        value,
    )


def decode_record(record: bytes) -> list[Op]:
    """Decode a record; raises :class:`CorruptRecord` on anything malformed."""
    try:
        ops = msgpack.unpackb(record, raw=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise CorruptRecord(f"undecodable record: {exc}") from exc
    if not isinstance(ops, list):
        raise CorruptRecord("record is not a list of operations")
    return ops


def apply_ops(keyspace: Keyspace, ops: Sequence[Any]) -> None:
    """Apply decoded operations to ``keyspace`` exactly as the master did."""
    for op in ops:
        try:
            code = op[0]
            if code == OP_SET:
                if len(op) == 4:
                    keyspace.put(op[1], op[2], op[3])
                elif len(op) == 5 and op[4] in (KIND_PLAIN, KIND_JSON):
                    keyspace.put(op[1], op[2], op[3], op[4] == KIND_JSON)
                else:
                    raise CorruptRecord(f"malformed SET operation {op!r:.200}")
            elif code == OP_DEL:
                keyspace.remove(op[1])
            elif code == OP_EXPIRE:
                keyspace.set_expiry(op[1], op[2])
            elif code == OP_PERSIST:
                keyspace.set_expiry(op[1], 0)
            elif code == OP_FLUSH:
                keyspace.clear()
            else:
                raise CorruptRecord(f"unknown opcode {code!r}")
        except (IndexError, TypeError) as exc:
            raise CorruptRecord(f"malformed operation {op!r}") from exc


def apply_record(keyspace: Keyspace, record: bytes) -> None:
    """Decode and apply one record (replica streaming and WAL replay use this)."""
    apply_ops(keyspace, decode_record(record))


def apply_records(keyspace: Keyspace, records: Sequence[bytes]) -> None:
    """Apply consecutive records in order: :func:`apply_record` for each, in one loop
    (a replica applies whole RECORDS batches).

    On a bad record, raises :class:`CorruptRecord` with ``index`` set to its position;
    the records before it have been applied (and so may the first operations of the bad
    record, as with :func:`apply_record`).
    """
    # One unpackb per record, each decoded just before it is applied: decoding a whole
    # batch first is slower, as its thousands of live objects set off garbage-collector
    # passes. Tuples, not lists: cheaper to build, and the record is only read.
    unpackb = msgpack.unpackb
    put = keyspace.put
    index = 0
    try:
        for record in records:
            try:
                ops = unpackb(record, raw=True, use_list=False)
            except Exception:  # msgpack raises several unrelated exception types
                ops = None
            if type(ops) is not tuple:
                apply_record(keyspace, record)  # raises the error decode_record words
            elif len(ops) == 1 and type(op := ops[0]) is tuple and len(op) == 4 and op[0] == OP_SET:
                put(op[1], op[2], op[3])  # the common record, a plain SET, inline
            else:
                apply_ops(keyspace, ops)
            index += 1
    except (IndexError, TypeError) as exc:  # put() given values of the wrong type
        corrupt = CorruptRecord(f"malformed operation in record {index}: {exc}")
        corrupt.index = index
        raise corrupt from exc
    except CorruptRecord as exc:
        exc.index = index
        raise

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
from typing import TYPE_CHECKING, Any, Final

import msgpack

from synap.store.dictprefetch import prefetch

if TYPE_CHECKING:
    from synap.store.keyspace import Keyspace

OP_SET: Final = 0
OP_DEL: Final = 1
OP_EXPIRE: Final = 2
OP_PERSIST: Final = 3
OP_FLUSH: Final = 4

#: Kinds of a SET's value (fifth element of the operation; absent = plain).
KIND_PLAIN: Final = 0
KIND_JSON: Final = 1

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
_BIN8_HEADERS = [bytes((0xC4, n)) for n in range(256)]


def _bin_header(n: int) -> bytes:
    if n < 256:
        return _BIN8_HEADERS[n]
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
        except (IndexError, KeyError, TypeError) as exc:  # KeyError: an operation that is a map
            raise CorruptRecord(f"malformed operation {op!r:.200}") from exc


def apply_record(keyspace: Keyspace, record: bytes) -> None:
    """Decode and apply one record (replica streaming and WAL replay use this)."""
    apply_ops(keyspace, decode_record(record))


def apply_records(keyspace: Keyspace, records: Sequence[bytes]) -> None:
    """Apply consecutive records in order: :func:`apply_record` for each (a replica
    applies a RECORDS frame in one pass with :func:`apply_concatenated` instead).

    On a bad record, raises :class:`CorruptRecord` with ``index`` set to its position;
    the records before it have been applied (and so may the first operations of the bad
    record, as with :func:`apply_record`).
    """
    index = 0
    try:
        for record in records:
            apply_record(keyspace, record)
            index += 1
    except (IndexError, TypeError) as exc:  # put() given values of the wrong type
        corrupt = CorruptRecord(f"malformed operation in record {index}: {exc}")
        corrupt.index = index
        raise corrupt from exc
    except CorruptRecord as exc:
        exc.index = index
        raise


def apply_concatenated(
    keyspace: Keyspace, body: bytes, pos: int, count: int, applied: list[bytes]
) -> None:
    """Apply ``count`` records concatenated in ``body`` from ``pos`` to its end (the
    trailer of a RECORDS frame) in one pass: each record is delimited and applied in the
    same step, and its bytes (a slice of ``body``, exactly as the master encoded it) are
    appended to ``applied``.

    The semantics are :func:`apply_record`'s, record by record (a property test compares
    the two on arbitrary records). The common records, one plain or json SET or one DEL,
    are read straight from the bytes (:func:`_read_simple`): no msgpack objects, no
    tuples. They are read up to :data:`_READ_AHEAD` records ahead of their application,
    so that the keyspace slots of their keys are prefetched together
    (:mod:`synap.store.dictprefetch`). Any other record is delimited by msgpack and goes
    through :func:`apply_record` itself, after the records before it. On a bad record, raises :class:`CorruptRecord` with
    ``index`` set to its position: ``applied`` then holds the records before it. A
    trailer that holds fewer than ``count`` whole records is a bad record at the first
    incomplete one; bytes after the ``count`` records are one at index ``count`` (every
    record is in ``applied`` then).
    """
    end_of_body = len(body)
    index = 0
    start = pos
    unpacker: Any = None  # made on the first record that is not a simple one
    ahead = _ReadAhead()
    try:
        while index < count:
            end = _read_simple(ahead, body, start, end_of_body)
            if end < 0:
                ahead.apply(keyspace)  # (in order: the records before this one first)
                if unpacker is None:
                    unpacker = msgpack.Unpacker(None, raw=True, max_buffer_size=end_of_body)
                    unpacker.feed(body)
                end = _skip_to(unpacker, start)
                apply_record(keyspace, body[start:end])  # raises the error decode_record words
            elif len(ahead.keys) == _READ_AHEAD:
                ahead.apply(keyspace)
            applied.append(body[start:end])
            start = end
            index += 1
        ahead.apply(keyspace)
        if start != end_of_body:
            raise CorruptRecord(f"{end_of_body - start} bytes follow the last of {count} records")
    except (IndexError, TypeError) as exc:  # put() given values of the wrong type
        corrupt = CorruptRecord(f"malformed operation in record {index}: {exc}")
        corrupt.index = index
        raise corrupt from exc
    except CorruptRecord as exc:  # (the records before the bad one are applied)
        exc.index = index
        raise


def _skip_to(unpacker: Any, start: int) -> int:
    """The end of the msgpack value at ``start`` in the unpacker's buffer (moving the
    unpacker there a value at a time: every record before it ends on a boundary)."""
    try:
        while unpacker.tell() < start:
            unpacker.skip()
        if unpacker.tell() != start:
            raise CorruptRecord("record boundaries disagree with msgpack")  # not reachable
        unpacker.skip()
    except CorruptRecord:
        raise
    except Exception as exc:  # OutOfData (truncated), FormatError, StackError, ...
        raise CorruptRecord(f"undecodable record: {exc!r:.200}") from exc
    end: int = unpacker.tell()
    return end


# msgpack type bytes of the records _apply_simple reads (what encode_record writes for
# them): a fixarray of one operation, the operation a fixarray of 4 or 5 (SET) or 2
# (DEL) elements, opcodes and kinds positive fixints, keys and values bin 8/16/32,
# expiry times a positive fixint or uint 8/16/32/64.
_ONE_OP: Final = 0x91
_FIXARRAY_2: Final = 0x92
_FIXARRAY_4: Final = 0x94
_FIXARRAY_5: Final = 0x95
_BIN8: Final = 0xC4
_BIN16: Final = 0xC5
_BIN32: Final = 0xC6
_UINT8: Final = 0xCC
_UINT64: Final = 0xCF


#: How many common records :func:`apply_concatenated` reads before it applies them (the
#: keyspace slots of their keys prefetched at once; 32 measured best of 16, 32 and 64).
_READ_AHEAD: Final = 32
_DEL: Final = -1  # the kind of a DEL in _ReadAhead


class _ReadAhead:
    """Common records read from a frame and not applied yet, in order: parallel lists
    of keys, values, expiry times and kinds (``KIND_PLAIN``, ``KIND_JSON`` or ``_DEL``,
    whose value is empty)."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.values: list[bytes] = []
        self.expires: list[int] = []
        self.kinds: list[int] = []

    def add(self, key: bytes, value: bytes, expire_at_ms: int, kind: int) -> None:
        self.keys.append(key)
        self.values.append(value)
        self.expires.append(expire_at_ms)
        self.kinds.append(kind)

    def apply(self, keyspace: Keyspace) -> None:
        """Apply the records in order (their keys' slots prefetched first) and forget them."""
        keys = self.keys
        if not keys:
            return
        prefetch(keyspace.data, keys)
        values, expires, kinds = self.values, self.expires, self.kinds
        for i in range(len(keys)):
            kind = kinds[i]
            if kind == _DEL:
                keyspace.remove(keys[i])
            else:
                keyspace.put(keys[i], values[i], expires[i], kind == KIND_JSON)
        keys.clear()
        values.clear()
        expires.clear()
        kinds.clear()


def _read_simple(ahead: _ReadAhead, body: bytes, p: int, n: int) -> int:
    """Add the record at ``body[p:]`` to ``ahead`` if it is one of the common ones, and
    return where it ends; -1 (nothing added) for any other record, or one that does not
    fit before ``n``. What ``ahead`` applies for it is what :func:`apply_record` does."""
    if p + 3 > n or body[p] != _ONE_OP:
        return -1
    shape = body[p + 1]
    code = body[p + 2]
    if code == OP_SET and shape in (_FIXARRAY_4, _FIXARRAY_5):
        key_at = _bin_start(body, p + 3, n)
        if key_at < 0:
            return -1
        key_end = key_at + _bin_length(body, p + 3)
        value_at = _bin_start(body, key_end, n)
        if value_at < 0:
            return -1
        value_end = value_at + _bin_length(body, key_end)
        q = value_end
        if q >= n:
            return -1
        t = body[q]
        if t < 0x80:  # positive fixint
            expire_at = t
            q += 1
        elif _UINT8 <= t <= _UINT64:
            size = 1 << (t - _UINT8)
            if q + 1 + size > n:
                return -1
            expire_at = int.from_bytes(body[q + 1 : q + 1 + size], "big")
            q += 1 + size
        else:
            return -1
        if shape == _FIXARRAY_4:
            ahead.add(body[key_at:key_end], body[value_at:value_end], expire_at, KIND_PLAIN)
            return q
        if q >= n:
            return -1
        kind = body[q]
        if kind not in (KIND_PLAIN, KIND_JSON):
            return -1
        ahead.add(body[key_at:key_end], body[value_at:value_end], expire_at, kind)
        return q + 1
    if code == OP_DEL and shape == _FIXARRAY_2:
        key_at = _bin_start(body, p + 3, n)
        if key_at < 0:
            return -1
        key_end = key_at + _bin_length(body, p + 3)
        ahead.add(body[key_at:key_end], b"", 0, _DEL)
        return key_end
    return -1


def _bin_start(body: bytes, p: int, n: int) -> int:
    """Where the data of the msgpack bin at ``body[p]`` starts, or -1 when there is none
    or it does not end before ``n``."""
    if p >= n:
        return -1
    t = body[p]
    if t == _BIN8:
        at = p + 2
    elif t == _BIN16:
        at = p + 3
    elif t == _BIN32:
        at = p + 5
    else:
        return -1
    if at > n or at + _bin_length(body, p) > n:
        return -1
    return at


def _bin_length(body: bytes, p: int) -> int:
    """The length of the msgpack bin at ``body[p]`` (its header checked by _bin_start)."""
    t = body[p]
    if t == _BIN8:
        return body[p + 1]
    if t == _BIN16:
        return body[p + 1] << 8 | body[p + 2]
    return int.from_bytes(body[p + 1 : p + 5], "big")

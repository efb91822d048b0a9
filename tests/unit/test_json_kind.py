"""Values keep the JSON kind they were written with: the HTTP value mapping, the keyspace's
json-kind marks on every write and removal path, and the kind in effect records, snapshot
files, full-sync chunks and digests (no sockets)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from synap.api import command_endpoint, json_values
from synap.api.json_values import BadValue, from_stored, to_stored
from synap.commands.layer import Commands
from synap.persistence import snapshot as snapshot_module
from synap.persistence.snapshot import CorruptSnapshot, read_snapshot, write_snapshot
from synap.replication.framing import ProtocolError
from synap.replication.messages import decode_snapshot_entries, encode_snapshot_payload
from synap.store.digest import dataset_digest
from synap.store.effects import (
    KIND_JSON,
    OP_SET,
    CorruptRecord,
    apply_record,
    decode_record,
    encode_record,
)
from synap.store.history import History
from synap.store.keyspace import EvictionPolicy, Keyspace, now_ms

BIG = 123456789012345678901234567890


def make(max_memory: int = 0, policy: EvictionPolicy = EvictionPolicy.NONE):
    ks = Keyspace(max_memory, policy)
    history = History()
    records: list[bytes] = []
    history.subscribe(lambda _off, rec: records.append(rec))
    return Commands(ks, history), ks, records


def replay(records: list[bytes]) -> Keyspace:
    ks = Keyspace(expire_on_access=False)
    for record in records:
        apply_record(ks, record)
    return ks


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (1 is not 1.0, "1" is not 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ------------------------------------------------------------------ the value mapping


@pytest.mark.parametrize("text", ["1", "true", "null", '{"a":1}', "1 ", "[1]", "", "-0", "é"])
def test_a_string_is_stored_as_its_bytes_and_read_back_as_the_same_string(text: str) -> None:
    stored, is_json = to_stored(text)
    assert (stored, is_json) == (text.encode(), False)
    assert from_stored(stored, is_json) == (text, None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, b"1"),
        (-1.5, b"-1.5"),
        (True, b"true"),
        (None, b"null"),
        ({"a": [1, "x"]}, b'{"a":[1,"x"]}'),
        ([], b"[]"),
        (BIG, b"123456789012345678901234567890"),
        (-(2**70), str(-(2**70)).encode()),
        ({"n": [BIG]}, b'{"n":[123456789012345678901234567890]}'),
    ],
)
def test_other_json_values_are_stored_as_compact_json_of_json_kind(value: Any, text: bytes) -> None:
    stored, is_json = to_stored(value)
    assert (stored, is_json) == (text, True)
    back, encoding = from_stored(stored, True)
    assert same(back, value) and encoding is None


def test_plain_bytes_read_back_as_text_or_base64_never_parsed() -> None:
    assert from_stored(b"17", False) == ("17", None)
    assert from_stored(b'{"a":1}', False) == ('{"a":1}', None)
    assert from_stored(b"\x00\xff", False) == (base64.b64encode(b"\x00\xff").decode(), "base64")


def test_base64_encoding_on_writes() -> None:
    assert to_stored(base64.b64encode(b"\x00\xff\xfe").decode(), "base64") == (
        b"\x00\xff\xfe",
        False,
    )
    with pytest.raises(BadValue, match="not valid base64"):
        to_stored("not base64!", "base64")
    with pytest.raises(BadValue, match="base64 string"):
        to_stored(5, "base64")
    with pytest.raises(BadValue, match="'encoding' must be"):
        to_stored("aGk=", "hex")


def test_loads_keeps_integers_beyond_64_bits_and_dumps_writes_them() -> None:
    raw = b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809, "f": 0.5}'
    value = json_values.loads(raw)
    assert value == {"big": BIG, "neg": -(2**63) - 1, "f": 0.5}
    assert isinstance(value["big"], int)
    assert (
        json_values.dumps(value)
        == b'{"big":123456789012345678901234567890,"neg":-9223372036854775809,"f":0.5}'
    )
    with pytest.raises(orjson.JSONDecodeError):
        json_values.loads(b'{"big": 123456789012345678901234567890, "x": NaN}')


def test_values_nested_deeper_than_any_reply_can_hold_are_refused() -> None:
    deep: Any = []
    for _ in range(json_values.MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(BadValue, match="nested deeper"):
        to_stored(deep)
    assert to_stored(deep[0])[1] is True


def test_every_command_declares_its_payload_fields() -> None:
    assert set(command_endpoint.FIELDS) == set(command_endpoint.COMMANDS)


# ------------------------------------------------------------------ writes and removals


def test_each_write_records_the_kind_it_stores() -> None:
    cmds, ks, records = make()
    cmds.set(b"j", b"[1]", is_json=True)
    cmds.set(b"p", b"[1]")
    assert decode_record(records[0]) == [[OP_SET, b"j", b"[1]", 0, KIND_JSON]]
    assert decode_record(records[1]) == [[OP_SET, b"p", b"[1]", 0]]  # unchanged layout
    assert ks.json_keys == {b"j"}
    cmds.set(b"j", b"text")  # a plain overwrite (RESP SET) drops the kind
    assert ks.json_keys == set()
    cmds.mset([(b"a", b"1"), (b"b", b"x")], json_kinds=[True, False])
    assert ks.json_keys == {b"a"}
    assert replay(records).json_keys == ks.json_keys


def test_counters_are_json_numbers_and_append_is_plain() -> None:
    cmds, ks, records = make()
    cmds.incr_by(b"n", 5)
    cmds.incr_by_float(b"f", 1.5)
    cmds.set(b"s", b"ab")
    cmds.append(b"s", b"c")
    assert ks.json_keys == {b"n", b"f"}
    cmds.append(b"n", b"0")  # "50": text now
    assert ks.json_keys == {b"f"}
    assert replay(records).json_keys == {b"f"}


def test_rename_keeps_the_kind() -> None:
    cmds, ks, records = make()
    cmds.set(b"src", b"{}", is_json=True)
    cmds.rename(b"src", b"dst")
    assert ks.json_keys == {b"dst"}
    assert replay(records).json_keys == {b"dst"}


def test_every_removal_path_drops_the_kind() -> None:
    cmds, ks, records = make()
    for key in (b"del", b"getdel", b"exp", b"lazy", b"active"):
        cmds.set(key, b"1", is_json=True)
    cmds.delete([b"del"])
    cmds.getdel(b"getdel")
    cmds.expire_at(b"exp", now_ms() - 1)
    ks.set_expiry(b"lazy", now_ms() - 1)
    assert cmds.get(b"lazy") is None  # lazy expiry
    ks.set_expiry(b"active", now_ms() - 1)
    cmds.active_expire()
    assert ks.json_keys == set() and len(ks) == 0
    assert replay(records).json_keys == set()
    cmds.set(b"x", b"1", is_json=True)
    cmds.flushall()
    assert ks.json_keys == set()


def test_eviction_drops_the_kind() -> None:
    cmds, ks, _ = make(max_memory=2000, policy=EvictionPolicy.LRU)
    for i in range(100):
        cmds.set(b"k%d" % i, b"[%d]" % i, is_json=True)
    assert ks.evicted_total > 0
    assert ks.json_keys == set(ks.data)


# ------------------------------------------------------------------ effect records


def test_old_four_element_set_records_apply_as_plain() -> None:
    ks = Keyspace()
    ks.put(b"k", b"1", 0, True)
    apply_record(ks, encode_record([[OP_SET, b"k", b"2", 0]]))
    assert ks.data[b"k"] == b"2" and ks.json_keys == set()
    apply_record(ks, encode_record([[OP_SET, b"k", b"3", 0, KIND_JSON]]))
    assert ks.json_keys == {b"k"}


@pytest.mark.parametrize("op", [[OP_SET, b"k", b"v", 0, 2], [OP_SET, b"k", b"v", 0, 1, 1]])
def test_a_set_with_an_unknown_kind_is_a_corrupt_record(op: list[Any]) -> None:
    with pytest.raises(CorruptRecord):
        apply_record(Keyspace(), encode_record([op]))


# ------------------------------------------------------------------ digests


def test_the_digest_tells_kinds_apart_and_keeps_plain_digests() -> None:
    data = {b"a": b"1", b"b": b"x"}
    plain = dataset_digest(data, {})
    assert dataset_digest(data, {}, set()) == plain
    assert dataset_digest(data, {}, {b"a"}) not in (plain, dataset_digest(data, {}, {b"b"}))


# ------------------------------------------------------------------ snapshots, full sync


def test_snapshot_files_keep_the_kind(tmp_path: Path) -> None:
    data = {b"j": b"[1]", b"p": b"[1]", b"e": b"null"}
    path = write_snapshot(
        tmp_path,
        data,
        {b"e": 1_900_000_000_000},
        replid=None,
        offset=3,
        replid2=None,
        second_offset=-1,
        json_keys={b"j", b"e"},
    )
    snap = read_snapshot(path)
    assert snap.data == data and snap.json_keys == {b"j", b"e"}
    assert snap.expires == {b"e": 1_900_000_000_000}


def _version_1_snapshot(path: Path, entries: list[tuple[bytes, bytes, int]]) -> None:
    """A snapshot as servers before kinds wrote it (format version 1, triples)."""
    frame = struct.Struct(">II")
    pack = msgpack.Packer(use_bin_type=True).pack
    header = {"version": 1, "replid": None, "offset": 5, "replid2": None,
              "second_offset": -1, "created_ms": 1, "keys": len(entries)}  # fmt: skip
    body = b"SYNSNAP1"
    for payload in (pack(header), pack(entries)):
        body += frame.pack(len(payload), zlib.crc32(payload)) + payload
    body += frame.pack(0, 0)
    path.write_bytes(body + struct.pack(">IQ", zlib.crc32(body), len(entries)))


def test_version_1_snapshots_still_load_as_plain(tmp_path: Path) -> None:
    path = tmp_path / snapshot_module.snapshot_name(5)
    _version_1_snapshot(path, [(b"a", b"1", 0), (b"b", b"{}", 7)])
    snap = read_snapshot(path)
    assert snap.data == {b"a": b"1", b"b": b"{}"} and snap.expires == {b"b": 7}
    assert snap.json_keys == set()


def test_a_snapshot_entry_with_an_unknown_kind_is_corrupt(tmp_path: Path) -> None:
    path = write_snapshot(
        tmp_path, {b"a": b"1"}, {}, replid=None, offset=1, replid2=None, second_offset=-1
    )
    raw = path.read_bytes()
    good = msgpack.packb([(b"a", b"1", 0)], use_bin_type=True)
    bad = msgpack.packb([(b"a", b"1", 0, 2)], use_bin_type=True)
    assert len(good) + 1 == len(bad) and raw.count(good) == 1
    # Rebuild the file around the bad entry so that only the kind is wrong.
    header_len = struct.unpack(">I", raw[8:12])[0]
    header = raw[16 : 16 + header_len]
    path.unlink()
    frame = struct.Struct(">II")
    body = b"SYNSNAP1"
    for payload in (header, bad):
        body += frame.pack(len(payload), zlib.crc32(payload)) + payload
    body += frame.pack(0, 0)
    target = tmp_path / snapshot_module.snapshot_name(1)
    target.write_bytes(body + struct.pack(">IQ", zlib.crc32(body), 1))
    with pytest.raises(CorruptSnapshot, match="unknown value kind"):
        read_snapshot(target)


def test_full_sync_chunks_carry_the_kind() -> None:
    entries = [(b"p", b"1", 0), (b"j", b"1", 5, 1)]
    assert decode_snapshot_entries(encode_snapshot_payload(entries)) == entries
    with pytest.raises(ProtocolError, match="kind"):
        decode_snapshot_entries(encode_snapshot_payload([(b"j", b"1", 0, 2)]))
    with pytest.raises(ProtocolError, match="kind"):
        decode_snapshot_entries(encode_snapshot_payload([(b"j", b"1", 0, True)]))

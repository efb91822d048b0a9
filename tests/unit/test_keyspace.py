"""Keyspace and command layer: expiry, eviction, effect records (no sockets)."""

from __future__ import annotations

import pytest

from synap.commands.errors import CommandError, OutOfMemoryError, ReadOnlyError
from synap.commands.layer import Commands
from synap.replication.roles import Role, RoleMachine
from synap.store.effects import KIND_JSON, OP_DEL, OP_SET, apply_record, decode_record
from synap.store.history import History
from synap.store.keyspace import EvictionPolicy, Keyspace, now_ms


def make(max_memory: int = 0, policy: EvictionPolicy = EvictionPolicy.NONE):
    ks = Keyspace(max_memory, policy)
    history = History()
    records: list[tuple[int, bytes]] = []
    history.subscribe(lambda off, rec: records.append((off, rec)))
    return Commands(ks, history), ks, records


def replay(records: list[tuple[int, bytes]]) -> Keyspace:
    ks = Keyspace(expire_on_access=False)
    for _, rec in records:
        apply_record(ks, rec)
    return ks


def test_every_write_produces_one_record_with_consecutive_offsets() -> None:
    cmds, _, records = make()
    cmds.set(b"a", b"1")
    cmds.mset([(b"b", b"2"), (b"c", b"3")])
    cmds.delete([b"a", b"b", b"missing"])
    assert [off for off, _ in records] == [1, 2, 3]
    assert decode_record(records[2][1]) == [[OP_DEL, b"a"], [OP_DEL, b"b"]]


def test_incr_is_recorded_as_its_result_value() -> None:
    cmds, _, records = make()
    assert cmds.incr_by(b"n", 5) == 5
    assert cmds.incr_by(b"n", -2) == 3
    # A counter is a number: json kind, so HTTP reads it back as one.
    assert decode_record(records[-1][1]) == [[OP_SET, b"n", b"3", 0, KIND_JSON]]


def test_relative_ttl_is_recorded_as_absolute_expiry() -> None:
    cmds, ks, records = make()
    at = now_ms() + 10_000
    cmds.set(b"k", b"v", expire_at_ms=at)
    assert decode_record(records[-1][1]) == [[OP_SET, b"k", b"v", at]]


def test_replaying_records_reproduces_the_dataset() -> None:
    cmds, ks, records = make()
    cmds.set(b"a", b"1", expire_at_ms=now_ms() + 50_000)
    cmds.incr_by(b"n", 7)
    cmds.append(b"s", b"xy")
    cmds.rename(b"s", b"t")
    cmds.persist(b"a")
    copy = replay(records)
    assert copy.data == ks.data and copy.expires == ks.expires


def test_lazy_expiry_on_master_deletes_and_propagates_del() -> None:
    cmds, ks, records = make()
    ks.put(b"old", b"v", now_ms() - 1)
    assert cmds.get(b"old") is None
    assert b"old" not in ks.data
    assert decode_record(records[-1][1]) == [[OP_DEL, b"old"]]


def test_replica_hides_expired_keys_without_deleting_them() -> None:
    ks = Keyspace(expire_on_access=False)
    ks.put(b"old", b"v", now_ms() - 1)
    assert ks.lookup(b"old") is None
    assert b"old" in ks.data
    assert ks.removed == []


def test_noeviction_refuses_writes_over_the_limit_and_keeps_data() -> None:
    cmds, ks, _ = make(max_memory=2000)
    cmds.set(b"a", b"x" * 500)
    with pytest.raises(OutOfMemoryError):
        cmds.set(b"b", b"y" * 5000)
    assert ks.lookup(b"a") == b"x" * 500


@pytest.mark.parametrize("policy", [EvictionPolicy.LRU, EvictionPolicy.LFU])
def test_eviction_makes_room_and_propagates_dels(policy: EvictionPolicy) -> None:
    cmds, ks, records = make(max_memory=20_000, policy=policy)
    for i in range(200):
        cmds.set(b"k%d" % i, b"v" * 100)
    assert ks.used_memory <= 20_000
    assert ks.evicted_total > 0
    assert replay(records).data == ks.data


def test_ttl_eviction_only_evicts_volatile_keys() -> None:
    cmds, ks, _ = make(max_memory=3000, policy=EvictionPolicy.TTL)
    cmds.set(b"keep", b"x" * 100)
    for i in range(50):
        try:
            cmds.set(b"t%d" % i, b"v" * 100, expire_at_ms=now_ms() + 100_000 + i)
        except OutOfMemoryError:
            break
    assert b"keep" in ks.data


def test_replica_role_refuses_writes_with_readonly() -> None:
    roles = RoleMachine()
    roles.transition(Role.REPLICA, "test", "10.0.0.1:15501")
    cmds = Commands(Keyspace(), History(), check_writable=roles.check_writable)
    with pytest.raises(ReadOnlyError) as err:
        cmds.set(b"a", b"1")
    assert err.value.message.startswith("READONLY You can't write against a read only replica.")
    assert "10.0.0.1:15501" in err.value.detail


def test_incr_on_non_integer_is_an_error_and_changes_nothing() -> None:
    cmds, ks, records = make()
    cmds.set(b"s", b"abc")
    with pytest.raises(CommandError, match="not an integer"):
        cmds.incr_by(b"s", 1)
    assert ks.lookup(b"s") == b"abc" and len(records) == 1


def test_scan_returns_every_key_once() -> None:
    cmds, _, _ = make()
    keys = {b"k%d" % i for i in range(250)}
    cmds.mset([(k, b"v") for k in keys])
    seen: list[bytes] = []
    cursor = 0
    for _ in range(100):
        cursor, batch = cmds.scan(cursor, None, 17)
        seen += batch
        if cursor == 0:
            break
    assert sorted(seen) == sorted(keys)

"""The history: its position (shift / adopt / restore) and per-read batching of records."""

from __future__ import annotations

import re

from synap.store.effects import decode_record, encode_record, encode_set_record
from synap.store.history import NO_REPLID, History, Position

REPLID = "a" * 40
MASTER = "b" * 40


def recording(history: History) -> list[tuple[str, int, list[bytes]]]:
    """Subscribe a per-record and a batch listener pair; returns what they saw."""
    seen: list[tuple[str, int, list[bytes]]] = []
    history.subscribe(
        lambda offset, record: seen.append(("one", offset, [record])),
        lambda first, records: seen.append(("batch", first, list(records))),
    )
    return seen


# --- position ---------------------------------------------------------------------------


def test_a_new_history_has_a_random_id_and_no_previous_one():
    h = History()
    assert re.fullmatch(r"[0-9a-f]{40}", h.replid)
    assert h.position() == Position(h.replid, 0, NO_REPLID, -1)
    assert not h.position().has_previous
    assert History().replid != h.replid


def test_shift_keeps_the_old_id_as_replid2_up_to_the_next_offset():
    h = History(REPLID)
    h.offset = 500
    position = h.shift()
    assert position == h.position()
    assert (position.replid2, position.second_offset, position.offset) == (REPLID, 501, 500)
    assert position.replid != REPLID and re.fullmatch(r"[0-9a-f]{40}", position.replid)
    assert position.has_previous


def test_shift_to_a_given_id_and_twice_forgets_the_oldest():
    h = History(REPLID)
    h.commit([[0, b"k", b"v", 0]])
    assert h.shift(MASTER) == Position(MASTER, 1, REPLID, 2)
    h.commit([[1, b"k"]])
    third = h.shift()
    assert (third.replid2, third.second_offset, third.offset) == (MASTER, 3, 2)


def test_adopt_takes_the_masters_history_and_forgets_ours():
    h = History(REPLID)
    h.offset = 10
    h.shift()
    assert h.adopt(MASTER, 77) == Position(MASTER, 77) == h.position()
    assert h.offset == 77 and h.replid2 == NO_REPLID and h.second_offset == -1


def test_restore_continues_from_a_persisted_position():
    h = History()
    h.restore(Position(REPLID, 42, MASTER, 17))
    assert h.position() == Position(REPLID, 42, MASTER, 17)
    assert h.commit([[4]]) == 43
    assert h.position().offset == 43


def test_positions_are_values():
    assert Position(REPLID, 1) == Position(REPLID, 1, NO_REPLID, -1)
    assert Position(REPLID, 1) != Position(REPLID, 2)
    assert len({Position(REPLID, 1), Position(REPLID, 1)}) == 1


# --- publishing -------------------------------------------------------------------------


def test_without_batching_every_commit_reaches_the_listeners_at_once():
    h = History()
    seen = recording(h)
    assert h.commit([[0, b"a", b"1", 0]]) == 1
    assert h.commit([[1, b"a"]]) == 2
    assert [(kind, offset) for kind, offset, _ in seen] == [("one", 1), ("one", 2)]
    assert decode_record(seen[1][2][0]) == [[1, b"a"]]


def test_batching_hands_a_reads_records_over_once_in_order():
    h = History()
    seen = recording(h)
    starts: list[int] = []
    h.on_pending = lambda: starts.append(h.offset)
    for i in range(5):
        h.commit([[0, b"k%d" % i, b"v", 0]])
    assert seen == [] and starts == [1]  # queued; the safety net was asked once
    h.publish()
    assert [(kind, first, len(records)) for kind, first, records in seen] == [("batch", 1, 5)]
    assert [decode_record(r)[0][1] for r in seen[0][2]] == [b"k0", b"k1", b"k2", b"k3", b"k4"]
    h.publish()  # nothing pending: nothing happens
    assert len(seen) == 1
    h.commit([[1, b"k0"]])
    assert starts == [1, 6]  # the next batch starts a new round
    h.publish()
    assert seen[-1][:2] == ("batch", 6)


def test_reading_the_position_publishes_first():
    """A snapshot records the position: the WAL must hold every record up to it."""
    h = History(REPLID)
    seen = recording(h)
    h.on_pending = lambda: None
    h.commit([[4]])
    h.commit([[4]])
    assert seen == []
    assert h.position().offset == 2
    assert [(first, len(records)) for _, first, records in seen] == [(1, 2)]


def test_shift_publishes_the_old_histories_records_first():
    h = History(REPLID)
    seen = recording(h)
    h.on_pending = lambda: None
    h.commit([[4]])
    h.shift()
    assert len(seen) == 1 and h.second_offset == 2


def test_records_from_a_master_follow_the_queued_ones():
    h = History()
    seen = recording(h)
    h.on_pending = lambda: None
    h.commit([[4]])
    h.commit_encoded_batch(2, [b"\x91\x91\x04", b"\x91\x91\x04"])
    assert [(first, len(records)) for _, first, records in seen] == [(1, 1), (2, 2)]
    assert h.offset == 3


def test_nothing_is_encoded_when_nothing_listens():
    h = History()
    h.on_pending = lambda: (_ for _ in ()).throw(AssertionError("no batch without listeners"))
    assert h.commit([[0, b"k", b"v", 0]]) == 1
    h.publish()
    assert h.position().offset == 1


def test_a_listener_subscribed_mid_batch_sees_only_later_records():
    h = History()
    first = recording(h)
    h.on_pending = lambda: None
    h.commit([[4]])
    second = recording(h)  # subscribing publishes what was committed before
    h.commit([[4]])
    h.publish()
    assert [(f, len(r)) for _, f, r in first] == [(1, 1), (2, 1)]
    assert [(f, len(r)) for _, f, r in second] == [(2, 1)]


def test_commit_set_commits_the_record_commit_would():
    """The SET fast path's commit_set: the same record, offset and batching as commit."""
    plain, direct = History(), History()
    seen_plain, seen_direct = recording(plain), recording(direct)
    for h in (plain, direct):
        h.on_pending = lambda: None
    sizes = [0, 1, 255, 256, 65535, 65536]
    for ks in sizes:
        for vs in sizes:
            key, value = b"k" * ks, bytes(range(256)) * (vs // 256) + b"v" * (vs % 256)
            assert plain.commit([[0, key, value, 0]]) == direct.commit_set(key, value)
    plain.publish()
    direct.publish()
    assert seen_plain == seen_direct and len(seen_direct[0][2]) == len(sizes) ** 2
    assert encode_set_record(b"key", b"value") == encode_record([[0, b"key", b"value", 0]])
    nothing = History()  # nothing listens: nothing encoded, the offset still moves
    nothing.on_pending = lambda: (_ for _ in ()).throw(AssertionError("no batch"))
    assert nothing.commit_set(b"k", b"v") == 1

"""The replication backlog: a bounded, offset-addressed log of effect records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synap.replication.backlog import (
    DEFAULT_MAX_OPS,
    SEGMENT_BYTES_FRACTION,
    SEGMENT_RECORDS,
    OffsetNotInBacklog,
    ReplicationBacklog,
)


def rec(i: int, size: int = 10) -> bytes:
    return (b"%d:" % i).ljust(size, b".")


def filled(n: int, **kw) -> ReplicationBacklog:
    backlog = ReplicationBacklog(**kw)
    for i in range(1, n + 1):
        backlog.append(rec(i))
    return backlog


def test_spec_default_holds_one_million_operations():
    assert ReplicationBacklog().max_ops == DEFAULT_MAX_OPS == 1_000_000


def test_offsets_are_consecutive_and_start_at_1():
    backlog = ReplicationBacklog()
    assert (backlog.first_offset, backlog.last_offset, len(backlog)) == (1, 0, 0)
    for i in range(1, 6):
        backlog.append(rec(i))
        assert backlog.last_offset == i
    assert (backlog.first_offset, backlog.last_offset, len(backlog)) == (1, 5, 5)


def test_extend_returns_the_last_offset():
    backlog = ReplicationBacklog()
    assert backlog.extend([rec(1), rec(2), rec(3)]) == 3
    assert backlog.records_from(1) == [rec(1), rec(2), rec(3)]


@pytest.mark.parametrize("max_ops", [1, 2, 15, 16, 100, 5000])
def test_never_holds_more_than_max_ops_records(max_ops):
    backlog = ReplicationBacklog(max_ops=max_ops)
    for i in range(1, 3 * max_ops + 2 * SEGMENT_RECORDS):
        backlog.append(rec(i))
        assert len(backlog) <= max_ops
    assert backlog.last_offset == 3 * max_ops + 2 * SEGMENT_RECORDS - 1


@pytest.mark.parametrize("max_ops", [1, 16, 5000])
def test_full_backlog_loses_at_most_two_segments_to_granularity(max_ops):
    backlog = filled(4 * max_ops, max_ops=max_ops)
    segment = max(1, min(SEGMENT_RECORDS, max_ops // 16))
    assert len(backlog) >= max_ops - 2 * segment
    assert len(backlog) >= 1


def test_oldest_records_are_evicted_first():
    backlog = filled(10_000, max_ops=5000)
    first = backlog.first_offset
    assert first > 1
    assert backlog.records_from(first, max_count=1) == [rec(first)]
    assert backlog.records_from(backlog.last_offset) == [rec(10_000)]


def test_byte_bound_is_never_exceeded_by_more_than_one_record():
    backlog = ReplicationBacklog(max_bytes=10_000)
    for i in range(1, 5000):
        backlog.append(rec(i, size=1 + (i * 37) % 200))
        assert backlog.nbytes <= 10_000 + 200
    assert backlog.nbytes == sum(
        map(len, backlog.records_from(backlog.first_offset, max_count=10**6, max_bytes=10**9))
    )


def test_a_record_larger_than_the_whole_backlog_is_not_kept_for_long():
    backlog = ReplicationBacklog(max_bytes=1000)
    backlog.append(b"x" * 5000)
    backlog.append(b"small")
    assert backlog.last_offset == 2
    assert not backlog.can_serve_from(1)
    assert backlog.records_from(2) == [b"small"]


def test_can_serve_from_includes_the_next_offset_to_be_written():
    backlog = filled(3)
    assert backlog.can_serve_from(1)
    assert backlog.can_serve_from(4)  # nothing missing: the replica is up to date
    assert not backlog.can_serve_from(5)  # beyond our history
    assert backlog.records_from(4) == []


def test_can_serve_from_refuses_evicted_offsets():
    backlog = filled(20_000, max_ops=5000)
    assert not backlog.can_serve_from(backlog.first_offset - 1)
    assert backlog.can_serve_from(backlog.first_offset)


def test_records_from_an_evicted_offset_says_where_the_log_starts():
    backlog = filled(20_000, max_ops=5000)
    with pytest.raises(
        OffsetNotInBacklog,
        match=rf"offset 5 no longer in the log \(log starts at {backlog.first_offset}\)",
    ):
        backlog.records_from(5)
    with pytest.raises(OffsetNotInBacklog, match="beyond the newest record 20000"):
        backlog.records_from(20_002)


def test_records_from_respects_max_count():
    backlog = filled(5000)
    assert backlog.records_from(1000, max_count=3) == [rec(1000), rec(1001), rec(1002)]


def test_records_from_spans_segments():
    backlog = filled(3 * SEGMENT_RECORDS)
    start = SEGMENT_RECORDS - 2
    got = backlog.records_from(start, max_count=SEGMENT_RECORDS + 5)
    assert got == [rec(i) for i in range(start, start + SEGMENT_RECORDS + 5)]


def test_records_from_respects_max_bytes_but_returns_at_least_one_record():
    backlog = ReplicationBacklog()
    backlog.extend([b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 100])
    assert backlog.records_from(1, max_bytes=25) == [b"a" * 10, b"b" * 10]
    assert backlog.records_from(1, max_bytes=30) == [b"a" * 10, b"b" * 10, b"c" * 10]
    assert backlog.records_from(4, max_bytes=25) == [b"d" * 100]


def test_reset_restarts_history_after_a_full_sync():
    backlog = filled(100)
    backlog.reset(5000)  # the snapshot was taken at offset 5000
    assert (backlog.first_offset, backlog.last_offset, len(backlog), backlog.nbytes) == (
        5001,
        5000,
        0,
        0,
    )
    assert backlog.can_serve_from(5001)
    assert not backlog.can_serve_from(100)
    backlog.append(b"next")
    assert backlog.last_offset == 5001


def test_backlog_can_start_at_a_persisted_offset():
    backlog = ReplicationBacklog(last_offset=41)
    backlog.append(b"r")
    assert backlog.last_offset == 42


# A model-based check: the backlog behaves like an unbounded list cut to its window.
@settings(max_examples=60, deadline=None)
@given(
    max_ops=st.integers(1, 300),
    max_bytes=st.integers(1, 5000),
    ops=st.lists(
        st.one_of(
            st.integers(0, 120).map(lambda n: ("append", n)),
            st.integers(0, 50).map(lambda n: ("reset", n)),
            st.integers(1, 400).map(lambda n: ("burst", n)),
        ),
        max_size=40,
    ),
    probes=st.lists(st.tuples(st.integers(-5, 5), st.integers(1, 50)), max_size=5),
)
def test_backlog_matches_a_reference_log(max_ops, max_bytes, ops, probes):
    backlog = ReplicationBacklog(max_ops=max_ops, max_bytes=max_bytes)
    batched = ReplicationBacklog(max_ops=max_ops, max_bytes=max_bytes)  # same, via extend()
    history: dict[int, bytes] = {}
    last = 0
    seg_records = max(1, min(SEGMENT_RECORDS, max_ops // 16))
    seg_bytes = max(1, max_bytes // SEGMENT_BYTES_FRACTION)
    for kind, n in ops:
        if kind == "reset":
            last += n
            history.clear()
            backlog.reset(last)
            batched.reset(last)
            continue
        batch = []
        for _ in range(1 if kind == "append" else n):
            last += 1
            record = b"%d" % last + b"x" * (n if kind == "append" else last % 7)
            history[last] = record
            batch.append(record)
            backlog.append(record)
            assert backlog.last_offset == last
        assert batched.extend(batch) == last
        assert (batched.first_offset, batched.nbytes) == (backlog.first_offset, backlog.nbytes)
        assert len(backlog) <= max_ops
        largest = max((len(r) for r in history.values()), default=0)
        assert backlog.nbytes <= max_bytes + largest
        # ...and it keeps all it may: short of both bounds by at most two segments.
        assert (
            len(backlog) >= min(len(history), max_ops - 2 * seg_records)
            or backlog.nbytes >= max_bytes - 2 * seg_bytes - 2 * largest
        )
    assert backlog.last_offset == last
    first = backlog.first_offset
    assert first <= last + 1
    held = [history[o] for o in range(first, last + 1)]
    assert backlog.nbytes == sum(map(len, held))
    assert backlog.records_from(first, max_count=10**6, max_bytes=10**9) == held
    for delta, count in probes:
        start = min(max(first, first + (len(held) * abs(delta)) // 5), last + 1)
        assert backlog.records_from(start, max_count=count, max_bytes=10**9) == [
            history[o] for o in range(start, min(start + count, last + 1))
        ]

"""The waiter structures behind WAIT / WAITAOF / HTTP "wait" and min_offset reads
(synap/replication/consistency.py): pure asyncio, no sockets."""

from __future__ import annotations

import asyncio

import pytest

from synap.commands.errors import CommandError
from synap.replication.consistency import (
    APPLIED,
    FSYNCED,
    AckWaiters,
    OffsetWaiters,
    majority_replicas,
    replicas_wanted,
    wait_future,
)


def test_one_ack_round_resolves_exactly_the_satisfied_waiters() -> None:
    async def main() -> None:
        waiters = AckWaiters()
        futures = {
            (wanted, offset): waiters.add(APPLIED, wanted, offset)
            for wanted in (1, 2, 3)
            for offset in range(1, 11)
        }
        aof = waiters.add(FSYNCED, 1, 1)
        acked = {APPLIED: [7, 4], FSYNCED: [0, 0]}
        assert waiters.resolve(lambda kind: acked[kind]) == 7 + 4
        for (wanted, offset), fut in futures.items():
            expected = (wanted == 1 and offset <= 7) or (wanted == 2 and offset <= 4)
            assert fut.done() is expected, (wanted, offset)
        assert not aof.done()
        acked[FSYNCED] = [3, 0]
        acked[APPLIED] = [10, 10, 10]
        waiters.resolve(lambda kind: acked[kind])
        assert all(f.done() for f in futures.values()) and aof.done()
        assert not waiters and len(waiters) == 0

    asyncio.run(main())


def test_timed_out_waiters_are_dropped() -> None:
    async def main() -> None:
        waiters = AckWaiters()
        assert await wait_future(waiters.add(APPLIED, 1, 5), 0.01) is False
        waiters.resolve(lambda kind: [])
        assert not waiters  # the cancelled waiter is gone
        late = waiters.add(APPLIED, 1, 5)
        waiters.release_all()
        assert late.done() and not waiters

    asyncio.run(main())


def test_offset_waiters_wake_in_order() -> None:
    async def main() -> None:
        waiters = OffsetWaiters()
        a, b, c = waiters.add(3), waiters.add(1), waiters.add(8)
        waiters.advance(2)
        assert b.done() and not a.done() and not c.done()
        waiters.advance(8)
        assert a.done() and c.done() and not waiters

    asyncio.run(main())


def test_replicas_wanted() -> None:
    assert [majority_replicas(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 1, 2, 2]
    assert replicas_wanted(2, None, 0) == 2
    assert replicas_wanted("majority", 3, 0) == 1
    assert replicas_wanted("all", 3, 1) == 2
    assert replicas_wanted("all", None, 4) == 4
    with pytest.raises(CommandError, match="replication.group_size"):
        replicas_wanted("majority", None, 2)
    with pytest.raises(CommandError):
        replicas_wanted("most", 3, 2)


def test_thousands_of_waiters_cost_one_offsets_call_per_ack() -> None:
    async def main() -> None:
        waiters = AckWaiters()
        futures = [waiters.add(APPLIED, 1 + i % 2, i % 100) for i in range(5000)]
        calls: list[int] = []

        def offsets_of(kind: int) -> list[int]:
            calls.append(kind)
            return [99, 50]

        assert (
            waiters.resolve(offsets_of) == 2500 + 1250
        )  # wanted 1: all; wanted 2 (odd offsets): <= 50
        assert calls == [APPLIED]  # one look at the replicas, whatever the waiter count
        assert sum(f.done() for f in futures) == 3750

    asyncio.run(main())

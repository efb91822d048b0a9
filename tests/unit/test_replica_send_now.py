"""When a master sends committed records to its replicas (MasterServer.notify /
send_now / the end-of-iteration flush): at once after the WAL write when nothing went
out just before, else batched at the end of the loop iteration."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from synap.replication import master
from synap.replication.master import SEND_GAP_SECONDS, MasterServer


class Connection:
    """Stands in for a ReplicaConnection: records when it was asked to send."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def catch_up(self, frames: dict[int, Any] | None = None) -> None:
        self.log.append("sent")


def server(log: list[str]) -> MasterServer:
    manager: Any = SimpleNamespace(config=SimpleNamespace(output_buffer_limit_mb=1))
    srv = MasterServer(manager, SimpleNamespace(), "127.0.0.1", 0)  # type: ignore[arg-type]
    srv.connections.add(Connection(log))  # type: ignore[arg-type]
    return srv


def test_an_idle_masters_records_go_out_before_the_reads_replies():
    async def main() -> list[str]:
        log: list[str] = []
        srv = server(log)
        srv.notify()  # a read committed records
        srv.send_now()  # flush_writes, once the WAL has them: before the replies
        log.append("reply")
        await asyncio.sleep(0)  # the end of the loop iteration: nothing left to send
        await asyncio.sleep(0)
        return log

    assert asyncio.run(main()) == ["sent", "reply"]


def test_under_load_records_wait_for_the_end_of_the_iteration(monkeypatch):
    monkeypatch.setattr(master.time, "monotonic", lambda: 1000.0)  # all within the gap

    async def main() -> list[str]:
        log: list[str] = []
        srv = server(log)
        srv.notify()
        srv.send_now()  # the first read's records: at once
        for i in range(3):  # more reads in the same iteration, right after it
            srv.notify()
            srv.send_now()
            log.append(f"reply {i}")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        log.append("next iteration")
        return log

    log = asyncio.run(main())
    # Within SEND_GAP_SECONDS of a send, a read's records are held back: the three
    # reads go out together, in one send at the end of the iteration.
    assert log == ["sent", "reply 0", "reply 1", "reply 2", "sent", "next iteration"]


def test_records_go_out_at_once_again_after_the_gap(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(master.time, "monotonic", lambda: clock[0])

    async def main() -> list[str]:
        log: list[str] = []
        srv = server(log)
        srv.notify()
        srv.send_now()
        clock[0] += SEND_GAP_SECONDS / 2
        srv.notify()
        srv.send_now()  # too soon: held back
        log.append("held")
        clock[0] += SEND_GAP_SECONDS
        srv.notify()
        srv.send_now()  # the gap has passed: sends (what was held, too)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return log

    assert asyncio.run(main()) == ["sent", "held", "sent"]


def test_nothing_is_sent_without_new_records():
    async def main() -> list[str]:
        log: list[str] = []
        srv = server(log)
        srv.send_now()
        await asyncio.sleep(0)
        return log

    assert asyncio.run(main()) == []

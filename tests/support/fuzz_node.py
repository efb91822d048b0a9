"""What the connection fuzz tests (RESP and SynapRPC) share: the hypothesis settings, a
seeded node with role changes disabled whose committed records are captured, and a fake
transport with just enough of ``asyncio.Transport`` for a front-end connection."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from synap.commands.errors import CommandError
from synap.config import build_config
from synap.node import Node


def scaled(examples: int) -> int:
    """A fuzz test's example count under the loaded profile (``HYPOTHESIS_PROFILE=thorough
    pytest ...`` runs twenty times as many)."""
    return max(1, examples * settings().max_examples // 100)


FUZZ = settings(
    max_examples=scaled(200), deadline=3000, suppress_health_check=[HealthCheck.too_slow]
)
SEED = {f"seed:{i}".encode(): f"value-{i}".encode() for i in range(20)}
MAX_VALUE = 4096


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise CommandError("ERR role changes are disabled in this test")


def fuzz_node() -> tuple[Node, list[bytes]]:
    """A node holding ``SEED`` that refuses role changes (no network from a fuzzer), and
    the list its committed records are appended to."""
    config = build_config({"kv_store": {"max_value_bytes": MAX_VALUE, "max_key_bytes": 256}})
    node = Node(config)
    node.replication.follow = _refuse  # type: ignore[method-assign]
    node.replication.promote = _refuse  # type: ignore[method-assign]
    node.commands.mset(list(SEED.items()))
    records: list[bytes] = []
    node.history.subscribe(lambda _offset, record: records.append(record))
    return node, records


class FakeTransport:
    """Just enough of asyncio.Transport for RespConnection and RpcConnection."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

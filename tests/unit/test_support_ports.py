"""tests.support.ports: reserved ports are distinct, held across processes, and free."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ports

ROOT = Path(__file__).resolve().parents[2]


def test_free_port_is_bindable() -> None:
    port = ports.free_port()
    with socket.create_server((ports.HOST, port)):
        pass


def test_reserved_ports_are_distinct_outside_the_ephemeral_range_and_released() -> None:
    got = ports.reserve_ports(20)
    more: list[int] = []
    try:
        assert len(set(got)) == 20
        low, high = ports._ephemeral_range()
        assert not any(low <= p <= high for p in got)
        assert set(got) <= set(ports.reserved_ports())
        more = ports.reserve_ports(20)
        assert not set(got) & set(more)  # held ports are not handed out again
    finally:
        for port in got + more:
            ports.release_port(port)
    assert not set(got + more) & set(ports.reserved_ports())


def test_another_process_cannot_take_a_reserved_port() -> None:
    port = ports.reserve_port()
    try:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from tests.support import ports;"
            "ports.LOCK_DIR.mkdir(parents=True, exist_ok=True);"
            "print(ports._try_lock(int(sys.argv[2])) is None)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(ROOT), str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert out.strip() == "True"
    finally:
        ports.release_port(port)


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    busy, free = ports.reserve_ports(2)
    ports.release_port(busy)
    ports.release_port(free)
    with socket.create_server((ports.HOST, busy)):
        monkeypatch.setattr(ports, "_pool", lambda: [busy, free])
        try:
            assert ports.reserve_ports(1) == [free]
        finally:
            ports.release_port(free)


def test_exhausted_pool_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    only = ports.free_port()
    before = ports.reserved_ports()
    monkeypatch.setattr(ports, "_pool", lambda: [only])
    with pytest.raises(RuntimeError, match="could not reserve 2 free ports"):
        ports.reserve_ports(2)
    assert ports.reserved_ports() == before  # the partial reservation was given back

"""The wall clock in milliseconds: absolute expiry times, snapshot and fsync stamps."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000

"""Cheap latency histograms and per-name counters for the hot paths, read by /metrics.

The command loops and the WAL only add to plain ints and lists here (one ``bisect`` on
fixed bucket bounds per observation); :mod:`synap.api.metrics` turns them into
Prometheus histograms at scrape time. No locks: observations run on the event loop,
except WAL fsyncs in a worker thread, where a rare lost increment is acceptable.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Seconds. From 50 µs (an in-memory GET) to 10 s (a stuck disk).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class Count:
    """A running count the compiled front ends add to once per command (or per run of
    fast-path commands): a native field, where an ``int`` attribute of the (Python)
    node would cost a generic attribute read and write each time.  The node's
    ``processed`` is INFO's ``total_commands_processed``."""

    def __init__(self) -> None:
        self.value = 0


# Seconds, for whole operations such as a full sync or a snapshot.
SYNC_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class LatencyHistogram:
    """Fixed-bucket histogram: ``counts[i]`` holds observations ``<= bounds[i]`` and above
    ``bounds[i-1]``; the last slot holds those above every bound (``+Inf``)."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs, ``+Inf`` last, as Prometheus wants them."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(float(bound)), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class CommandTimings:
    """Calls and latency per command name for one front end (RESP or HTTP); a name's
    call count is its histogram's ``count``."""

    __slots__ = ("latency",)

    def __init__(self) -> None:
        # Keyed by the name as the front end has it (bytes on RESP), decoded at scrape.
        self.latency: dict[str | bytes, LatencyHistogram] = {}

    def observe(self, name: str | bytes, seconds: float) -> None:
        # LatencyHistogram.observe inlined: this runs once per command.
        hist = self.latency.get(name)
        if hist is None:
            hist = self.latency[name] = LatencyHistogram()
        hist.counts[bisect_left(hist.bounds, seconds)] += 1
        hist.total += seconds
        hist.count += 1

    def observe_many(self, name: str | bytes, count: int, seconds: float) -> None:
        """``count`` calls of ``name`` that took ``seconds`` together, run back to back
        (the RESP fast path times a run of GETs or SETs once): each is counted at the
        average, so the sum and the count are exact and the buckets approximate."""
        hist = self.latency.get(name)
        if hist is None:
            hist = self.latency[name] = LatencyHistogram()
        each = seconds / count
        bounds = hist.bounds
        # (A fast run's commands nearly always fall in the first bucket: no bisect then.)
        hist.counts[0 if each <= bounds[0] else bisect_left(bounds, each)] += count
        hist.total += seconds
        hist.count += count

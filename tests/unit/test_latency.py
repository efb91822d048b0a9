"""synap/latency.py: fixed-bucket histograms as Prometheus reads them (``le`` inclusive,
cumulative, ``+Inf`` last) and per-name command timings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synap.latency import CommandTimings, LatencyHistogram


def test_bounds_are_inclusive_and_cumulative() -> None:
    h = LatencyHistogram((0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.001, 0.002, 0.01, 5.0):
        h.observe(seconds)
    assert h.cumulative() == [("0.001", 2), ("0.01", 4), ("0.1", 4), ("+Inf", 5)]
    assert h.count == 5 and abs(h.total - 5.0135) < 1e-9


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_every_bucket_counts_what_is_at_or_below_its_bound(values: list[float]) -> None:
    h = LatencyHistogram()
    for v in values:
        h.observe(v)
    pairs = h.cumulative()
    assert pairs[-1] == ("+Inf", len(values))
    for le, n in pairs[:-1]:
        assert n == sum(1 for v in values if v <= float(le))


def test_command_timings_count_per_name() -> None:
    t = CommandTimings()
    for _ in range(3):
        t.observe(b"SET", 0.0001)
    t.observe("/kv/get", 0.2)
    assert t.latency[b"SET"].count == 3 and t.latency["/kv/get"].count == 1
    assert t.latency["/kv/get"].cumulative()[-1] == ("+Inf", 1)

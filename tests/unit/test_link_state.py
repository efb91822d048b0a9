"""The replica link's one state (:class:`LinkState`) and the words every view prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synap.api.metrics import LINK_STATES
from synap.replication.link_state import STATUS_WORDS, LinkState

DOCS = Path(__file__).resolve().parents[2] / "docs" / "MONITORING.md"


@pytest.mark.parametrize(
    ("state", "status", "redis", "up"),
    [
        (LinkState.CONNECT, "disconnected", "connect", False),
        (LinkState.CONNECTING, "connecting", "connecting", False),
        (LinkState.HANDSHAKE, "sync", "sync", False),
        (LinkState.TRANSFER, "sync", "sync", False),
        (LinkState.CONNECTED, "connected", "connected", True),
        (LinkState.STOPPED, "stopped", "connect", False),
    ],
)
def test_each_state_prints_the_words_it_always_printed(
    state: LinkState, status: str, redis: str, up: bool
) -> None:
    assert (state.status, state.redis, state.up) == (status, redis, up)


def test_the_metric_has_one_series_per_documented_stats_word() -> None:
    assert LINK_STATES == ("connecting", "sync", "connected", "disconnected", "stopped")
    assert set(STATUS_WORDS) == {s.status for s in LinkState}
    row = next(
        line for line in DOCS.read_text().splitlines() if "`synap_replication_link_state`" in line
    )
    documented = re.search(r"`state` = ([a-z/]+)", row)
    assert documented is not None
    assert tuple(documented.group(1).split("/")) == LINK_STATES

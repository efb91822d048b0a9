"""Fixtures shared by all tests: ``node_factory`` runs real synap-server processes.

    from tests.support.server import NodeFactory, wait_caught_up

    def test_replica_gets_writes(node_factory: NodeFactory) -> None:
        master = node_factory.master()
        replica = node_factory.replica(master)
        master.redis().set(b"k", b"v")
        wait_caught_up(master, [replica])
        assert replica.redis().get(b"k") == b"v"

Every node (and FaultProxy made with ``node_factory.proxy``) is killed at teardown, pass
or fail; a failing test's report gets a "synap nodes" section with each node's log tail.
Import support code as ``tests.support.<module>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Make ``tests.support`` importable however pytest was started (the repository root is not
# on sys.path for ``.venv/bin/pytest``, and tests/ has no __init__.py).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from synap import build  # noqa: E402
from tests.support.etcd import etcd_cluster, etcd_server  # noqa: E402
from tests.support.fixtures import node_factory, pytest_runtest_makereport  # noqa: E402

# Hypothesis profiles: HYPOTHESIS_PROFILE=thorough runs twenty times as many examples in
# every property test (fuzz tests scale their own counts with tests.support.fuzz_node.scaled).
settings.register_profile("default", max_examples=100)
settings.register_profile("thorough", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# pytester: the harness tests run an inner pytest session to check teardown on failure.
pytest_plugins = ("pytester",)

__all__ = ["etcd_cluster", "etcd_server", "node_factory", "pytest_runtest_makereport"]


def pytest_report_header() -> str:
    """Which build the run tests: the servers the tests start inherit it (synap/build.py)."""
    return f"synap build: {build.state().describe()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The same line at the end, where `pytest -q` (which hides the header) shows it too."""
    terminalreporter.write_line(pytest_report_header())


def pytest_sessionstart(session: pytest.Session) -> None:
    """Never test stale extensions; CI (SYNAP_REQUIRE_COMPILED=1) tests the compiled build."""
    state = build.state()
    if state.stale:
        pytest.exit(build.stale_message(state.stale), returncode=2)
    if os.environ.get("SYNAP_REQUIRE_COMPILED") == "1" and not state.compiled:
        pytest.exit(f"SYNAP_REQUIRE_COMPILED=1 but the build is {state.describe()}", returncode=2)

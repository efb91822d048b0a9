"""pytest fixtures and hooks for real-process tests; ``tests/conftest.py`` imports them.

``node_factory`` starts nodes under the test's ``tmp_path`` and kills every one of them at
teardown, pass or fail. When a test using it fails, its report gets a "synap nodes"
section with every node's state and log tail, and every proxy's stats.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .server import NodeFactory


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    """Start nodes under ``tmp_path`` (``<name>/`` data, ``<name>.log``); all killed at the end."""
    factory = NodeFactory(tmp_path)
    try:
        yield factory
    finally:
        problems = factory.cleanup()
    if problems:
        pytest.fail("cleaning up synap nodes failed: " + "; ".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        factory = getattr(item, "funcargs", {}).get("node_factory")
        if isinstance(factory, NodeFactory):
            try:
                text = factory.describe()
            except Exception as exc:  # a report must never break
                text = f"(could not describe the nodes: {exc!r})"
            report.sections.append(("synap nodes", text))
    return report

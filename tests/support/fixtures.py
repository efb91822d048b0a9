"""pytest fixtures and hooks for real-process tests; ``tests/conftest.py`` imports them.

``node_factory`` starts nodes under the test's ``tmp_path`` and kills every one of them at
teardown, pass or fail. When a test using it fails, its report gets a "synap nodes"
section with every node's state and log tail, and every proxy's stats.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import NodeFactory, SynapProcess


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


def module_node(
    name: str, config: dict[str, Any] | None = None
) -> Callable[..., Iterator[SynapProcess]]:
    """A module-scoped ``node`` fixture: one node shared by a test module's tests that
    leave its role and configuration alone (starting one costs ~1-2 s)::

        node = module_node("http")
    """

    @pytest.fixture(scope="module", name="node")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapProcess]:
        factory = NodeFactory(tmp_path_factory.mktemp(name))
        try:
            yield factory(name=name, config=config)
        finally:
            factory.cleanup()

    return fixture


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

"""Markers for tests that depend on which build runs (synap/build.py)."""

from __future__ import annotations

import pytest

from synap import build


def needs_pure(module: str) -> pytest.MarkDecorator:
    """Skip on a build where ``module`` is compiled: the test monkeypatches one of its
    globals, which compiled code binds at build time. It runs under ``make test-pure``."""
    return pytest.mark.skipif(
        module in build.state().compiled,
        reason=f"monkeypatches {module}, compiled here; runs under `make test-pure`",
    )

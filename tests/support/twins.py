"""The pure-Python source of a module that has a C twin, loaded beside the twin.

``import synap.x.codec`` gives whichever the build installed (the C extension on the
compiled build); :func:`pure_twin` executes the ``.py`` next to it under another name, so
one test can hold both and compare them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def pure_twin(loaded: ModuleType, name: str) -> ModuleType:
    """The source ``<name>.py`` beside ``loaded``'s file, executed as a fresh module."""
    source = Path(loaded.__file__ or "").with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_source", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

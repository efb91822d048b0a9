"""Which build runs: the hot modules compiled with mypyc (and the Cython read loop), or
pure Python; and whether the compiled extensions are stale.

``setup.py`` writes ``synap/_build.json`` at install time: the mode and the SHA-256 of each
compiled module's source. :func:`state` compares that record with the sources now: a
compiled module whose ``.py`` changed since the build (an editable install edited after
``make install``), or an extension without a record, is *stale*, and ``synap-server``
refuses to start on a stale build (:func:`stale_message` says to run ``make install``).

``SYNAP_PURE_PYTHON=1`` at run time makes every compiled module load from its source
(:func:`force_pure`, called by ``synap/__init__.py`` before any of them is imported), so the
pure-Python fallback can run on a compiled install (``make test-pure``).  A module written
for Cython has a ``.pyx`` source and no ``.py``: it is recorded and checked like the others,
and under ``SYNAP_PURE_PYTHON=1`` importing it fails (its importer falls back to Python).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
RECORD = PACKAGE_DIR / "_build.json"
PURE_ENV = "SYNAP_PURE_PYTHON"


def pure_requested() -> bool:
    """``SYNAP_PURE_PYTHON`` is set (to anything but 0)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def _source(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """``synap.api.resp`` -> <package>/api/resp.py (or its ``.pyx`` when only that exists:
    a module written for Cython)"""
    path = package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.exists() and path.with_suffix(".pyx").exists():
        return path.with_suffix(".pyx")
    return path


def _extensions(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Modules of the package that have a C extension beside (and so instead of) their source."""
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    found: dict[str, Path] = {}
    for path in package_dir.rglob("*.so"):
        for suffix in suffixes:
            if path.name.endswith(suffix):
                rel = path.relative_to(package_dir).parent.parts
                found[".".join(("synap", *rel, path.name.removesuffix(suffix)))] = path
                break
    return found


def _recorded(package_dir: Path) -> tuple[str, dict[str, str]]:
    try:
        data = json.loads((package_dir / RECORD.name).read_text())
        return str(data["mode"]), {str(k): str(v) for k, v in data["modules"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "unrecorded", {}


def _sha256(path: Path) -> str | None:
    """Of a module's source, with its hand-written C twin (``.c`` beside it) if any, as
    setup.py records it."""
    try:
        digest = hashlib.sha256(path.read_bytes())
        twin = path.with_suffix(".c")
        if path.suffix == ".py" and twin.exists():  # (a .pyx's .c is generated)
            digest.update(twin.read_bytes())
        return digest.hexdigest()
    except OSError:
        return None  # an installed wheel without sources: nothing to compare


@dataclass(frozen=True)
class BuildState:
    mode: str  # what setup.py recorded: "mypyc", "pure" or "unrecorded"
    compiled: tuple[str, ...]  # modules that run from C extensions
    stale: tuple[str, ...]  # compiled modules whose source changed since the build
    forced_pure: bool  # SYNAP_PURE_PYTHON=1 at run time
    cython: tuple[str, ...] = ()  # those of ``compiled`` written for Cython (.pyx)
    c_twins: tuple[str, ...] = ()  # those of ``compiled`` built from a hand-written .c twin

    def describe(self) -> str:
        if self.compiled:
            mypyc = len(self.compiled) - len(self.cython) - len(self.c_twins)
            text = f"compiled (mypyc, {mypyc} modules"
            if self.c_twins:
                text += f"; C: {', '.join(sorted(m.rsplit('.', 1)[-1] for m in self.c_twins))}"
            if self.cython:
                short = ", ".join(m.rsplit(".", 1)[-1] for m in self.cython)
                text += f"; Cython: {short}"
            text += ")"
            if self.stale:
                text += f", STALE: {', '.join(self.stale)} changed since the build"
            return text
        if self.forced_pure:
            return f"pure Python ({PURE_ENV}=1)"
        return "pure Python"


def state(package_dir: Path | None = None) -> BuildState:
    """The build this process runs: the modules with an extension (those already imported
    count only if they were imported from it), checked against the build record."""
    pkg = package_dir or PACKAGE_DIR
    mode, recorded = _recorded(pkg)
    if pure_requested():
        return BuildState(mode, (), (), True)
    compiled = []
    for module, ext in sorted(_extensions(pkg).items()):
        loaded = sys.modules.get(module)
        where = getattr(loaded, "__file__", None)
        if loaded is None or (where is not None and Path(where).resolve() == ext.resolve()):
            compiled.append(module)
    stale = tuple(
        m
        for m in compiled
        if m not in recorded or _sha256(_source(m, pkg)) not in (recorded[m], None)
    )
    cython = tuple(m for m in compiled if _source(m, pkg).suffix == ".pyx")
    twins = tuple(m for m in compiled if _has_c_twin(_source(m, pkg)))
    return BuildState(mode, tuple(compiled), stale, False, cython, twins)


def _has_c_twin(source: Path) -> bool:
    """A ``.py`` with a hand-written ``.c`` beside it (setup.py ``C_TWINS``)."""
    return source.suffix == ".py" and source.with_suffix(".c").exists()


def stale_message(stale: Sequence[str]) -> str:
    files = ", ".join(
        m.replace(".", "/") + (".py or .c" if _has_c_twin(_source(m)) else _source(m).suffix)
        for m in stale
    )
    return (
        f"the compiled build is stale: {files} changed since the extensions were built; "
        f"run `make install` to rebuild them (or set {PURE_ENV}=1 to run the sources uncompiled)"
    )


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the package's compiled modules from their ``.py`` instead of the extension;
    refuses those with no ``.py`` (Cython modules: their importers fall back)."""

    def __init__(self, modules: frozenset[str], blocked: frozenset[str] = frozenset()) -> None:
        self.modules = modules
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.blocked:
            raise ModuleNotFoundError(f"{fullname} is compiled only ({PURE_ENV}=1)", name=fullname)
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


@functools.cache
def force_pure() -> None:
    """Run every compiled module from its source in this process (and in the servers it
    starts, which inherit ``SYNAP_PURE_PYTHON``)."""
    extensions = _extensions()
    modules = frozenset(m for m in extensions if _source(m).suffix == ".py" and _source(m).exists())
    blocked = frozenset(m for m in extensions if _source(m).suffix == ".pyx")
    loaded = sorted(m for m in modules | blocked if m in sys.modules)
    if loaded:
        raise RuntimeError(f"force_pure() after {', '.join(loaded)} was imported compiled")
    sys.meta_path.insert(0, _SourceFirst(modules, blocked))

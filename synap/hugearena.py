"""pymalloc arenas on transparent huge pages: the pure-Python stand-in for ``hugearena.c``.

The compiled build has ``hugearena.c`` beside this file, built by setup.py into an
extension of the same name that Python imports instead of it (as ``walcodec`` is). The C
module installs an arena allocator for Python's object memory (``PyObject_SetArenaAllocator``)
that hands out arenas from one range of address space marked ``MADV_HUGEPAGE``, and a hook
marking large blocks the same way, so that ``fork()`` copies a few thousand page-table
entries instead of a few hundred thousand (docs/OPERATIONS.md, "Full syncs: memory and
CPU on the master"). Python code cannot replace an allocator: this module only says so;
:mod:`synap.hugepages` decides whether to install and reports why not.
"""

from __future__ import annotations

BUILT = 0  # the C module's BUILT is 1


def install(reserve: int, raw_min: int) -> None:
    """The C module's ``install``; here always an error (nothing to install)."""
    raise RuntimeError("the huge-page arena allocator is C only (pure-Python build)")


def prefault(ahead: int) -> None:
    """The C module's ``prefault`` (a thread populating ``ahead`` bytes beyond the arenas
    in use); here always an error, like :func:`install`."""
    raise RuntimeError("the huge-page prefault thread is C only (pure-Python build)")


def stats() -> dict[str, int | bool]:
    """The C module's counters; here: not installed."""
    return {"installed": False}


def collapse(what: int = 3) -> tuple[int, int, bool]:
    """The C module's ``collapse``: (ranges collapsed, failed, supported); here nothing.
    ``what``: 1 the arenas and large blocks, 2 glibc's heap, 3 both."""
    return 0, 0, True


def heap_end() -> int:
    """The C module's ``heap_end`` (``sbrk(0)``); here 0."""
    return 0


def address_range() -> tuple[int, int] | None:
    """The reserved range, ``(start, length)``; here: none."""
    return None

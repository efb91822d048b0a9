"""Tighter size classes for mid-sized objects: the pure-Python stand-in for ``tightalloc.c``.

The compiled build has ``tightalloc.c`` beside this file, built by setup.py into an
extension of the same name that Python imports instead of it (as ``hugearena`` is). The C
module hooks Python's object allocator (``PyMem_SetAllocator``) and serves the requests
that pymalloc's 16-byte classes would round up by more than 8 bytes (a 100-byte value's
133-byte bytes object: 144 there, 136 here) from 8-byte classes. Python code cannot
replace an allocator: this module only says so; :mod:`synap.sizeclasses` decides whether
to install and reports why not.
"""

from __future__ import annotations

BUILT = 0  # the C module's BUILT is 1


def install(
    lo: int, hi: int, via_arenas: bool, detach_min: int = 512, sharing: bool = False
) -> None:
    """The C module's ``install``; here always an error (nothing to install)."""
    raise RuntimeError("the 8-byte size classes are C only (pure-Python build)")


def stats() -> dict[str, int | bool]:
    """The C module's counters; here: not installed."""
    return {"installed": False}


def detach(record: bytes) -> bytes:
    """The C module's ``detach`` (a copy in memory a forked child does not get); here the
    record itself."""
    return record


def detach_many(records: list[bytes] | tuple[bytes, ...]) -> list[bytes]:
    """``[detach(r) for r in records]``, in one call."""
    return list(records)


def is_detached(obj: object) -> bool:
    """Whether :func:`detach` made ``obj``; here never."""
    return False


def owns(obj: object) -> bool:
    """Whether ``obj``'s memory came from the 8-byte classes; here never."""
    return False


def share(value: bytes) -> bytes:
    """The C module's ``share`` (a copy in memory a forked child shares, MAP_SHARED); here
    the value itself."""
    return value


def is_shared(obj: object) -> bool:
    """Whether :func:`share` made ``obj``; here never."""
    return False


def reader_started() -> int:
    """A child that reads shared values is about to be forked; returns its seal, for
    :func:`reader_ended` (nothing is shared here, so nothing waits)."""
    return 0


def reader_ended(seal: int) -> int:
    """The child :func:`reader_started` returned ``seal`` for is gone; returns how many
    are left (here always 0)."""
    return 0


def release_quarantined(limit: int) -> int:
    """Free up to ``limit`` shared blocks freed while a child could read them and that no
    live child can read now; returns how many such are left (here none)."""
    return 0

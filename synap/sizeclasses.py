"""8-byte size classes for values (``kv_store.size_classes``): whether to use them, and doing so.

pymalloc rounds every object up to a multiple of 16 bytes, so a 100-byte value (a
133-byte ``bytes`` object) takes 144 bytes. With ``kv_store.size_classes: fine`` (the
default) :func:`start` installs :mod:`synap.tightalloc` (C), which serves the objects of
129-504 bytes that 16-byte rounding would pad by 9-15 bytes from classes 8 bytes smaller
(136 for that value): 8 bytes saved per such key, about 4 bytes per key over values of
96-471 bytes. ``pymalloc`` leaves Python's allocator alone (``SYNAP_SIZE_CLASSES`` in the
environment wins over the file). It is not installed when the C module is not built,
nor when ``PYTHONMALLOC`` names another allocator or debug hooks, under ``-X dev``, or
with tracemalloc tracing, which must see every block. The same module holds the
replication log's large records where ``fork()`` does not copy them
(:mod:`synap.replication.backlog`); with ``pymalloc`` they stay in the forked heap.

**Shared values** (``kv_store.shared_values``, on by default with ``fine``): a node that
takes writes with replication enabled (a master) stores each value of up to
:data:`SHARED_MAX_VALUE` bytes as a copy in memory mapped ``MAP_SHARED``
(``tightalloc.share``), which ``fork()`` maps into a full sync's child without copying a
page table, so the master's clients wait for a shorter fork. The child reads them
without touching a reference count (:mod:`synap.replication.snapcodec`); the values a
master frees while a child lives are quarantined and reused once it is gone
(:func:`fork_started`, :func:`fork_child_gone`, freed a slice at a time from the event
loop).

:func:`decide` is the pure decision (tests/unit/test_sizeclasses.py); :func:`start`
installs and records the outcome (INFO memory ``synap_size_classes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tracemalloc
from dataclasses import dataclass
from typing import Any

ENV = "SYNAP_SIZE_CLASSES"  # fine or pymalloc; wins over kv_store.size_classes
SHARED_ENV = "SYNAP_SHARED_VALUES"  # on or off; wins over kv_store.shared_values
# The longest value share() copies: its bytes object (33 bytes of header) fits 504.
SHARED_MAX_VALUE = 471
# Quarantined blocks freed per event-loop step once the last child is gone (~1 ms).
RELEASE_SLICE = 16384
MODES = ("fine", "pymalloc")
# Object sizes (bytes, headers included) served by the 8-byte classes. Smaller objects
# (ints, tuples, keys of up to ~80 bytes) stay with pymalloc, whose hottest paths they
# are; 504 is the largest size 16-byte rounding pads (505-512 round to 512 either way).
LOW = 129
HIGH = 504


@dataclass(frozen=True)
class Status:
    """``active`` once installed, else the reason it is not."""

    active: bool
    reason: str

    def describe(self) -> str:
        """``fine`` or ``pymalloc (reason)``: INFO memory ``synap_size_classes``."""
        return "fine" if self.active else f"pymalloc ({self.reason})"

    def describe_switch(self) -> str:
        """``on`` or ``off (reason)``: INFO memory ``synap_shared_values``."""
        return "on" if self.active else f"off ({self.reason})"


_status = Status(False, "not started (the server installs them at start-up)")
_sharing = Status(False, "not started (the server decides at start-up)")
log = logging.getLogger("synap.sizeclasses")


def decide(
    mode: str,
    built: bool,
    pythonmalloc: str | None,
    dev_mode: bool,
    tracing: bool,
    env_value: str | None = None,
) -> Status:
    """Whether to install :mod:`synap.tightalloc`: ``mode`` is ``kv_store.size_classes``,
    ``built`` whether the C module is the one imported, ``pythonmalloc`` the raw
    ``PYTHONMALLOC``, ``dev_mode`` Python's ``-X dev``, ``tracing`` tracemalloc's state,
    ``env_value`` the raw ``SYNAP_SIZE_CLASSES`` (it wins when it names a mode)."""
    from_env = (env_value or "").strip().lower()
    if from_env == "pymalloc":
        return Status(False, f"{ENV} is pymalloc")
    if from_env != "fine" and mode == "pymalloc":
        return Status(False, "kv_store.size_classes is pymalloc")
    if not built:
        return Status(False, "the C module synap.tightalloc is not built (pure-Python build)")
    if pythonmalloc and pythonmalloc.strip() not in ("pymalloc", "default"):
        return Status(False, f"PYTHONMALLOC is {pythonmalloc.strip()}")
    if dev_mode:
        return Status(False, "Python runs in development mode (-X dev)")
    if tracing:
        return Status(False, "tracemalloc is tracing")
    return Status(True, f"{ENV} is fine" if from_env == "fine" else "kv_store.size_classes is fine")


def decide_sharing(
    classes: Status, wanted: bool, env_value: str | None = None, huge_pages: bool = False
) -> Status:
    """Whether values are shared with forked children: ``classes`` is :func:`decide`'s
    outcome (sharing needs the C module installed), ``wanted`` is
    ``kv_store.shared_values``, ``env_value`` the raw ``SYNAP_SHARED_VALUES`` (``on`` or
    ``off`` win over the file), ``huge_pages`` whether Python's memory is on huge pages
    (then a fork copies few page tables anyway, and the values stay there, unless the
    environment says ``on``)."""
    from_env = (env_value or "").strip().lower()
    forced = from_env in ("on", "1", "true", "yes")
    if from_env in ("off", "0", "false", "no"):
        return Status(False, f"{SHARED_ENV} is off")
    if not forced and not wanted:
        return Status(False, "kv_store.shared_values is false")
    if huge_pages and not forced:
        return Status(False, "huge pages are active: fork() copies few page tables already")
    if not classes.active:
        return Status(False, f"size classes are pymalloc: {classes.reason}")
    return Status(True, f"{SHARED_ENV} is on" if forced else "kv_store.shared_values is true")


def start(mode: str, via_arenas: bool, shared_values: bool = False) -> Status:
    """Decide, install when the decision says so, record it for :func:`status` (and the
    sharing of values for :func:`sharing`). Called once, early in ``synap-server``
    (objects allocated before keep pymalloc's classes), after
    :func:`synap.hugepages.start`: with huge pages active (``via_arenas``) the classes
    take their 1 MiB chunks from the huge-page range."""
    global _status, _sharing
    from synap import tightalloc

    decision = decide(
        mode,
        bool(getattr(tightalloc, "BUILT", 0)),
        os.environ.get("PYTHONMALLOC"),
        bool(sys.flags.dev_mode),
        tracemalloc.is_tracing(),
        os.environ.get(ENV),
    )
    sharing = decide_sharing(decision, shared_values, os.environ.get(SHARED_ENV), via_arenas)
    if decision.active:
        try:
            tightalloc.install(LOW, HIGH, via_arenas, 512, sharing.active)
        except (OSError, RuntimeError, ValueError) as exc:
            decision = Status(False, f"install failed: {exc}")
            sharing = Status(False, f"size classes are pymalloc: {decision.reason}")
    _status = decision
    _sharing = sharing
    return _status


def log_status() -> None:
    """The one start-up line: ``size classes: fine (why)`` or ``size classes: pymalloc
    (why)``. The node logs it beside the huge-page line."""
    status = _status
    word = "fine" if status.active else "pymalloc"
    detail = f"; objects of {LOW}-{HIGH} bytes take 8-byte classes" if status.active else ""
    log.info("size classes: %s (%s)%s", word, status.reason, detail)
    shared = _sharing
    if shared.active:
        log.info(
            "shared values: on (%s); a master's values of up to %d bytes are not copied "
            "by a full sync's fork()",
            shared.reason,
            SHARED_MAX_VALUE,
        )
    else:
        log.info("shared values: off (%s)", shared.reason)


def status() -> Status:
    """What this process runs on (:func:`start`'s outcome)."""
    return _status


def sharing() -> Status:
    """Whether this process shares values with forked children (INFO memory
    ``synap_shared_values``)."""
    return _sharing


def settle_sharing(replicating: bool) -> Status:
    """The node's say: only a node with replication enabled forks for full syncs, so a
    standalone one keeps its write path (and INFO and the start-up line say so)."""
    global _sharing
    if _sharing.active and not replicating:
        _sharing = Status(False, "replication is not enabled: a standalone node never forks")
    return _sharing


def fork_started() -> int | None:
    """A child that reads the keyspace is about to be forked: until it is gone, the shared
    values the master frees that it may read are quarantined. Returns the token to hand
    :func:`fork_child_gone` (None when values are not shared)."""
    if not _sharing.active:
        return None
    from synap import tightalloc

    return tightalloc.reader_started()


def fork_child_gone(token: int | None) -> None:
    """The child :func:`fork_started` gave ``token`` for has exited and been reaped: give
    back the quarantined blocks no live child can read any more (what only it and older
    children could read), :data:`RELEASE_SLICE` per event-loop step (all at once without
    a loop)."""
    if token is None or not _sharing.active:
        return
    from synap import tightalloc

    try:
        tightalloc.reader_ended(token)
    except RuntimeError:  # an unknown or second end: a bug, but never a reason to crash
        log.error("shared values: a forked child ended twice", exc_info=True)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        while tightalloc.release_quarantined(RELEASE_SLICE):
            pass
        return

    def release() -> None:
        if tightalloc.release_quarantined(RELEASE_SLICE):  # (what a new child may read waits)
            loop.call_soon(release)

    release()


def stats() -> dict[str, Any]:
    """The classes' counters (``blocks``, ``saved_bytes``, ``chunks``, ...); empty when off."""
    from synap import tightalloc

    return dict(tightalloc.stats()) if _status.active else {}

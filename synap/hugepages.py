"""Transparent huge pages for Python's object memory: whether to use them, and doing so.

A master forks to send a full sync, and the ``fork()`` blocks its clients for as long as
the kernel takes to copy the page tables: ~7-10 ms for a million keys mapped with 4 KiB
pages, ~0.5 ms when the same memory is mapped with 2 MiB pages. ``kv_store.huge_pages``
(``never``, the default, or ``auto``; ``SYNAP_HUGE_PAGES`` in the environment wins)
says whether :func:`start` installs :mod:`synap.hugearena` (C): Python's object arenas
from one ``MADV_HUGEPAGE`` range kept populated ahead by a thread, and blocks of 4 MiB
or more (dict tables) collapsed onto huge pages by another after each fork. It does so
when the kernel's THP mode (``/sys/kernel/mm/transparent_hugepage/enabled``) is
``always`` or ``madvise`` and the C module is built; otherwise the process
runs on 4 KiB pages as before, and :func:`status` says why (INFO memory ``synap_huge_pages``).

:func:`decide` is the pure decision (tests/unit/test_hugepages.py); :func:`start` reads
the environment and sysfs, installs and records the outcome; the node logs it
(:func:`log_status`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "SYNAP_HUGE_PAGES"
MODES = ("auto", "never")
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
HUGE_PAGE = 2 * 1024 * 1024  # the only PMD size the allocator handles (x86-64, arm64 4K)
# Blocks from the RAW allocator at least this big are collapsed onto huge pages by the
# collapse thread after a fork: the keyspace's dict tables (~40 MB per million keys),
# never the small blocks glibc carves from its heap.
RAW_MIN_BYTES = 4 * 1024 * 1024
# The prefault thread (hugearena.prefault) keeps this much of the range populated beyond
# the arenas in use: a fresh 2 MiB page costs its first toucher 0.2-9 ms here (zeroing,
# and compaction when no free huge page is at hand), the thread pays it instead of the
# event loop. At most this much RSS more than the arenas need.
PREFAULT_AHEAD_BYTES = 8 * 1024 * 1024

log = logging.getLogger("synap.hugepages")


@dataclass(frozen=True)
class Decision:
    """Whether to install, and in words why (or why not)."""

    install: bool
    reason: str


@dataclass(frozen=True)
class Status:
    """What this process runs on: ``active`` once installed, else the reason it is not."""

    active: bool
    reason: str
    level: int = logging.INFO  # of the start-up line (log_status)
    detail: str = ""  # what the start-up line adds

    def describe(self) -> str:
        """``active`` or ``off (reason)``: INFO memory ``synap_huge_pages``, the start-up log."""
        return "active" if self.active else f"off ({self.reason})"


_status = Status(False, "not started (the server installs it at start-up)")
# The collapse thread (_maintain): how often it looks, whether a fork's child is alive
# (then it waits: collapsing pages the child shares would copy them for nothing), counters.
COLLAPSE_EVERY_S = 2.0
_collapse_lock = threading.Lock()
_wake = threading.Event()
_children = 0
_forked_since = False  # a child has come and gone since the last collapse of the arenas
_collapse_totals = {"runs": 0, "ranges": 0, "failed": 0, "last_ms": 0.0}


def env_mode(value: str | None) -> str | None:
    """``SYNAP_HUGE_PAGES``: ``never`` (also 0/no/off), ``auto`` (also 1/yes/on), or None
    when unset, empty or unrecognised (then the configuration decides)."""
    text = (value or "").strip().lower()
    if text in ("never", "0", "no", "off", "false"):
        return "never"
    if text in ("auto", "1", "yes", "on", "true"):
        return "auto"
    return None


def thp_mode(enabled_text: str | None) -> str | None:
    """The selected word of sysfs ``enabled`` (``always [madvise] never`` -> ``madvise``);
    None when the file is missing (no THP in this kernel) or unreadable."""
    if enabled_text is None:
        return None
    for word in enabled_text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    words = enabled_text.split()
    return words[0] if len(words) == 1 else None


def decide(
    config_mode: str,
    env_value: str | None,
    enabled_text: str | None,
    pmd_size_text: str | None,
    built: bool,
) -> Decision:
    """Whether to install the huge-page arena allocator.

    ``config_mode`` is ``kv_store.huge_pages``; ``env_value`` the raw ``SYNAP_HUGE_PAGES``
    (it wins when recognised); ``enabled_text`` / ``pmd_size_text`` the contents of sysfs
    ``enabled`` and ``hpage_pmd_size`` (None: missing); ``built`` whether the C module is
    the one imported."""
    from_env = env_mode(env_value)
    mode = from_env or config_mode
    if mode == "never":
        # (no "=" or ",": redis-py reads an INFO value holding them as a dict)
        source = f"{ENV} is {env_value.strip()}" if env_value and from_env else ""
        source = source or "kv_store.huge_pages is never"
        return Decision(False, f"turned off: {source}")
    if not built:
        return Decision(False, "the C module synap.hugearena is not built (pure-Python build)")
    system = thp_mode(enabled_text)
    if system is None:
        return Decision(False, "this kernel has no transparent huge pages")
    if system == "never":
        return Decision(False, "the system's transparent_hugepage mode is never")
    if system not in ("always", "madvise"):
        return Decision(False, f"unknown transparent_hugepage mode {system}")
    try:
        pmd = int((pmd_size_text or "").strip())
    except ValueError:
        pmd = HUGE_PAGE  # older kernels have no hpage_pmd_size: 2 MiB on x86-64
    if pmd != HUGE_PAGE:
        return Decision(False, f"huge page size {pmd} bytes is not 2 MiB")
    return Decision(True, f"transparent_hugepage mode {system}")


def reserve_bytes(sysconf: Mapping[str, int] | None = None) -> int:
    """Address space to reserve for the arenas: the machine's RAM (arenas beyond it would
    swap or fail anyway; more come from plain mmap), at least 1 GiB, in whole huge pages."""
    values = sysconf if sysconf is not None else _sysconf()
    ram = values.get("SC_PHYS_PAGES", 0) * values.get("SC_PAGE_SIZE", 0)
    size = max(ram, 1024**3)
    return -(-size // HUGE_PAGE) * HUGE_PAGE


def _sysconf() -> dict[str, int]:
    out = {}
    for name in ("SC_PHYS_PAGES", "SC_PAGE_SIZE"):
        try:
            out[name] = os.sysconf(name)
        except (ValueError, OSError):
            out[name] = 0
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def start(config_mode: str) -> Status:
    """Decide, install when the decision says so, log one line, record it for
    :func:`status`. Called once, early in ``synap-server`` (before the keyspace grows:
    arenas allocated before it stay on 4 KiB pages)."""
    global _status
    from synap import hugearena

    decision = decide(
        config_mode,
        os.environ.get(ENV),
        _read(THP_DIR / "enabled"),
        _read(THP_DIR / "hpage_pmd_size"),
        bool(getattr(hugearena, "BUILT", 0)),
    )
    if not decision.install:
        _status = Status(
            False, decision.reason, logging.INFO, "Python's memory stays on 4 KiB pages"
        )
        return _status
    reserve = reserve_bytes()
    try:
        hugearena.install(reserve, RAW_MIN_BYTES)
    except (OSError, RuntimeError, ValueError) as exc:
        _status = Status(False, f"install failed: {exc}", logging.WARNING)
        return _status
    try:
        hugearena.prefault(PREFAULT_AHEAD_BYTES)
        prefault = f"a thread keeps {PREFAULT_AHEAD_BYTES // 2**20} MiB populated ahead of them"
    except (OSError, RuntimeError) as exc:
        prefault = f"no prefault thread ({exc}): the event loop takes each first touch"
    threading.Thread(target=_maintain, name="synap-hugepages", daemon=True).start()
    _status = Status(
        True,
        decision.reason,
        logging.INFO,
        f"Python's object arenas come from a {reserve / 1024**3:.1f} GiB MADV_HUGEPAGE range "
        f"({prefault}), blocks of {RAW_MIN_BYTES // 2**20} MiB or more are collapsed onto them "
        "after each fork (kv_store.huge_pages)",
    )
    return _status


def log_status() -> None:
    """The one start-up line: ``huge pages: active (why): ...`` or ``huge pages: off
    (why)``. The node logs it once it has bound its id to the log (JSON lines carry it)."""
    status = _status
    detail = f"; {status.detail}" if status.detail else ""
    word = "active" if status.active else "off"
    log.log(status.level, "huge pages: %s (%s)%s", word, status.reason, detail)


def status() -> Status:
    """What this process runs on (:func:`start`'s outcome)."""
    return _status


def stats() -> dict[str, Any]:
    """The allocator's counters (arenas in the range, reused, released, fallbacks) and
    the collapse thread's (``collapse_runs``, ``collapse_ranges``, ...)."""
    from synap import hugearena

    if not _status.active:
        return {}
    with _collapse_lock:
        totals = {f"collapse_{k}": v for k, v in _collapse_totals.items()}
    return {**hugearena.stats(), **totals}


def fork_started() -> None:
    """A child was forked for a full sync: the collapse thread waits until it is gone."""
    global _children
    with _collapse_lock:
        _children += 1


def fork_child_gone() -> None:
    """A forked child has exited (and been reaped): once none is left, the collapse
    thread runs at once."""
    global _children, _forked_since
    with _collapse_lock:
        _children = max(0, _children - 1)
        _forked_since = True
        last = _children == 0
    if last:
        _wake.set()


def _maintain() -> None:
    """The collapse thread: as soon as the last forked child is gone, put the master's
    memory back on huge pages (``hugearena.collapse``: MADV_COLLAPSE, the GIL released
    meanwhile), the large blocks (dict tables) included: they are allocated on 4 KiB
    pages, cheap to fault in, and not collapsed while the data set grows (collapsing
    memory the event loop writes, a table on every insert, stalled it: p99 19-40 ms when
    the arenas were collapsed so, against 5-7.5 ms); and, looking every
    ``COLLAPSE_EVERY_S``, glibc's heap when it grew by 2 MiB or more.
    Nothing else is asked of the kernel: each MADV_COLLAPSE call drains the kernel's
    per-CPU page lists under the memory map's lock, which a ``fork()`` then waits for
    (up to tens of ms on a loaded machine).

    While a child shares the master's memory, each page the master writes is copied
    4 KiB at a time and its huge page is split into 4 KiB mappings: without this, a
    master written to during a sync would pay the 4 KiB fork() again at the next one
    (the kernel's khugepaged scans ~16 MB per 10 s by default). It also collapses glibc's
    heap, which MADV_HUGEPAGE cannot reach as it grows. The kernel copies each split or
    4 KiB 2 MiB block once (~0.1-0.3 ms of this thread's CPU); a block already huge costs
    a check."""
    global _forked_since
    from synap import hugearena

    heap_seen = hugearena.heap_end()
    while True:
        _wake.wait(COLLAPSE_EVERY_S)
        _wake.clear()
        heap = hugearena.heap_end()
        heap_seen = min(heap_seen, heap)  # (a trimmed heap that grows again is new memory)
        with _collapse_lock:
            if _children:
                continue
            # after a fork: everything (its copy-on-write split the heap's pages too)
            what = (3 if _forked_since else 0) | (2 if heap - heap_seen >= HUGE_PAGE else 0)
            _forked_since = False
        if not what:
            continue
        heap_seen = heap
        started = time.perf_counter()
        try:
            done, failed, supported = hugearena.collapse(what)
        except Exception as exc:  # never let the thread die noisily
            log.warning("huge pages: collapse failed: %s", exc)
            return
        ms = (time.perf_counter() - started) * 1000
        with _collapse_lock:
            _collapse_totals["runs"] += 1
            _collapse_totals["ranges"] += done
            _collapse_totals["failed"] += failed
            _collapse_totals["last_ms"] = round(ms, 1)
        if not supported:
            log.info("huge pages: this kernel has no MADV_COLLAPSE (Linux 6.1): khugepaged "
                     "alone collapses what forks split")  # fmt: skip
            return

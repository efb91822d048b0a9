"""Why each remaining failure of Redis's suite fails on synap-server (one line each), for
``docs/COMPATIBILITY.md``.  Matched by test-name substring; the first match wins."""

from __future__ import annotations

# (file or "" for any file, substring of the test name, reason)
REASONS: list[tuple[str, str, str]] = []


def reason_for(file: str, test: str) -> str:
    for where, needle, reason in REASONS:
        if (not where or where == file) and needle.lower() in test.lower():
            return reason
    return "not analysed yet"

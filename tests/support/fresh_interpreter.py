"""Run a snippet in a fresh interpreter and read back the JSON object it prints last: for
tests of allocators that are installed once per process and never removed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def run_fresh(prelude: str, code: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``prelude`` and the dedented ``code`` with this interpreter; the snippet prints
    one JSON object as its last line, and a non-zero exit fails the test with its output."""
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    got: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return got

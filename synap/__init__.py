"""Synap: an in-memory key-value server with master-replica replication."""

import os as _os

__version__ = "0.3.0"

if _os.environ.get("SYNAP_PURE_PYTHON", "") not in ("", "0"):
    # Before any compiled module is imported: run them all from source (synap/build.py).
    from synap.build import force_pure

    force_pure()

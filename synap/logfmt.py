"""Log formats: ``logging.format: text`` or ``json`` (one JSON object per line).

Every JSON line has ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``msg``, and this
node's ``node_id`` and current ``role`` once the node has bound them (:func:`bind`);
replication events add ``peer`` and offsets (``offset``, ``keys``) when the log call
passes them as ``extra``. The HTTP server logs as ``synap.http``. Built on
``json.dumps``, so any message text (quotes, line breaks, control characters) stays one
valid line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

# Fields a log call may add with extra={...}: replication events.
EXTRA_FIELDS = ("peer", "offset", "keys", "replica_id", "master", "seconds")

_node_id: str | None = None
_role: Callable[[], str] | None = None
_json = False


def json_enabled() -> bool:
    return _json


def json_line(msg: str, logger: str = "synap.banner") -> str:
    """``msg`` as one JSON log line (INFO), as the root handler would write it."""
    record = logging.makeLogRecord({"name": logger, "levelno": logging.INFO,
                                    "levelname": "INFO", "msg": msg})  # fmt: skip
    return JsonFormatter().format(record)


def bind(node_id: str, role: Callable[[], str]) -> None:
    """Name this process's node in every JSON line from now on (``role`` is asked each time)."""
    global _node_id, _role
    _node_id = node_id
    _role = role


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if _node_id is not None:
            out["node_id"] = _node_id
        if _role is not None:
            try:
                out["role"] = _role()
            except Exception:  # never lose a line over its context
                out["role"] = None
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str, separators=(",", ":"))


TEXT_PATTERN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger (stderr) once, for every synap logger."""
    global _json
    _json = fmt == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_PATTERN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))

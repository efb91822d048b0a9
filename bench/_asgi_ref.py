"""Reference for http_bench.py: the smallest raw-ASGI app that answers like GET /kv/get.

It serves one fixed JSON body of the same size on uvicorn with the same settings as the
node (httptools, uvloop, no access log), so its req/s is the ceiling for any ASGI app on
uvicorn on this machine *at the time of the run*; the ratio of ours to it is what the
code controls, the absolute figure moves with the load on the machine.
"""

from __future__ import annotations

from typing import Any

import orjson

BODY = orjson.dumps({"found": True, "value": "v" * 100, "ttl": None})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

"""Reference for http_bench.py: the smallest asyncio.Protocol + httptools server.

It answers every request with one fixed JSON body the size of ``GET /kv/get``'s, on
uvloop, keep-alive, no routing and no store: its req/s is the ceiling for any server of
this design on this machine *at the time of the run*; the ratio of ours to it is what
our code controls, the absolute figure moves with the load on the machine.

    python bench/_http_ref.py PORT
"""

from __future__ import annotations

import asyncio
import socket
import sys

import httptools
import orjson
import uvloop

BODY = orjson.dumps({"found": True, "value": "v" * 100, "ttl": None})
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Ref(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(RESPONSE)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Ref, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

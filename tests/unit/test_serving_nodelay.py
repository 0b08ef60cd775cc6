"""Served connections have Nagle's algorithm off, however uvicorn made the listening socket."""

from __future__ import annotations

import asyncio
import socket

from openitb.commands.serve import UVICORN_OPTIONS
from openitb.web.serving import HTTP_PROTOCOL, NoDelayH11Protocol, set_nodelay


async def _nodelay_of_accepted(fix: bool) -> int:
    """Accept one connection on a socket made as uvicorn's --workers makes it (protocol 0)."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if fix:
                set_nodelay(transport)
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    listener = socket.socket(family=socket.AF_INET)  # as uvicorn.Config.bind_socket does
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


def test_asyncio_leaves_nagle_on_for_a_protocol_0_socket_and_set_nodelay_turns_it_off() -> None:
    assert asyncio.run(_nodelay_of_accepted(fix=False)) == 0  # the cause of the ~40 ms
    assert asyncio.run(_nodelay_of_accepted(fix=True)) != 0


def test_itb_serve_uses_the_nodelay_protocol_with_one_or_more_workers() -> None:
    assert UVICORN_OPTIONS["http"] == HTTP_PROTOCOL
    module, _, name = HTTP_PROTOCOL.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is NoDelayH11Protocol

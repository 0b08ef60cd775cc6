"""How the clinic is served: uvicorn's h11 protocol with TCP_NODELAY on every connection.

Why: with ``--workers`` above one, uvicorn binds the listening socket itself as
``socket.socket(AF_INET)`` (protocol number 0), and asyncio only switches Nagle's algorithm off
for sockets whose protocol is ``IPPROTO_TCP``. So each keep-alive response, written as two
segments (head, then body), waited for the client's delayed ACK: about 40 ms a request. With
one worker asyncio creates the socket from getaddrinfo (protocol 6) and the option is set. This
protocol sets it on every accepted connection whichever way the socket was made.

Use: ``uvicorn --http openitb.web.serving:NoDelayH11Protocol ...`` (``itb serve`` does).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

HTTP_PROTOCOL = "openitb.web.serving:NoDelayH11Protocol"


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)

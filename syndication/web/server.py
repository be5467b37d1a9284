"""Running the web app under uvicorn, configured for serving feeds cheaply and for
clients that misbehave.

uvloop and httptools roughly double the requests per second of the pure-Python
event loop and parser; the per-request access log is off by default, since
polled feeds would fill it (and it costs a tenth of the throughput).

uvicorn's httptools protocol sets no limit on the time a client takes to send its
request (a connection that sends nothing, or a header a byte a second, stays open
for ever) nor on the size of its headers (16 MB are read and answered), and its
``limit_concurrency`` refuses the last connection of the limit rather than the one
after it. ``GuardedHttpToolsProtocol`` adds the two limits; ``config`` turns the
concurrency limit into "this many connections are served, one more gets 503".

Must not: know about routes or feeds; it runs whatever ASGI app it is given.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LifespanType
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ASGIApp", "GuardedHttpToolsProtocol", "bound_socket", "config", "serve"]

REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send a whole request (``[server] request_timeout``)."""
MAX_HEADER_BYTES = 64 * 1024
"""The request line and headers of one request, at most (``[server] max_header_bytes``)."""
LIMIT_CONCURRENCY = 1000
"""Connections served at once (``[server] limit_concurrency``)."""

log = logging.getLogger(__name__)


def _refusal(status: int, reason: str) -> bytes:
    """A whole response that closes the connection, for a request the app never sees."""
    body = f"{status} {reason}\n".encode("ascii")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return f"{head}content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode("ascii") + body


_TIMEOUT = _refusal(408, "Request Timeout")
_TOO_LARGE = _refusal(431, "Request Header Fields Too Large")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving a request and a cap on
    its headers (the class attributes; ``config`` makes a subclass with the configured ones).

    The deadline runs from the connection (for its first request) or from the first byte
    of a later one, until the request's last byte, headers and body: a client still
    sending then gets 408 if the app has not seen its request yet, and the connection is
    closed either way. Between requests uvicorn's keep-alive timeout applies. The header
    cap counts the bytes read while a request line or headers are incomplete, fed to the
    parser in slices no larger than what is left, so nothing beyond it is ever buffered
    (a request pipelined behind another in one read may pass it by that slice at most).
    """

    request_timeout: float = REQUEST_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            self._arm()  # the first byte of another request on a kept-alive connection
        rest = memoryview(data)
        while rest:
            if self._in_head:
                room = self.max_header_bytes - self._head_bytes
                if room <= 0:
                    log.info("request refused: headers larger than %d bytes", self.max_header_bytes)
                    self._refuse(_TOO_LARGE)
                    return
                piece, rest = rest[:room], rest[room:]
                self._head_bytes += len(piece)
            else:
                piece, rest = rest[: self.max_header_bytes], rest[self.max_header_bytes :]
            super().data_received(piece)  # type: ignore[arg-type]  # httptools reads any buffer
            if self.transport.is_closing():
                return

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._deadline is None:
            self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes and (self.cycle is None or self.cycle.response_complete):
            self._refuse(_TIMEOUT)  # a request begun and not finished: tell the client why
        else:
            self.transport.close()  # an idle connection, or the app has begun answering

    def _refuse(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()


def config(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    access_log: bool = False,
    log_level: str = "info",
    lifespan: LifespanType = "auto",
    log_config: dict[str, Any] | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    max_header_bytes: int = MAX_HEADER_BYTES,
    limit_concurrency: int = LIMIT_CONCURRENCY,
) -> uvicorn.Config:
    """A uvicorn configuration for ``app``: uvloop, httptools with ``GuardedHttpToolsProtocol``'s
    limits, no WebSocket, no ``Server`` header, no forwarding headers read (``web.proxies``
    reads them from the proxies it trusts).

    ``limit_concurrency`` connections are served at once; a request on one more is
    answered 503 (uvicorn counts the connection asking among them, hence the one added).

    ``log_config`` None (the default) keeps uvicorn from installing log handlers of its
    own: its records reach the root logger, as ``syndication.logs`` set it up, in the
    service's format. ``log_level`` still filters uvicorn's own loggers; the access log,
    when on, goes the same way.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=type(
            "GuardedHttpToolsProtocol",
            (GuardedHttpToolsProtocol,),
            {"request_timeout": request_timeout, "max_header_bytes": max_header_bytes},
        ),
        ws="none",
        interface="asgi3",  # said, not guessed: uvicorn would take a bound method for ASGI 2
        lifespan=lifespan,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        limit_concurrency=limit_concurrency + 1,
        log_config=log_config,
    )


def serve(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 8080, access_log: bool = False) -> None:
    """Serve ``app`` until interrupted (SIGINT or SIGTERM)."""
    uvicorn.Server(config(app, host=host, port=port, access_log=access_log)).run()


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port), to hand to ``uvicorn.Server.run``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock

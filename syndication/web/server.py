"""Running the web app under uvicorn, configured for serving feeds cheaply.

uvloop and httptools roughly double the requests per second of the pure-Python
event loop and parser; the per-request access log is off by default, since
polled feeds would fill it (and it costs a tenth of the throughput).

Must not: know about routes or feeds; it runs whatever ASGI app it is given.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LifespanType

__all__ = ["ASGIApp", "bound_socket", "config", "serve"]


def config(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    access_log: bool = False,
    log_level: str = "info",
    lifespan: LifespanType = "auto",
    proxy_headers: bool = False,
    log_config: dict[str, Any] | None = None,
) -> uvicorn.Config:
    """A uvicorn configuration for ``app``: uvloop, httptools, no WebSocket, no ``Server`` header.

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
        http="httptools",
        ws="none",
        interface="asgi3",  # said, not guessed: uvicorn would take a bound method for ASGI 2
        lifespan=lifespan,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        proxy_headers=proxy_headers,
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

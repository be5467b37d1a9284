"""The real web server on a loopback port, for tests that talk to the ASGI app over HTTP.

It runs ``uvicorn.Server`` with the production configuration
(``syndication.web.server.config``: uvloop, httptools) on an ephemeral port of
127.0.0.1, in a background thread with its own event loop. The socket is bound
before the thread starts, so the port is known at once and never raced for.

Usage::

    from tests.webserver import AppServer

    with AppServer(create_app(provider, templates_dir=TEMPLATES)) as server:
        response = httpx.get(server.url("/feeds/all.rss"))

``AppServer(app)``
    ``start()``/``stop()``, or use it as a context manager (``__enter__`` starts and waits
    until the server accepts connections).
``server.url(path="/") -> str``, ``server.base_url``, ``server.port``
    ``http://127.0.0.1:<port>`` and what lies under it.
``server.app``
    The app it serves; it may be replaced while the server runs, so that tests share
    one server (stopping one takes uvicorn a tenth of a second or more) and still give
    each test a fresh app.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from syndication.web.server import bound_socket, config

__all__ = ["AppServer"]

START_TIMEOUT = 10.0


class AppServer:
    """``app`` under uvicorn on 127.0.0.1, in a thread; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._socket = bound_socket("127.0.0.1", 0)
        self.host = "127.0.0.1"
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        settings = config(
            self._current_app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        settings.timeout_graceful_shutdown = 2
        self._server = uvicorn.Server(settings)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    async def _current_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"AppServer:{self.port}", daemon=True)
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the web server stopped while starting") from self._failure
            if waited > START_TIMEOUT:
                raise RuntimeError("the web server did not start in time")
            self._thread.join(0.01)
            waited += 0.01
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
            self._thread = None
        self._socket.close()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has no one else to tell
            self._failure = exc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

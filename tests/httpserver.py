"""A real HTTP server on a loopback port, for tests that fetch over the network.

It runs ``http.server.ThreadingHTTPServer`` (HTTP/1.1, keep-alive) on an
ephemeral port of 127.0.0.1 in a background thread. Routes are registered at
any time, also while it runs; every request is logged. Everything is
thread-safe. Fetching it needs ``allow_private_network=True``: it is a
loopback address.

Usage::

    from tests.httpserver import Reply, TestServer

    with TestServer() as srv:
        srv.add("/feed.xml", b"<rss>...</rss>", etag='"v1"')
        srv.redirect("/old", "/feed.xml", status=301)
        srv.handler("/slow", lambda request: (time.sleep(0.5), Reply(body=b"late"))[1])
        url = srv.url("/old")                    # "http://127.0.0.1:<port>/old"
        ...
        assert srv.hits("/feed.xml") == 1
        assert srv.requests[-1].headers["if-none-match"] == '"v1"'

As a pytest fixture::

    @pytest.fixture
    def server() -> Iterator[TestServer]:
        with TestServer() as srv:
            yield srv

API:

``TestServer()``
    ``start()``/``stop()``, or use it as a context manager (``__enter__`` starts).
``srv.url(path="/") -> str``
    The absolute URL of ``path`` (which may carry a query string).
``srv.base_url``, ``srv.host``, ``srv.port``
    ``http://127.0.0.1:<port>``, ``"127.0.0.1"``, the port.
``srv.add(path, body, *, content_type=..., status=200, headers=None, etag=None,``
``last_modified=None, gzip=False)``
    Serve ``body`` at ``path`` for GET and HEAD. ``content_type`` defaults to
    ``application/rss+xml; charset=utf-8``. ``etag`` and ``last_modified`` are
    sent as ``ETag`` / ``Last-Modified``; a request whose ``If-None-Match``
    matches ``etag`` gets a 304 (``If-None-Match`` wins when both are sent, as
    RFC 9110 says), else one whose ``If-Modified-Since`` is at or after
    ``last_modified`` gets a 304. ``gzip=True`` sends the body gzip-compressed
    with ``Content-Encoding: gzip`` (whatever the request accepts).
    ``headers`` are added last and replace headers of the same name
    (``Content-Length`` included, to tell lies on purpose).
``srv.redirect(path, to, status=302)``
    Answer ``path`` with a redirect; ``to`` may be relative or absolute, any scheme.
``srv.handler(path, func)``
    Custom behaviour: ``func(request: Request) -> Reply | None`` runs in the
    server's request thread. Return a ``Reply(status=200, body=b"", headers={},
    content_type=None)`` to send it, or write the response yourself through
    ``request.raw`` (the ``BaseHTTPRequestHandler``) and return ``None``; the
    connection is then closed after it. Any method (GET, HEAD, POST, PUT, DELETE)
    reaches a handler; ``request.body`` holds what was sent.
``srv.requests -> list[Request]``
    A copy of the log, oldest first: ``method``, ``path`` (with query), ``headers``
    (a read-only mapping with case-insensitive names), ``body``. ``srv.hits(path)`` counts
    requests for ``path`` (matched with or without its query);
    ``srv.clear_requests()`` empties the log.

Routing: a route registered for the exact path with its query string wins,
then the route for the path without the query; anything else is a 404. A
route registered again replaces the old one.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip as gzip_module
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["Headers", "Reply", "Request", "TestServer"]

DEFAULT_CONTENT_TYPE = "application/rss+xml; charset=utf-8"


class Headers(Mapping[str, str]):
    """Request headers, read-only, with case-insensitive names."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = {name.lower(): value for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    """The request target: path and query string, as sent."""
    headers: Headers
    """Looked up without regard to case (``headers["if-none-match"]``, ``.get("If-None-Match")``);
    iterating gives lower-cased names. A repeated header keeps its last value."""
    body: bytes = b""
    raw: BaseHTTPRequestHandler | None = field(default=None, repr=False, compare=False)
    """The live handler, for ``srv.handler`` functions that write the response themselves."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What a ``srv.handler`` function returns to have the server send it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


Handler = Callable[[Request], Reply | None]


class TestServer:
    """A threaded HTTP server on 127.0.0.1 with routes tests register; see the module docstring."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._log: list[Request] = []
        self._server = _Server(self)
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"TestServer:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- routes -------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def add(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | datetime | None = None,
        gzip: bool = False,
    ) -> None:
        """Serve ``body`` at ``path``, answering conditional requests with 304."""
        if isinstance(last_modified, datetime):
            last_modified = email.utils.format_datetime(last_modified, usegmt=True)
        payload = gzip_module.compress(body, mtime=0) if gzip else body
        base: dict[str, str] = {"Content-Type": content_type}
        if etag is not None:
            base["ETag"] = etag
        if last_modified is not None:
            base["Last-Modified"] = last_modified
        if gzip:
            base["Content-Encoding"] = "gzip"

        def serve(request: Request) -> Reply:
            if _not_modified(request.headers, etag=etag, last_modified=last_modified):
                validators = {k: v for k, v in base.items() if k in ("ETag", "Last-Modified")}
                return Reply(status=304, headers=validators)
            if request.method not in ("GET", "HEAD"):
                return Reply(status=405, headers={"Allow": "GET, HEAD"})
            return Reply(status=status, body=payload, headers=_merge(base, headers or {}))

        self.handler(path, serve)

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``to``."""
        self.handler(path, lambda request: Reply(status=status, headers={"Location": to}))

    def handler(self, path: str, func: Handler) -> None:
        """Answer ``path`` with ``func(request)``; see the module docstring."""
        with self._lock:
            self._routes[path] = func

    # -- the log ------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if path in (r.path, r.path.partition("?")[0]))

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # -- called from the server's threads ------------------------------------------------

    def _dispatch(self, request: Request) -> Handler | None:
        with self._lock:
            self._log.append(dataclasses.replace(request, raw=None))
            return self._routes.get(request.path) or self._routes.get(request.path.partition("?")[0])


def _merge(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    merged = {k: v for k, v in base.items() if k.lower() not in {e.lower() for e in extra}}
    merged.update(extra)
    return merged


def _not_modified(headers: Headers, *, etag: str | None, last_modified: str | None) -> bool:
    if "if-none-match" in headers:
        if etag is None:
            return False
        wanted = [tag.strip() for tag in headers["if-none-match"].split(",")]
        return "*" in wanted or _weak(etag) in {_weak(tag) for tag in wanted}
    if "if-modified-since" in headers and last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(headers["if-modified-since"])
            modified = email.utils.parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
        return modified <= since
    return False


def _weak(tag: str) -> str:
    return tag.removeprefix("W/")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: TestServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (a timeout test) breaks the pipe; that is expected, not news.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log is TestServer.requests

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = Headers(self.headers.items())
        request = Request(method=self.command, path=self.path, headers=headers, body=body, raw=self)
        func = self.server.owner._dispatch(request)
        reply = (
            Reply(status=404, body=b"not found\n", content_type="text/plain")
            if func is None
            else func(request)
        )
        if reply is None:  # the handler wrote the response itself
            self.close_connection = True
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        headers = dict(reply.headers)
        if reply.content_type is not None:
            headers.setdefault("Content-Type", reply.content_type)
        if not any(name.lower() == "content-length" for name in headers) and reply.status != 304:
            headers["Content-Length"] = str(len(reply.body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and reply.status != 304:
            self.wfile.write(reply.body)

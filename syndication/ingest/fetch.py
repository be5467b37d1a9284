"""Fetch a URL's bytes over HTTP(S), or from a ``file:`` URL: the only network edge of syndication.

``HttpFetcher.fetch`` turns a ``FetchRequest`` into a ``FetchResult`` or raises
``FetchError``. What it guarantees:

* No internal address is reached unless the request allows it. The fetcher
  resolves names itself, checks every address with ``netguard.is_internal``
  and connects to an address it checked, on the first request and on every
  redirect hop, so DNS rebinding cannot slip between check and connect. TLS
  still verifies the certificate for the host name.
* Redirects are followed here (at most ``max_redirects``, http and https only).
* Conditional GET: the request's validators are sent; a 304 has no content.
* ``content`` is decompressed here, never by httpx, and never grows past
  ``max_bytes``: a gzip bomb stops at the cap.
* At most ``concurrency`` responses are in flight, and at most ``per_host``
  to one host; a slow host holds only its own slots.
* Every httpx, httpcore and OS exception becomes one ``FetchError`` in
  ``_fetch_errors``, chained with ``raise ... from``.
* User information in a URL (``user:password@``) is used for the request but
  never appears in a message, an error's ``url`` or a result's ``url``.
* A ``file:`` URL is read by ``local_files`` (never in ``/proc``, ``/sys`` or ``/dev``,
  and one linked from a ``file:`` listing only inside that listing's folder); its
  ``OSError`` becomes a ``FetchError`` here like any other.

It must not parse content, touch the store, or read the wall clock (``clock``
is injected; it stamps ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Protocol, Self
from urllib.parse import urlsplit

import httpcore
import httpx

from syndication.errors import BlockedAddressError, FetchError
from syndication.ingest.decide import retry_after
from syndication.ingest.local_files import read_file_url
from syndication.ingest.netguard import IPAddress, check_url, host_problem, is_internal, redact_url
from syndication.types import Clock, FetchRequest, FetchResult

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_GZIP_WBITS = zlib.MAX_WBITS | 32  # gzip or zlib header, detected
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


class Fetcher(Protocol):
    """What ``core`` needs from a fetcher; tests pass a fake."""

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """The bytes at ``request.url``, or a 304 result.

        Raises:
            FetchError: anything that kept us from getting them.
        """
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a while; every fetcher can share one context.
    return httpx.create_ssl_context()


class HttpFetcher:
    """Fetches http, https and file URLs; one instance serves every source.

    Use it as an async context manager, or call ``aclose`` when done. Create and
    use it inside one event loop.

    ``timeout`` bounds each step (resolving and connecting, each read, each
    write); ``total_timeout`` (default three times ``timeout``) bounds one whole
    response, body included, so a server that drips bytes cannot hold a slot
    for ever. Time spent waiting for a free slot counts toward neither.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 20.0,
        total_timeout: float | None = None,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        concurrency: int = 10,
        per_host: int = 2,
        clock: Clock = _utc_now,
    ) -> None:
        total_timeout = 3 * timeout if total_timeout is None else total_timeout
        if min(timeout, total_timeout, concurrency, per_host, max_bytes) <= 0 or max_redirects < 0:
            raise ValueError(
                "timeouts, concurrency, per_host and max_bytes must be positive; max_redirects >= 0"
            )
        self._timeout = timeout
        self._total_timeout = total_timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._per_host = per_host
        self._clock = clock
        self._global_slots = asyncio.Semaphore(concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        ssl_context = _ssl_context()
        self._guarded = self._client(
            _Transport(guard=True, ssl_context=ssl_context, size=concurrency), user_agent
        )
        self._open = self._client(
            _Transport(guard=False, ssl_context=ssl_context, size=concurrency), user_agent
        )

    def _client(self, transport: _Transport, user_agent: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            # Environment proxies would get their own transport, past the address check.
            trust_env=False,
            # httpx reads a redirect's Location even when it does not follow it, and a
            # malformed host there (``http://xn--/``) would raise from deep inside it: the
            # target is checked first, as the response comes in.
            event_hooks={"response": [_check_redirect]},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._guarded.aclose()
        await self._open.aclose()

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """The bytes at ``request.url`` (http, https or file), or a 304 result.

        Raises:
            BlockedAddressError: the URL, or a redirect, leads to an internal address.
            FetchError: network failure, HTTP error status, too large, too many redirects...
        """
        attempt = _Attempt(url=request.url, timeout=self._timeout, total_timeout=self._total_timeout)
        with _fetch_errors(attempt):
            if urlsplit(request.url).scheme.lower() == "file":
                return await self._fetch_file(request)
            return await self._fetch_http(request, attempt)

    async def post_form(self, url: str, form: dict[str, str]) -> int:
        """POST a form (a WebSub publish ping) and return the status; the body is ignored.

        Only for URLs from the operator's configuration: no internal-address check.

        Raises:
            FetchError: network failure or an HTTP error status.
        """
        attempt = _Attempt(url=url, timeout=self._timeout, total_timeout=self._total_timeout)
        with _fetch_errors(attempt):
            check_url(url)
            parsed = httpx.URL(url)
            async with self._slot(_host(parsed)), asyncio.timeout(self._total_timeout):
                response = await self._open.post(parsed, data=form)
            if response.status_code >= 400:
                raise FetchError(
                    f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                    url=redact_url(url),
                    status=response.status_code,
                )
            return response.status_code

    # -- HTTP -------------------------------------------------------------------------

    async def _fetch_http(self, request: FetchRequest, attempt: _Attempt) -> FetchResult:
        check_url(request.url)
        client = self._open if request.allow_private_network else self._guarded
        headers = {"Accept": request.accept}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        url = httpx.URL(request.url)
        for _ in range(self._max_redirects + 1):
            attempt.url = str(url)
            async with self._slot(_host(url)), asyncio.timeout(self._total_timeout):
                response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
                try:
                    if response.status_code not in _REDIRECT_STATUSES:
                        return await self._result(request, url, response)
                    url = _redirect_target(url, response)
                finally:
                    await response.aclose()
        raise FetchError(f"too many redirects (more than {self._max_redirects})", url=attempt.safe_url)

    @contextlib.asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        # The host's slot first: a request queued behind a slow host holds no global slot.
        slots = self._host_slots.get(host)
        if slots is None:
            slots = self._host_slots[host] = asyncio.Semaphore(self._per_host)
        async with slots, self._global_slots:
            yield

    async def _result(self, request: FetchRequest, url: httpx.URL, response: httpx.Response) -> FetchResult:
        status = response.status_code
        headers = {name.lower(): value for name, value in response.headers.items()}
        content_type, charset = _parse_content_type(headers.get("content-type"))
        if status >= 400:
            raise FetchError(
                f"HTTP {status} {response.reason_phrase}".rstrip(),
                url=redact_url(str(url)),
                status=status,
                retry_after=self._retry_after(status, headers.get("retry-after")),
            )
        if status == 304:
            # Read the (empty) body to its end: httpcore closes a connection whose
            # response was not read through, and keep-alive is what makes 304s cheap.
            await response.aread()
            content = b""
        elif 200 <= status < 300:
            content = await self._read_body(url, response, headers)
        else:
            raise FetchError(f"unexpected HTTP status {status}", url=redact_url(str(url)), status=status)
        return FetchResult(
            url=redact_url(str(url)),
            status=status,
            content=content,
            headers=headers,
            # A 304 may omit the validators; the ones we sent still hold.
            etag=headers.get("etag") or (request.etag if status == 304 else None),
            last_modified=headers.get("last-modified") or (request.last_modified if status == 304 else None),
            content_type=content_type,
            charset=charset,
        )

    def _retry_after(self, status: int, value: str | None) -> datetime | None:
        if status not in _RETRY_AFTER_STATUSES:
            return None
        return retry_after(value, now=self._clock())

    async def _read_body(self, url: httpx.URL, response: httpx.Response, headers: dict[str, str]) -> bytes:
        too_large = FetchError(f"response larger than {self._max_bytes} bytes", url=redact_url(str(url)))
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > self._max_bytes:
            raise too_large
        decoder = _Decoder(headers.get("content-encoding", ""), url=redact_url(str(url)))
        received = 0
        content = bytearray()
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > self._max_bytes:
                raise too_large
            content += decoder.decode(chunk, room=self._max_bytes - len(content))
            if len(content) > self._max_bytes:
                raise too_large
        content += decoder.finish()
        if len(content) > self._max_bytes:
            raise too_large
        return bytes(content)

    # -- file: ------------------------------------------------------------------------

    async def _fetch_file(self, request: FetchRequest) -> FetchResult:
        return await asyncio.to_thread(
            read_file_url,
            request.url,
            listing=request.listing,
            last_modified=request.last_modified,
            max_bytes=self._max_bytes,
        )


async def _check_redirect(response: httpx.Response) -> None:
    """Raise ``FetchError`` for a redirect whose target we would not follow."""
    if response.status_code in _REDIRECT_STATUSES:
        _redirect_target(response.request.url, response)


def _redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(
            f"HTTP {response.status_code} redirect without a Location header",
            url=redact_url(str(url)),
            status=response.status_code,
        )

    def refused(why: str) -> FetchError:
        return FetchError(
            f"refused redirect to {redact_url(location)}: {why}",
            url=redact_url(str(url)),
            status=response.status_code,
        )

    try:
        target = url.join(location)
    except httpx.InvalidURL as exc:  # e.g. an international host name IDNA refuses
        raise refused(str(exc)) from exc
    if target.scheme not in ("http", "https"):
        raise refused("only http and https are followed")
    if problem := host_problem(_host(target)):
        raise refused(problem)
    return target


def _host(url: httpx.URL) -> str:
    """The host as sent (A-labels): ``url.host`` decodes A-labels, and raises on a bad one."""
    return url.raw_host.decode("ascii")


def _parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """``text/html; charset="UTF-8"`` -> ``("text/html", "utf-8")``."""
    if not value:
        return None, None
    media_type, _, parameters = value.partition(";")
    charset = None
    for parameter in parameters.split(";"):
        name, _, parameter_value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = parameter_value.strip().strip("\"'").strip().lower() or None
    return media_type.strip().lower() or None, charset


class _Decoder:
    """Undoes one Content-Encoding (gzip, deflate or identity), never producing more than asked."""

    def __init__(self, encoding: str, *, url: str) -> None:
        self._encoding = encoding.strip().lower()
        if self._encoding in ("gzip", "x-gzip"):
            self._inflate: zlib._Decompress | None = zlib.decompressobj(_GZIP_WBITS)
        elif self._encoding == "deflate":
            self._inflate = zlib.decompressobj(_ZLIB_WBITS)
        elif self._encoding in ("", "identity"):
            self._inflate = None
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}", url=url)
        self._started = False

    def decode(self, data: bytes, *, room: int) -> bytes:
        """Decoded bytes of ``data``: at most ``room + 1``, so going past the room shows."""
        if self._inflate is None:
            return data
        try:
            # max_length stops inflating; what would not fit stays in unconsumed_tail, unexpanded.
            out = self._inflate.decompress(data, room + 1)
        except zlib.error:
            if self._encoding != "deflate" or self._started:
                raise
            # Some servers send raw deflate without the zlib wrapper the standard asks for.
            self._inflate = zlib.decompressobj(_RAW_DEFLATE_WBITS)
            out = self._inflate.decompress(data, room + 1)
        self._started = True
        return out

    def finish(self) -> bytes:
        if self._inflate is None:
            return b""
        rest = self._inflate.flush()
        if self._started and not self._inflate.eof:
            raise zlib.error("compressed response ended early")
        return rest


# -- the guarded connection ---------------------------------------------------------------


class _BlockedAddress(Exception):
    """Raised in ``connect_tcp``; ``_fetch_errors`` turns it into ``BlockedAddressError``."""

    def __init__(self, host: str, address: IPAddress) -> None:
        self.host = host
        self.address = address
        self.literal = _literal(host) == address
        super().__init__(f"{host} resolves to {address}")


class _NameNotResolved(Exception):
    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"name not resolved: {host}")


class _ResolvingBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses internal addresses when guarding, connects to a checked one."""

    def __init__(self, *, guard: bool) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await _resolve(host, port, timeout)
        if self._guard:
            for address in addresses:
                if is_internal(address):
                    raise _BlockedAddress(host, address)
        failure: httpcore.ConnectError | None = None
        for index, address in enumerate(addresses):
            # Each address gets its share of the time left, so one that swallows packets
            # (a broken IPv6 route) leaves time for the next.
            share = None if deadline is None else (deadline - loop.time()) / (len(addresses) - index)
            if share is not None and share <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host}")
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=share,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # try the next address
                failure = exc
        assert failure is not None  # _resolve returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """The host's addresses in the resolver's order, without duplicates (an IP literal is itself)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host}") from exc
    except socket.gaierror as exc:
        raise _NameNotResolved(host) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _NameNotResolved(host)
    return addresses


class _Transport(httpx.AsyncBaseTransport):
    """An httpcore connection pool over ``_ResolvingBackend``, as an httpx transport.

    httpcore exceptions pass through untranslated: ``_fetch_errors`` is the one place
    that translates them.
    """

    def __init__(self, *, guard: bool, ssl_context: ssl.SSLContext, size: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=size,
            network_backend=_ResolvingBackend(guard=guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        target = httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        )
        sent = httpcore.Request(
            request.method,
            target,
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        received = await self._pool.handle_async_request(sent)
        assert isinstance(received.stream, AsyncIterable)
        return httpx.Response(
            received.status,
            headers=received.headers,
            stream=_BodyStream(received.stream),
            extensions=received.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _BodyStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


# -- the one place third-party exceptions become FetchError -------------------------------


@dataclass(slots=True)
class _Attempt:
    """Where a fetch is, for messages: the URL of the current hop and the limits in force."""

    url: str
    timeout: float
    total_timeout: float

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    @property
    def host(self) -> str:
        try:
            return urlsplit(self.url).hostname or self.safe_url
        except ValueError:
            return self.safe_url


_TRANSLATED: tuple[type[BaseException], ...] = (
    _NameNotResolved,
    # A host name the IDNA codec refuses (the resolver's or httpx's): ``check_url``
    # refuses those first, this is the safety net.
    UnicodeError,
    OSError,  # includes TimeoutError and ssl.SSLError
    zlib.error,
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    httpcore.ConnectionNotAvailable,
)


@contextlib.contextmanager
def _fetch_errors(attempt: _Attempt) -> Iterator[None]:
    """Translate what httpx, httpcore, zlib and the OS raise into one ``FetchError``."""
    try:
        yield
    except FetchError:
        raise
    except _BlockedAddress as exc:
        shown = f"{exc.host} is" if exc.literal else f"{exc.host} resolves to {exc.address},"
        raise BlockedAddressError(
            f"refused: {shown} an internal address;"
            " set allow_private_network = true for this source to allow it",
            url=attempt.safe_url,
        ) from exc
    except _TRANSLATED as exc:
        raise FetchError(_describe(exc, attempt), url=attempt.safe_url) from exc


def _describe(exc: BaseException, attempt: _Attempt) -> str:
    host, seconds = attempt.host, f"{attempt.timeout:g}s"
    timeouts: list[tuple[tuple[type[BaseException], ...], str]] = [
        ((httpcore.ConnectTimeout, httpx.ConnectTimeout), f"connecting to {host}"),
        ((httpcore.ReadTimeout, httpx.ReadTimeout), f"waiting for data from {host}"),
        ((httpcore.WriteTimeout, httpx.WriteTimeout), f"sending to {host}"),
        ((httpcore.PoolTimeout, httpx.PoolTimeout), f"waiting for a free connection to {host}"),
    ]
    for types, doing in timeouts:
        if isinstance(exc, types):
            return f"timed out after {seconds} {doing}"
    if isinstance(exc, TimeoutError):  # asyncio.timeout: the whole response took too long
        return f"timed out after {attempt.total_timeout:g}s fetching {attempt.safe_url}"
    if isinstance(exc, _NameNotResolved):
        return f"name not resolved: {exc.host}"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or attempt.safe_url}"
    if isinstance(exc, zlib.error):
        return f"could not decompress the response from {host}: {exc}"
    if isinstance(exc, UnicodeError):
        return f"invalid host name in {attempt.safe_url}: {exc}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | httpcore.UnsupportedProtocol):
        return f"invalid URL {attempt.safe_url}: {exc}"
    cause = _root_cause(exc)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate of {host} not accepted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS with {host} failed: {cause.reason or cause}"
    if isinstance(exc, httpcore.ConnectError | httpx.ConnectError):
        return f"cannot connect to {host}: {_os_message(cause)}"
    if isinstance(exc, httpcore.ReadError | httpcore.WriteError | httpx.ReadError | httpx.WriteError):
        return f"connection to {host} lost: {_os_message(cause)}"
    if isinstance(exc, httpcore.RemoteProtocolError | httpx.RemoteProtocolError):
        return f"{host} broke the HTTP protocol: {exc}"
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot read {exc.filename}: {_os_message(exc)}"
    return f"request to {host} failed: {_os_message(exc)}"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: httpcore wraps OS errors (as an argument, a cause or a context)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        argument = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        inner = exc.__cause__ or argument or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__

"""Hand built messages to a mail server (SMTP, through a pool of aiosmtplib
connections) or to a Maildir on disk.

The only module that imports aiosmtplib. Its exceptions are translated here, once,
into one of two answers:

- a ``SendOutcome`` for the message: accepted; refused for now (a 4xx reply, a
  lost connection, a timeout: try again later); or refused for good (a 5xx reply
  to this message or recipient);
- a ``TransportError`` when the transport itself cannot work (the server refuses
  our credentials or the session, TLS is required but unavailable or untrusted, the
  Maildir cannot be written). Retrying message by message would not help, and
  counting it against the recipients would bounce good addresses, so the caller
  stops the batch; the message was not sent.

Transports do not read the wall clock by themselves: the rate limit's clock and
sleep, and the Maildir's clock for file names, can be injected.

The envelope and the message go through aiosmtplib's command API
(``SMTP.execute_command``, ``SMTPProtocol.write`` and ``read_response``) rather than
``SMTP.mail``, ``rcpt`` and ``data``: those parse each address again with
``email.utils`` and run every message through two regular expressions (line endings,
dot-stuffing), about 0.5 ms for a 90 KiB digest, thousands of times per issue. A
``message.BuiltMessage`` already has CRLF line endings and no line starting with a
dot, so it is sent as it is (other bytes are still rewritten, ``data_payload``).
Addresses are checked once, below. One whose local part is UTF-8 goes out with
SMTPUTF8 (RFC 6531) where the server offers it; where it does not, that message is
refused for good without a word to the server (not a bounce: the mailbox may be fine).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

import aiosmtplib

from syndication.errors import TransportError
from syndication.mail.message import BuiltMessage
from syndication.types import SendOutcome

logger = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]

# What may appear between < and > in MAIL FROM / RCPT TO: printable ASCII, no
# spaces or brackets, and UTF-8 in the local part (sent only with SMTPUTF8, RFC 6531);
# anything else (a CR or LF above all) never reaches the server.
_ENVELOPE_ADDRESS = re.compile(r"(?:[!-;=?-~]|[^\x00-\x7f])+@[!-;=?-~]+")
# Any lone CR or LF, for the rare message that does not come from ``message.build``.
_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_LINE_START_DOT = re.compile(rb"(?m)^\.")


__all__ = [
    "MaildirTransport",
    "Pacer",
    "SmtpTransport",
    "Transport",
    "TransportError",
    "data_payload",
]  # TransportError: from errors


class Transport(Protocol):
    """Where built messages go. ``send`` returns an outcome for every message and
    raises ``TransportError`` only when nothing can be sent at all."""

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome: ...

    async def aclose(self) -> None: ...


class _ClosedOnExit:
    """``async with transport:`` closes it at the end (both transports)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Pacer:
    """Spaces the starts of sends ``1 / rate`` seconds apart (a token bucket that
    holds one token): never faster than the rate over any window, no busy waiting.

    Pure: ``reserve`` takes the time and says how long to wait.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"the rate must be positive: {rate}")
        self.interval = 1.0 / rate
        self._next: float | None = None

    def reserve(self, now: float) -> float:
        """Claim the next start; the seconds to wait from ``now`` before starting (>= 0)."""
        start = now if self._next is None or self._next <= now else self._next
        self._next = start + self.interval
        return start - now


@dataclass(eq=False)
class _Slot:
    """One place in the pool: a connection, open or not yet (re)opened."""

    client: aiosmtplib.SMTP | None = None
    sent: int = 0


class SmtpTransport(_ClosedOnExit):
    """Sends through a pool of persistent SMTP connections.

    At most ``pool_size`` messages are in flight at once, one per connection; a
    connection stays open for the next message, is reset (RSET) after a refused
    one and reopened after a failure. ``rate`` (messages per second, over the
    whole pool) spaces the sends. ``security``: ``"none"`` (plain; for a relay on
    localhost), ``"starttls"`` (upgrade required: no plain fallback) or ``"tls"``
    (implicit TLS, port 465). Certificates are verified against the system CAs, or
    ``tls_context`` when given.

    Call ``aclose`` (or use ``async with``) when done: it waits for sends in flight,
    then says QUIT on every connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str | None = None,
        password: str | None = None,
        pool_size: int = 4,
        rate: float | None = None,
        timeout: float = 30,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"unknown SMTP security {security!r}: none, starttls or tls")
        if pool_size < 1:
            raise ValueError(f"the pool needs at least one connection: {pool_size}")
        if (username is None) != (password is None):
            raise ValueError("give both an SMTP username and a password, or neither")
        self.host = host
        self.port = port
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._tls_context = tls_context
        self._pacer = None if rate is None else Pacer(rate)
        self._clock = clock
        self._sleep = sleep
        self._slots = [_Slot() for _ in range(pool_size)]
        self._idle: asyncio.LifoQueue[_Slot] = asyncio.LifoQueue()
        for slot in self._slots:
            # Last in, first out: a light load keeps reusing one warm connection.
            self._idle.put_nowait(slot)
        self._closed = False
        self.connections_opened = 0
        """How many connections this transport has opened (for logs and tests)."""

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"SmtpTransport({self.host}:{self.port}, security={self.security!r}{user})"

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        """Send one message to one recipient.

        Raises:
            TransportError: the server refuses our session or credentials, or TLS
                fails; or the transport is closed.
        """
        if self._closed:
            raise TransportError(f"{self!r} is closed")
        for role, address in (("sender", sender), ("recipient", recipient)):
            if not _ENVELOPE_ADDRESS.fullmatch(address) or not address.isprintable():
                # Refused here, never by the server: not a sign that a mailbox is gone.
                error = f"unusable {role} address: {address!r}"
                return SendOutcome(ok=False, permanent=True, bounce=False, error=error)
        slot = await self._idle.get()
        try:
            if self._pacer is not None:
                delay = self._pacer.reserve(self._clock())
                if delay > 0:
                    await self._sleep(delay)
            return await self._transaction(slot, sender, recipient, data)
        except BaseException:
            # Cancelled or failed half-way: the session's state is unknown.
            self._drop(slot)
            raise
        finally:
            self._idle.put_nowait(slot)

    async def aclose(self) -> None:
        """Wait for sends in flight, then QUIT every open connection."""
        if self._closed:
            return
        self._closed = True
        for _ in self._slots:
            slot = await self._idle.get()
            client = slot.client
            if client is not None and client.is_connected:
                transport = client.transport
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError) as exc:
                    logger.debug("QUIT to %s:%d failed: %s", self.host, self.port, exc)
                # After QUIT there is nothing left to say: do not wait for a TLS
                # close_notify, which would outlive an event loop that ends now.
                _abort(transport)
            self._drop(slot)

    async def _transaction(self, slot: _Slot, sender: str, recipient: str, data: bytes) -> SendOutcome:
        # A pooled connection may have been closed by the server while it sat idle
        # (servers drop idle clients after a few minutes). If the first command on
        # a reused connection finds it gone, nothing of this message was sent yet:
        # one fresh connection is tried.
        may_retry = slot.client is not None and slot.client.is_connected
        phase = "connect"
        try:
            while True:
                client = await self._connected(slot)
                utf8 = not (sender.isascii() and recipient.isascii())
                if utf8 and not client.supports_extension("smtputf8"):
                    # Nothing was said about this message: the connection takes the next.
                    return SendOutcome(
                        ok=False,
                        permanent=True,
                        bounce=False,
                        error=f"the address needs SMTPUTF8 (RFC 6531), which SMTP server "
                        f"{self.host}:{self.port} does not offer",
                    )
                phase = "MAIL FROM"
                try:
                    await _mail_from(client, sender, _mail_options(client, data, utf8=utf8))
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPSenderRefused) as exc:
                    stale = not isinstance(exc, aiosmtplib.SMTPSenderRefused) or exc.code == 421
                    if not (may_retry and stale):
                        raise
                    logger.debug("pooled connection to %s:%d was closed; reconnecting", self.host, self.port)
                    self._drop(slot)
                    may_retry = False
                    phase = "connect"
                    continue
                break
            phase = "RCPT TO"
            await _rcpt_to(client, recipient)
            phase = "DATA"
            await _data(client, data)
        except (aiosmtplib.SMTPException, OSError) as exc:
            outcome = self._translate(exc, phase)
            await self._reset(slot)
            logger.debug("%s to %s: %s", phase, recipient, outcome.error)
            return outcome
        slot.sent += 1
        return SendOutcome(ok=True)

    async def _connected(self, slot: _Slot) -> aiosmtplib.SMTP:
        if slot.client is not None and slot.client.is_connected:
            return slot.client
        self._drop(slot)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self._password,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self._tls_context,
        )
        await client.connect()
        slot.client = client
        if client.is_ehlo_or_helo_needed:
            # Greet now, as ``SMTP.mail`` would: EHLO, or HELO for a server without ESMTP.
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
        slot.sent = 0
        self.connections_opened += 1
        logger.debug("connected to %s:%d (%s)", self.host, self.port, self.security)
        return client

    async def _reset(self, slot: _Slot) -> None:
        """After a refused message: RSET so the connection can take the next one,
        or drop it when that fails too."""
        client = slot.client
        if client is None or not client.is_connected:
            self._drop(slot)
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop(slot)

    def _drop(self, slot: _Slot) -> None:
        """Forget the slot's connection, closing it at once: it is broken or unwanted."""
        client, slot.client = slot.client, None
        if client is None:
            return
        transport = client.transport
        client.close()
        _abort(transport)

    def _translate(self, exc: BaseException, phase: str) -> SendOutcome:
        """aiosmtplib's (and the socket's) exceptions as an outcome for this message.

        Raises:
            TransportError: the failure is the session's, not the message's.
        """
        where = f"{self.host}:{self.port}"
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            reply = f"{exc.code} {exc.message}".strip()
            if exc.code == 535:
                raise TransportError(
                    f"SMTP server {where} refused the credentials of {self.username!r}: {reply}"
                ) from exc
            if exc.code == 530:
                # RFC 4954 (and RFC 3207's "Must issue a STARTTLS command first").
                raise TransportError(f"SMTP server {where} requires authentication or TLS: {reply}") from exc
            if phase == "connect" and 500 <= exc.code < 600:
                # A 5xx greeting, EHLO or STARTTLS: the server will not talk to us at all.
                raise TransportError(f"SMTP server {where} refused the session: {reply}") from exc
            permanent = 500 <= exc.code < 600
            return SendOutcome(ok=False, permanent=permanent, error=f"{phase}: {reply}")
        if _is_certificate_error(exc):
            raise TransportError(f"TLS certificate of SMTP server {where} not trusted: {exc}") from exc
        if isinstance(exc, OSError):
            # Refused or lost connections and timeouts (aiosmtplib's are OSErrors too).
            return SendOutcome(ok=False, error=f"{phase} {where}: {exc}")
        if phase == "connect":
            # STARTTLS or AUTH not offered, and the like: a configuration mismatch.
            raise TransportError(f"SMTP server {where}: {exc}") from exc
        return SendOutcome(ok=False, error=f"{phase} {where}: {exc}")


def _abort(transport: asyncio.BaseTransport | None) -> None:
    """Close now, without waiting for buffers or a TLS shutdown to drain."""
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()


def _mail_options(client: aiosmtplib.SMTP, data: bytes, *, utf8: bool) -> list[bytes]:
    """RFC 1870 SIZE, so a server can refuse an oversized message before DATA; and for a
    UTF-8 address, SMTPUTF8 (RFC 6531) with BODY=8BITMIME when offered (the header is 8-bit)."""
    options = [b"SIZE=%d" % len(data)] if client.supports_extension("size") else []
    if utf8:
        options.append(b"SMTPUTF8")
        if client.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
    return options


async def _mail_from(client: aiosmtplib.SMTP, sender: str, options: list[bytes]) -> None:
    """MAIL FROM for an address ``_ENVELOPE_ADDRESS`` accepted (nothing to quote; UTF-8
    only with the SMTPUTF8 option).

    Raises:
        aiosmtplib.SMTPSenderRefused: any reply but 250 (as ``SMTP.mail``).
    """
    reply = await client.execute_command(b"MAIL", b"FROM:<%s>" % sender.encode("utf-8"), *options)
    if reply.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt_to(client: aiosmtplib.SMTP, recipient: str) -> None:
    """RCPT TO for an address ``_ENVELOPE_ADDRESS`` accepted.

    Raises:
        aiosmtplib.SMTPRecipientRefused: any reply but 250 or 251 (as ``SMTP.rcpt``).
    """
    reply = await client.execute_command(b"RCPT", b"TO:<%s>" % recipient.encode("utf-8"))
    if reply.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


async def _data(client: aiosmtplib.SMTP, message: bytes) -> None:
    """DATA, then the message as ``data_payload`` makes it, then the server's verdict.

    Raises:
        aiosmtplib.SMTPDataError: DATA not answered with 354, or the message not
            accepted with 250 (as ``SMTP.data``).
        aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError: the
            connection was lost or the server did not answer; the client is closed,
            since a late reply could be taken for the answer to the next command.
    """
    payload = data_payload(message)
    reply = await client.execute_command(b"DATA")
    if reply.code != aiosmtplib.SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        # Nothing is awaited between the write and read_response, which arms the
        # protocol for the reply: the reply cannot arrive unclaimed.
        protocol.write(payload)
        reply = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise
    if reply.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)


def data_payload(message: bytes) -> bytes:
    """``message`` as it goes after DATA (RFC 5321 4.5.2): CRLF line endings, a final
    CRLF, a second "." at the start of every line that starts with one, then the
    line with a single "." that ends the message.

    A ``BuiltMessage`` is all that already (``message.build`` makes sure), so only
    the end is added; any other bytes are rewritten as aiosmtplib would.
    """
    if isinstance(message, BuiltMessage):
        return message + b".\r\n"
    message = _LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return _LINE_START_DOT.sub(b"..", message) + b".\r\n"


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# --- Maildir -----------------------------------------------------------------------

_deliveries = itertools.count()
"""Per process, across instances: the Q part of Maildir file names."""


class MaildirTransport(_ClosedOnExit):
    """Writes each message into a standard Maildir (``tmp``, ``new``, ``cur``): the
    exact bytes, one file per message, which mail clients and ``.eml`` viewers open.

    Delivery follows the Maildir protocol: write a uniquely named file in ``tmp``,
    flush it to disk, then rename it into ``new``, so a reader never sees half a
    message. Names are ``<seconds>.M<microseconds>P<pid>Q<count>.<host>``.
    The envelope is not recorded: the message's own To header names the recipient.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
    ) -> None:
        self.path = path
        self.fsync = fsync
        self._clock = clock
        host = hostname if hostname is not None else socket.gethostname()
        # The Maildir convention for the two characters a host name must not bring in.
        self._host = host.replace("/", r"\057").replace(":", r"\072")
        self._ready = False

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.path)!r})"

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        """Deliver into ``new``.

        Raises:
            TransportError: the Maildir cannot be created or written.
        """
        await asyncio.to_thread(self.deliver, data)
        return SendOutcome(ok=True)

    async def aclose(self) -> None:
        return None

    def deliver(self, data: bytes) -> Path:
        """Synchronous delivery; the path of the new file.

        Raises:
            TransportError: the Maildir cannot be created or written.
        """
        try:
            if not self._ready:
                for folder in ("tmp", "new", "cur"):
                    (self.path / folder).mkdir(parents=True, exist_ok=True)
                self._ready = True
            while True:
                name = self._unique_name()
                temporary = self.path / "tmp" / name
                try:
                    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                break
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    if self.fsync:
                        os.fsync(file.fileno())
                final = self.path / "new" / name
                os.rename(temporary, final)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransportError(f"cannot deliver into the Maildir {self.path}: {exc}") from exc
        return final

    def _unique_name(self) -> str:
        now = self._clock()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(_deliveries)}.{self._host}"

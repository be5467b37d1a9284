"""A real SMTP server (aiosmtpd) on a loopback port, for tests that send mail.

It runs aiosmtpd's threaded ``Controller`` on an ephemeral port of 127.0.0.1 and
keeps every message it accepts: the envelope and the bytes exactly as received
(after SMTP dot-unstuffing). Knobs can be turned while it runs; everything the
tests read is guarded by a lock.

Usage::

    from tests.smtpserver import SmtpServer

    with SmtpServer() as srv:
        srv.temp_fail.add("busy@example.vn")    # 451 to RCPT TO
        srv.perm_fail.add("gone@example.vn")    # 550 to RCPT TO
        ... send to srv.host, srv.port ...
        srv.messages[0].data                    # the message bytes
        srv.connections                         # connections clients opened

As a pytest fixture::

    @pytest.fixture
    def smtp_server() -> Iterator[SmtpServer]:
        with SmtpServer() as srv:
            yield srv

API:

``SmtpServer(*, auth=None, starttls=None, require_starttls=False, implicit_tls=None, smtputf8=False)``
    ``auth=("user", "password")`` offers AUTH PLAIN and LOGIN, also over the plain
    connection (it is loopback), and answers MAIL without it with 530.
    ``starttls`` is a server-side ``ssl.SSLContext`` to offer STARTTLS with;
    ``require_starttls`` refuses anything but EHLO, STARTTLS and QUIT before it.
    ``implicit_tls`` is a server-side context that wraps the whole connection (port 465 style).
    ``smtputf8`` offers SMTPUTF8 (RFC 6531): UTF-8 addresses in MAIL FROM and RCPT TO
    (not offered by default, as most servers do not).
    ``start()``/``stop()``, or use it as a context manager.
``srv.host``, ``srv.port``
    ``"127.0.0.1"`` and the port it listens on.
``srv.messages -> list[Received]``
    A copy of what was accepted, oldest first: ``mail_from``, ``rcpt_tos``,
    ``data`` (bytes), ``peer`` (the client's address and port: one per connection),
    ``login`` (the AUTH user, or None), ``mail_options`` (e.g. ``("SMTPUTF8",)``).
``srv.connections``
    Connections opened by clients since the server started (or since ``reset()``).
``srv.temp_fail``, ``srv.perm_fail``
    Sets of recipient addresses to answer RCPT TO with 451 or 550.
``srv.data_reply``
    When set (e.g. ``"554 5.6.0 Content rejected"``), the reply to every message
    after DATA instead of accepting it.
``srv.drop_connections()``
    Close every client connection from the server side, as an idle timeout would.
``srv.reset()``
    Forget messages and connection counts.

``self_signed_certificate(folder) -> (cert_path, key_path) | None``
    A certificate for ``localhost`` and ``127.0.0.1`` made with the ``openssl``
    command, or None when it is not installed. ``server_tls_context(cert, key)`` and
    ``client_tls_context(cert)`` make the contexts for both sides.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple[str, int]
    login: str | None
    mail_options: tuple[str, ...] = ()


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self._server.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self._server.temp_fail:
            return "451 4.3.0 Mailbox busy, try again later"
        if address in self._server.perm_fail:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self._server.data_reply is not None:
            return self._server.data_reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self._server._record(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content,
                peer=tuple(session.peer[:2]),
                login=login,
                mail_options=tuple(envelope.mail_options),
            )
        )
        return "250 2.0.0 OK: queued"


class _Controller(Controller):
    """aiosmtpd's Controller, listening on a port the system picks."""

    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, hostname=HOST, port=0, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self._owner._opened(smtp)
        return smtp

    def _create_server(self) -> Any:
        # The documented place to bind (it must use _factory_invoker); port 0 lets
        # the system choose, and the trigger connection then needs the real port.
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class SmtpServer:
    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: ssl.SSLContext | None = None,
        smtputf8: bool = False,
    ) -> None:
        self.auth = auth
        self.temp_fail: set[str] = set()
        self.perm_fail: set[str] = set()
        self.data_reply: str | None = None
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._sessions: list[SMTP] = []
        self._connections = 0
        kwargs: dict[str, Any] = {
            "server_hostname": "smtp.test",
            "ident": "smtpserver (tests)",
            "ready_timeout": 10.0,
        }
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = False
        if starttls is not None:
            kwargs["tls_context"] = starttls
            kwargs["require_starttls"] = require_starttls
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls
        # aiosmtpd's Controller offers SMTPUTF8 unless told not to.
        kwargs["enable_SMTPUTF8"] = smtputf8
        self._controller = _Controller(self, _Handler(self), **kwargs)
        self.host = HOST
        self.port = 0

    def start(self) -> None:
        self._controller.start()
        self.port = self._controller.port
        self.reset()  # forget the controller's own readiness probe

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._connections = 0

    def drop_connections(self) -> None:
        with self._lock:
            sessions = list(self._sessions)
        done = threading.Event()

        def close_all() -> None:
            for smtp in sessions:
                if smtp.transport is not None:
                    smtp.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.auth is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _opened(self, smtp: SMTP) -> None:
        with self._lock:
            self._connections += 1
            self._sessions.append(smtp)

    def _record(self, received: Received) -> None:
        with self._lock:
            self._messages.append(received)


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A certificate and key for localhost / 127.0.0.1, valid two days; None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_tls_context(cert: Path) -> ssl.SSLContext:
    """Trusts exactly this certificate."""
    return ssl.create_default_context(cafile=str(cert))

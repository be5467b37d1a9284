"""Sending: the SMTP pool against a real aiosmtpd server on loopback, the pacer with
a fake clock, and the Maildir transport on disk."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections import Counter
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.mail.message import BuiltMessage, OutgoingMessage, build, message_id
from syndication.mail.send import (
    MaildirTransport,
    Pacer,
    SmtpTransport,
    Transport,
    TransportError,
    data_payload,
)
from syndication.types import SendOutcome
from tests.smtpserver import (
    SmtpServer,
    client_tls_context,
    self_signed_certificate,
    server_tls_context,
)

SENDER = "bounces@portal.example.vn"
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def digest_for(address: str, name: str = "Chi bộ Văn phòng", issue: int = 7) -> bytes:
    return build(
        OutgoingMessage(
            from_address="ban-tin@portal.example.vn",
            from_name="Ban Tuyên giáo Đảng ủy Khối",
            to_address=address,
            to_name=name,
            subject="Bản tin hằng ngày — Thứ Sáu, 27/11/2026",
            message_id=message_id(issue, address, "portal.example.vn"),
            date=datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
            list_id="Bản tin hằng ngày <daily.portal.example.vn>",
            unsubscribe_url="https://portal.example.vn/huy-dang-ky/8Vh2kC1qfJ0xLr4WmT9sQe",
            unsubscribe_mailto="mailto:huy-dang-ky@portal.example.vn?subject=8Vh2kC1qfJ0xLr4WmT9sQe",
            html=(
                "<p>Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12</p>\n"
                ".\n"  # a line that is a lone dot: SMTP must stuff and unstuff it
                '<p><a href="https://portal.example.vn/bai-viet/1">Xem tiếp</a></p>\n' + "<p>ư</p>" * 400
            ),
            text="Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12\n.\n..hai chấm\nhttps://portal.example.vn/bai-viet/1\n",
        )
    )


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def transport(server: SmtpServer, **options: Any) -> SmtpTransport:
    settings: dict[str, Any] = {"security": "none", "local_hostname": "client.test", "timeout": 5}
    settings.update(options)
    return SmtpTransport(server.host, server.port, **settings)


async def send_all(t: SmtpTransport, addresses: list[str], *, concurrently: bool = True) -> list[SendOutcome]:
    async def one(address: str) -> SendOutcome:
        return await t.send(sender=SENDER, recipient=address, data=digest_for(address))

    try:
        if concurrently:
            return list(await asyncio.gather(*(one(a) for a in addresses)))
        return [await one(a) for a in addresses]
    finally:
        await t.aclose()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---------------------------------------------------------------- delivery


def test_messages_arrive_byte_for_byte(smtp_server: SmtpServer) -> None:
    addresses = ["chibo.vanphong@example.vn", "dangbo.khoi@example.vn", "bithu@example.vn"]
    outcomes = run(send_all(transport(smtp_server), addresses))
    assert outcomes == [SendOutcome(ok=True)] * 3
    received = {m.rcpt_tos: m for m in smtp_server.messages}
    assert set(received) == {(a,) for a in addresses}
    for address in addresses:
        message = received[(address,)]
        assert message.mail_from == SENDER
        assert message.data == digest_for(address)
        parsed = parse(message.data)
        assert str(parsed["Subject"]) == "Bản tin hằng ngày — Thứ Sáu, 27/11/2026"
        assert parsed["To"].addresses[0].display_name == "Chi bộ Văn phòng"
        assert parsed["To"].addresses[0].addr_spec == address
        assert parsed["Message-ID"] == message_id(7, address, "portal.example.vn")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        plain, html = parsed.iter_parts()
        assert plain.get_content().startswith("Hội nghị Ban Chấp hành Đảng bộ Khối lần thứ 12\r\n.\r\n..hai")
        assert '<a href="https://portal.example.vn/bai-viet/1">Xem tiếp</a>' in html.get_content()


def test_bare_line_endings_arrive_as_crlf(smtp_server: SmtpServer) -> None:
    # Built messages have CRLF only; anything else handed to the transport is still
    # sent as SMTP requires, as aiosmtplib's own DATA would.
    data = b"Subject: x\n\n.one\rtwo\r\n..three\n.\nfour"

    async def scenario() -> SendOutcome:
        async with transport(smtp_server) as t:
            return await t.send(sender=SENDER, recipient="a@example.vn", data=data)

    assert run(scenario()) == SendOutcome(ok=True)
    (message,) = smtp_server.messages
    assert message.data == b"Subject: x\r\n\r\n.one\r\ntwo\r\n..three\r\n.\r\nfour\r\n"


def reference_payload(message: bytes) -> bytes:
    """RFC 5321 4.5.2 written plainly: CRLF lines, a final CRLF, dots doubled, "." CRLF."""
    message = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", message) + b".\r\n"


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b" "]), max_size=30).map(b"".join))
def test_data_payload_is_smtp_transparency(message: bytes) -> None:
    assert data_payload(message) == reference_payload(message)


def test_a_built_message_is_sent_as_it_is() -> None:
    data = digest_for("a@example.vn")
    assert isinstance(data, BuiltMessage)
    # Nothing to rewrite: build leaves no bare CR or LF and no line starting with ".".
    assert data_payload(data) == data + b".\r\n" == reference_payload(bytes(data))


def test_data_payload_of_crlf_text_only_doubles_dots() -> None:
    data = b"Subject: x\r\n\r\n.\r\n..two\r\nthree.\r\n" * 3
    assert data_payload(data) == data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    assert data_payload(data) == reference_payload(data)


def test_a_server_without_esmtp_is_greeted_with_helo() -> None:
    # An RFC 821 server: EHLO is not a command it knows. aiosmtpd always speaks
    # ESMTP, so this one is a few lines of asyncio.
    seen: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 old.example.vn\r\n")
        while line := await reader.readline():
            seen.append(line)
            command = line[:4].upper()
            if command == b"EHLO":
                writer.write(b"502 5.5.2 Command not recognised\r\n")
            elif command == b"DATA":
                writer.write(b"354 Go ahead\r\n")
                while (await reader.readline()) != b".\r\n":
                    pass
                writer.write(b"250 2.0.0 Queued\r\n")
            elif command == b"QUIT":
                writer.write(b"221 Bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
        writer.close()

    async def scenario() -> SendOutcome:
        server = await asyncio.start_server(session, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with SmtpTransport("127.0.0.1", port, security="none", timeout=5) as t:
                return await t.send(sender=SENDER, recipient="a@example.vn", data=b"Subject: x\r\n\r\nx\r\n")
        finally:
            server.close()

    assert run(scenario()) == SendOutcome(ok=True)
    commands = [line.split()[0].upper() for line in seen]
    assert commands == [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]
    # No SIZE without ESMTP.
    assert seen[2] == f"MAIL FROM:<{SENDER}>\r\n".encode()


def test_pool_reuses_its_connections(smtp_server: SmtpServer) -> None:
    t = transport(smtp_server, pool_size=3)
    addresses = [f"user{i}@example.vn" for i in range(30)]
    assert all(o.ok for o in run(send_all(t, addresses)))
    assert len(smtp_server.messages) == 30
    assert smtp_server.connections == 3
    assert t.connections_opened == 3
    per_connection = Counter(m.peer for m in smtp_server.messages)
    assert len(per_connection) == 3
    assert sum(per_connection.values()) == 30


def test_one_at_a_time_uses_one_connection(smtp_server: SmtpServer) -> None:
    addresses = [f"user{i}@example.vn" for i in range(5)]
    assert all(
        o.ok for o in run(send_all(transport(smtp_server, pool_size=4), addresses, concurrently=False))
    )
    assert smtp_server.connections == 1


def test_reconnects_when_the_server_dropped_an_idle_connection(smtp_server: SmtpServer) -> None:
    async def scenario() -> list[SendOutcome]:
        t = transport(smtp_server, pool_size=1)
        first = await t.send(sender=SENDER, recipient="a@example.vn", data=digest_for("a@example.vn"))
        smtp_server.drop_connections()
        second = await t.send(sender=SENDER, recipient="b@example.vn", data=digest_for("b@example.vn"))
        await t.aclose()
        return [first, second]

    assert run(scenario()) == [SendOutcome(ok=True)] * 2
    assert smtp_server.connections == 2
    assert [m.rcpt_tos for m in smtp_server.messages] == [("a@example.vn",), ("b@example.vn",)]


# ---------------------------------------------------------------- refusals and failures


def test_temporary_and_permanent_refusals(smtp_server: SmtpServer) -> None:
    smtp_server.temp_fail.add("busy@example.vn")
    smtp_server.perm_fail.add("gone@example.vn")
    outcomes = run(
        send_all(
            transport(smtp_server, pool_size=1),
            ["busy@example.vn", "gone@example.vn", "ok@example.vn"],
            concurrently=False,
        )
    )
    busy, gone, ok = outcomes
    assert not busy.ok
    assert not busy.permanent
    assert busy.error is not None
    assert "451" in busy.error
    assert not gone.ok
    assert gone.permanent
    assert gone.error is not None
    assert "550" in gone.error
    assert "RCPT TO" in gone.error
    # The connection was reset and reused for the next message.
    assert ok == SendOutcome(ok=True)
    assert smtp_server.connections == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ok@example.vn",)]


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("554 5.6.0 Content rejected", True), ("452 4.3.1 Insufficient system storage", False)],
)
def test_refusal_after_data(smtp_server: SmtpServer, reply: str, permanent: bool) -> None:
    smtp_server.data_reply = reply
    (outcome,) = run(send_all(transport(smtp_server), ["a@example.vn"]))
    assert outcome.ok is False
    assert outcome.permanent is permanent
    assert outcome.error is not None
    assert reply in outcome.error


def test_server_down_is_temporary() -> None:
    t = SmtpTransport("127.0.0.1", free_port(), security="none", timeout=5, local_hostname="client.test")
    outcome = run(t.send(sender=SENDER, recipient="a@example.vn", data=b"Subject: x\r\n\r\nx\r\n"))
    assert outcome.ok is False
    assert outcome.permanent is False
    assert outcome.error is not None
    assert "connect" in outcome.error


def test_silent_server_times_out_as_temporary() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections (in the backlog) but never says a word
        port = listener.getsockname()[1]
        t = SmtpTransport("127.0.0.1", port, security="none", timeout=0.3, local_hostname="client.test")
        outcome = run(t.send(sender=SENDER, recipient="a@example.vn", data=b"Subject: x\r\n\r\nx\r\n"))
    assert outcome.ok is False
    assert outcome.permanent is False


@pytest.mark.parametrize(
    "address",
    [
        "a@example.vn\r\nRCPT TO:<x@evil.example>",
        "<a@example.vn>",
        "no-at-sign",
        "",
        "người\u2028@example.vn",
    ],
)
def test_unusable_addresses_never_reach_the_server(smtp_server: SmtpServer, address: str) -> None:
    t = transport(smtp_server)
    outcome = run(t.send(sender=SENDER, recipient=address, data=b"x"))
    assert outcome.ok is False
    assert outcome.permanent is True
    assert outcome.bounce is False  # refused here: it says nothing about a mailbox
    assert smtp_server.connections == 0


def test_a_utf8_address_is_refused_without_a_word_where_smtputf8_is_not_offered(
    smtp_server: SmtpServer,
) -> None:
    async def scenario() -> tuple[SendOutcome, SendOutcome]:
        async with transport(smtp_server) as t:
            utf8 = await t.send(
                sender=SENDER, recipient="nguyễn@example.vn", data=digest_for("nguyễn@example.vn")
            )
            plain = await t.send(sender=SENDER, recipient="a@example.vn", data=digest_for("a@example.vn"))
            return utf8, plain

    utf8, plain = run(scenario())
    assert (utf8.ok, utf8.permanent, utf8.bounce) == (False, True, False)  # the mailbox may be fine
    assert utf8.error is not None
    assert "SMTPUTF8" in utf8.error
    assert plain == SendOutcome(ok=True)
    assert [m.rcpt_tos for m in smtp_server.messages] == [("a@example.vn",)]
    assert smtp_server.connections == 1  # nothing was said that spoilt the connection


def test_a_utf8_address_goes_out_with_smtputf8_where_offered() -> None:
    with SmtpServer(smtputf8=True) as server:
        outcome = run(send_all(transport(server), ["nguyễn@example.vn"]))
        (received,) = server.messages
    assert outcome == [SendOutcome(ok=True)]
    assert received.rcpt_tos == ("nguyễn@example.vn",)
    assert "SMTPUTF8" in received.mail_options
    assert received.data == digest_for("nguyễn@example.vn")


def test_closed_transport_refuses_to_send(smtp_server: SmtpServer) -> None:
    async def scenario() -> None:
        t = transport(smtp_server)
        async with t:
            assert (await t.send(sender=SENDER, recipient="a@example.vn", data=digest_for("a@example.vn"))).ok
        with pytest.raises(TransportError, match="closed"):
            await t.send(sender=SENDER, recipient="a@example.vn", data=b"x")

    run(scenario())


@pytest.mark.parametrize(
    "options",
    [
        {"security": "ssl"},
        {"security": "none", "pool_size": 0},
        {"security": "none", "username": "u"},
        {"security": "none", "rate": 0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmtpTransport("127.0.0.1", 25, **options)


# ---------------------------------------------------------------- authentication


def test_authentication() -> None:
    with SmtpServer(auth=("bantin", "mật-khẩu đúng")) as srv:
        t = transport(srv, username="bantin", password="mật-khẩu đúng")
        assert run(send_all(t, ["a@example.vn", "b@example.vn"])) == [SendOutcome(ok=True)] * 2
        assert [m.login for m in srv.messages] == ["bantin", "bantin"]


def test_wrong_password_stops_with_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SmtpServer(auth=("bantin", "right")) as srv:
        t = transport(srv, username="bantin", password="s3cret-wrong")
        with pytest.raises(TransportError, match="refused the credentials of 'bantin'") as raised:
            run(send_all(t, ["a@example.vn"]))
        assert srv.messages == []
    assert "535" in str(raised.value)
    assert "s3cret-wrong" not in str(raised.value)
    assert "s3cret-wrong" not in caplog.text
    assert "s3cret-wrong" not in repr(t)


def test_missing_credentials_stop_with_a_clear_error() -> None:
    with SmtpServer(auth=("bantin", "right")) as srv, pytest.raises(TransportError, match="530"):
        run(send_all(transport(srv), ["a@example.vn"]))


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("TLS tests need the openssl command to make a certificate")
    return made


def test_starttls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with SmtpServer(starttls=server_tls_context(cert, key), require_starttls=True, auth=("u", "p")) as srv:
        t = transport(
            srv, security="starttls", tls_context=client_tls_context(cert), username="u", password="p"
        )
        assert run(send_all(t, ["a@example.vn", "b@example.vn"])) == [SendOutcome(ok=True)] * 2
        received = {m.rcpt_tos[0]: m.data for m in srv.messages}
        assert received == {a: digest_for(a) for a in ("a@example.vn", "b@example.vn")}
        assert {m.login for m in srv.messages} == {"u"}


def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with SmtpServer(implicit_tls=server_tls_context(cert, key)) as srv:
        t = transport(srv, security="tls", tls_context=client_tls_context(cert))
        assert run(send_all(t, ["a@example.vn"])) == [SendOutcome(ok=True)]
        assert srv.messages[0].data == digest_for("a@example.vn")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_untrusted_certificate_stops_with_a_clear_error(
    certificate: tuple[Path, Path], security: str
) -> None:
    cert, key = certificate
    context = server_tls_context(cert, key)
    server = SmtpServer(starttls=context) if security == "starttls" else SmtpServer(implicit_tls=context)
    with server as srv, pytest.raises(TransportError, match="certificate"):
        # The system's CAs do not know our self-signed certificate.
        run(send_all(transport(srv, security=security), ["a@example.vn"]))


def test_plain_connection_to_a_server_that_requires_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with SmtpServer(starttls=server_tls_context(cert, key), require_starttls=True) as srv:
        with pytest.raises(TransportError, match="requires authentication or TLS"):
            run(send_all(transport(srv), ["a@example.vn"]))
        assert srv.messages == []


def test_starttls_required_but_not_offered(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransportError, match="STARTTLS"):
        run(send_all(transport(smtp_server, security="starttls"), ["a@example.vn"]))
    assert smtp_server.messages == []


# ---------------------------------------------------------------- rate limit


def test_pacer_spaces_starts_by_the_rate() -> None:
    pacer = Pacer(5)
    assert [round(pacer.reserve(0.0), 6) for _ in range(10)] == [round(0.2 * i, 6) for i in range(10)]
    # Idle for a while: the next one goes at once, then the spacing resumes.
    assert pacer.reserve(100.0) == 0
    assert pacer.reserve(100.05) == pytest.approx(0.15)
    assert pacer.reserve(101.0) == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_rate_limit_spaces_the_sends(smtp_server: SmtpServer) -> None:
    clock = FakeClock()
    t = transport(smtp_server, pool_size=4, rate=5, clock=clock, sleep=clock.sleep)
    outcomes = run(send_all(t, [f"user{i}@example.vn" for i in range(10)]))
    assert all(o.ok for o in outcomes)
    # Ten starts at 0.2 s intervals: the last one 1.8 s after the first.
    assert clock.now == pytest.approx(1.8)
    assert len(clock.sleeps) == 9


def test_no_rate_no_waiting(smtp_server: SmtpServer) -> None:
    clock = FakeClock()
    t = transport(smtp_server, clock=clock, sleep=clock.sleep)
    assert all(o.ok for o in run(send_all(t, [f"user{i}@example.vn" for i in range(5)])))
    assert clock.sleeps == []


# ---------------------------------------------------------------- Maildir


def test_maildir_delivery(tmp_path: Path) -> None:
    outbox = tmp_path / "var" / "outbox"
    t = MaildirTransport(outbox, clock=lambda: 1_795_000_000.25, hostname="may/chu:1")
    addresses = [f"user{i}@example.vn" for i in range(5)]

    async def scenario() -> list[SendOutcome]:
        async with t:
            return list(
                await asyncio.gather(
                    *(t.send(sender=SENDER, recipient=a, data=digest_for(a)) for a in addresses)
                )
            )

    assert run(scenario()) == [SendOutcome(ok=True)] * 5
    assert sorted(p.name for p in outbox.iterdir()) == ["cur", "new", "tmp"]
    assert list((outbox / "tmp").iterdir()) == []
    files = sorted((outbox / "new").iterdir())
    assert len(files) == 5
    assert len({f.name for f in files}) == 5
    for file in files:
        assert file.name.startswith("1795000000.M250000P")
        assert file.name.endswith(r".may\057chu\0721")
        assert file.stat().st_mode & 0o777 == 0o600
    by_recipient = {parse(f.read_bytes())["To"].addresses[0].addr_spec: f.read_bytes() for f in files}
    assert by_recipient == {a: digest_for(a) for a in addresses}
    assert (
        str(parse(by_recipient["user0@example.vn"])["Subject"]) == "Bản tin hằng ngày — Thứ Sáu, 27/11/2026"
    )


def test_maildir_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the Maildir should be")
    t = MaildirTransport(blocker)
    with pytest.raises(TransportError, match="Maildir"):
        run(t.send(sender=SENDER, recipient="a@example.vn", data=b"x"))


def test_transports_fit_the_protocol(tmp_path: Path) -> None:
    # Checked by mypy: both classes are a Transport.
    transports: list[Transport] = [
        MaildirTransport(tmp_path),
        SmtpTransport("127.0.0.1", 25, security="none"),
    ]
    assert len(transports) == 2


def test_async_with_closes_the_transport(smtp_server: SmtpServer) -> None:
    async def scenario() -> tuple[SendOutcome, TransportError | None]:
        async with transport(smtp_server) as t:
            outcome = await t.send(
                sender="ban-tin@example.org", recipient="hoa@example.org", data=b"Subject: x\r\n\r\nx\r\n"
            )
        try:
            await t.send(sender="ban-tin@example.org", recipient="hoa@example.org", data=b"x\r\n")
        except TransportError as exc:
            return outcome, exc
        return outcome, None

    outcome, error = asyncio.run(scenario())
    assert outcome.ok
    assert error is not None
    assert "closed" in str(error)

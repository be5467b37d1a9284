"""`syndication serve` (a subprocess, real sockets) against clients that misbehave: numbers
too large for the store in a path, connections that never finish their request, headers
of megabytes, more connections than the server takes at once."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import write_config
from tests.test_run import free_port, start, stop, wait_for

DIGEST = """
[mail]
maildir = "{outbox}"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
"""


class Serve:
    """A running ``syndication --log-format json serve`` and what it logged."""

    def __init__(self, tmp_path: Path, store_url: str, extra: str = "") -> None:
        conf = write_config(tmp_path, store_url, DIGEST.format(outbox=tmp_path / "outbox") + extra)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        self.proc = start(conf, "--log-format", "json", "serve", "--port", str(self.port), log=self.log)
        wait_for("the server to answer", self._up, seconds=60, proc=self.proc)

    def _up(self) -> bool:
        try:
            return httpx.get(self.base + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def records(self) -> list[dict[str, object]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        assert stop(self.proc, signal.SIGINT) == 0, self.log.read_text()


@pytest.fixture
def serve(tmp_path: Path, store_url: str) -> Iterator[Serve]:
    running = Serve(tmp_path, store_url)
    yield running
    running.stop()


def test_issue_numbers_out_of_the_stores_range_are_not_found(serve: Serve) -> None:
    key = "0123456789abcdef0123"
    for issue in ("99999999999999999999999", str(2**63), str(2**31), "0", "1"):
        response = httpx.get(f"{serve.base}/ban-tin/{issue}/{key}", timeout=10)
        assert response.status_code == 404, (issue, response.text[:300])
        assert "Không tìm thấy trang" in response.text
    assert httpx.get(f"{serve.base}/ban-tin/99999999999999999999999/x", timeout=10).status_code == 404
    bad = [r for r in serve.records() if r["level"] in ("ERROR", "CRITICAL", "WARNING")]
    assert bad == []


DEADLINE = 2.0
"""``server.request_timeout`` of the ``guarded`` server, in seconds."""
LIMIT = 3
"""Its ``server.limit_concurrency``."""


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One server for the tests below (they leave it as they found it): SQLite, a short deadline."""
    tmp_path = tmp_path_factory.mktemp("guarded")
    extra = f'[server]\nrequest_timeout = "{DEADLINE:g}s"\nlimit_concurrency = {LIMIT}\n'
    running = Serve(tmp_path, f"sqlite:///{tmp_path / 'syndication.db'}", extra)
    yield running
    running.stop()


def cut_after(sock: socket.socket, drip: bytes | None, *, seconds: float) -> tuple[float, bytes]:
    """Send ``drip`` (if any) a byte a second until the server closes the connection, for at most
    ``seconds``: how long it stayed open (from now) and what the server sent."""
    started = time.monotonic()
    received = b""
    sock.settimeout(1.0)
    while time.monotonic() - started < seconds:
        try:
            if drip:
                sock.sendall(drip[:1])
                drip = drip[1:] or drip
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError(f"the connection was still open after {seconds} s; received {received[:100]!r}")
    return time.monotonic() - started, received


def test_a_client_dripping_its_headers_is_cut_at_the_deadline(guarded: Serve) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: tin.example.vn\r\nX-Drip: ")
        open_for, received = cut_after(sock, b"abcdefgh", seconds=DEADLINE + 8)
    assert open_for <= DEADLINE + 2  # a drip a second; a second of margin for a busy machine
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(guarded: Serve) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        open_for, received = cut_after(sock, None, seconds=DEADLINE + 8)
    assert open_for <= DEADLINE + 1
    assert received == b""


def test_a_client_dripping_its_body_is_cut_at_the_deadline(guarded: Serve) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.sendall(
            b"POST /dang-ky HTTP/1.1\r\nHost: tin.example.vn\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\naddress="
        )
        open_for, _ = cut_after(sock, b"nguyen", seconds=DEADLINE + 8)
    assert open_for <= DEADLINE + 2


def test_a_slow_but_finished_request_and_a_kept_alive_connection_are_served(guarded: Serve) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(DEADLINE / 2)
        sock.sendall(b"Host: tin.example.vn\r\n\r\n")
        sock.settimeout(10)
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
    with httpx.Client(base_url=guarded.base, timeout=10) as client:  # one connection, kept alive
        for _ in range(3):
            assert client.get("/").status_code == 200
            time.sleep(DEADLINE * 0.6)  # the deadline runs per request, not per connection


def big_header_request(size: int) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: tin.example.vn\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def test_headers_beyond_the_cap_are_refused(guarded: Serve) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.settimeout(10)
        sock.sendall(big_header_request(60 * 1024))  # under the default 64 KiB
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        sock.settimeout(10)
        # The server may refuse and close before all is sent: also a refusal.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(big_header_request(16 * 1024 * 1024))
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer


def test_one_connection_beyond_the_limit_gets_503(guarded: Serve) -> None:
    held = [http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=10) for _ in range(LIMIT)]
    try:
        for connection in held:  # each answered, and kept open (keep-alive)
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        assert httpx.get(guarded.base + "/", timeout=10).status_code == 503
    finally:
        for connection in held:
            connection.close()

    def served() -> bool:
        return httpx.get(guarded.base + "/", timeout=10).status_code == 200

    wait_for("a free connection", served, seconds=10, proc=guarded.proc)

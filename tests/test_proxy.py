"""Client addresses behind a reverse proxy: a real nginx (started by the test, with the
README's configuration) in front of `syndication serve` (a subprocess), clients on
different loopback addresses, and the rules of ``web.proxies`` without a server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Scope

from syndication.web.proxies import TrustedProxies, forwarded_hops, node_address
from tests.test_cli import write_config
from tests.test_run import free_port, start, stop, wait_for

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering off;
            # As the README says:
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(nginx's address, the app's own address): `serve` trusting only 127.0.0.1 as its
    proxy, two subscribe requests per client and hour."""
    if NGINX is None:
        if os.environ.get("CI"):  # .ci/run installs it: its absence there is a failure
            pytest.fail("nginx is not installed, and CI must run this test")
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    conf = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syndication.db'}",
        f"""
[server]
trusted_proxies = ["127.0.0.1"]
[subscribe]
per_client_per_hour = 2
per_address_per_day = 100
[mail]
maildir = "{tmp_path / "outbox"}"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
""",
    )
    app_port, nginx_port = free_port(), free_port()
    service = start(conf, "serve", "--port", str(app_port), log=tmp_path / "serve.log")
    nginx_conf = tmp_path / "nginx.conf"
    nginx_conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=nginx_port, upstream=app_port))
    with (tmp_path / "nginx.out").open("wb") as out:
        nginx = subprocess.Popen(
            [NGINX, "-c", str(nginx_conf), "-p", str(tmp_path), "-e", str(tmp_path / "nginx-error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proxy, direct = f"http://127.0.0.1:{nginx_port}", f"http://127.0.0.1:{app_port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(proxy + "/dang-ky", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("nginx and the app to answer", up, seconds=60, proc=service)
        assert nginx.poll() is None, (tmp_path / "nginx.out").read_text()
        yield proxy, direct
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=20)
        except subprocess.TimeoutExpired:
            nginx.kill()
        assert stop(service, signal.SIGINT) == 0, (tmp_path / "serve.log").read_text()


def subscribe(base: str, source: str, address: str, forwarded_for: str | None = None) -> int:
    """POST the subscribe form from the loopback address ``source``: the answer's status."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base, transport=transport, timeout=10) as client:
        form = client.get("/dang-ky").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, form
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        data = {"csrf": csrf.group(1), "address": address, "digest": "daily"}
        return client.post("/dang-ky", data=data, headers=headers).status_code


def test_behind_nginx_one_client_at_its_limit_does_not_lock_out_another(
    behind_nginx: tuple[str, str],
) -> None:
    proxy, _ = behind_nginx
    assert subscribe(proxy, "127.0.0.2", "a1@example.org") == 200
    assert subscribe(proxy, "127.0.0.2", "a2@example.org") == 200
    assert subscribe(proxy, "127.0.0.2", "a3@example.org") == 429
    # A forged header does not make a new client: nginx appends the real peer after it.
    assert subscribe(proxy, "127.0.0.2", "a4@example.org", forwarded_for="203.0.113.7") == 429
    assert subscribe(proxy, "127.0.0.2", "a5@example.org", forwarded_for="127.0.0.9, 127.0.0.1") == 429

    assert subscribe(proxy, "127.0.0.3", "b1@example.org") == 200  # another client
    assert subscribe(proxy, "127.0.0.3", "b2@example.org") == 200


def test_a_forged_header_sent_straight_to_the_app_is_not_believed(behind_nginx: tuple[str, str]) -> None:
    _, direct = behind_nginx
    statuses = [
        subscribe(direct, "127.0.0.4", f"c{n}@example.org", forwarded_for=f"198.51.100.{n}") for n in range(3)
    ]
    assert statuses == [200, 200, 429]  # one client, 127.0.0.4, whatever it claims
    assert subscribe(direct, "127.0.0.5", "d1@example.org", forwarded_for="127.0.0.4") == 200


# --- the rules, without a server ------------------------------------------------------------


def resolved(
    peer: str, headers: dict[str, str], trusted: list[str], header: str = "x-forwarded-for"
) -> tuple[str, str]:
    scope: Scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 4711),
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
    }
    TrustedProxies(trusted, header="forwarded" if header == "forwarded" else "x-forwarded-for").resolve(scope)
    return scope["client"][0], scope["scheme"]


@pytest.mark.parametrize(
    ("peer", "headers", "client", "scheme"),
    [
        # The peer is no proxy of ours: its headers are its own words.
        (
            "198.51.100.7",
            {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            "198.51.100.7",
            "http",
        ),
        (
            "10.0.0.2",
            {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            "203.0.113.9",
            "https",
        ),
        # The rightmost address that is not a trusted proxy, not the leftmost (the client wrote that).
        ("10.0.0.2", {"X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.0.0.3"}, "203.0.113.9", "http"),
        ("10.0.0.2", {"X-Forwarded-For": "10.0.0.5, 10.0.0.3"}, "10.0.0.5", "http"),  # all proxies
        ("10.0.0.2", {"X-Forwarded-For": "203.0.113.9:5123"}, "203.0.113.9", "http"),
        ("10.0.0.2", {"X-Forwarded-For": "[2001:db8::7]:80"}, "2001:db8::7", "http"),
        # Garbage stops the walk at the last trusted hop: such requests share the proxy's limits.
        ("10.0.0.2", {"X-Forwarded-For": "1.1.1.1, garbage"}, "10.0.0.2", "http"),
        ("10.0.0.2", {"X-Forwarded-Proto": "gopher"}, "10.0.0.2", "http"),
        ("10.0.0.2", {"X-Forwarded-Proto": "http, HTTPS"}, "10.0.0.2", "https"),
        ("::ffff:10.0.0.2", {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9", "http"),
        # The other header is the client's own: a proxy that writes X-Forwarded-For passes it on.
        ("10.0.0.2", {"Forwarded": "for=203.0.113.66"}, "10.0.0.2", "http"),
    ],
)
def test_x_forwarded_for(peer: str, headers: dict[str, str], client: str, scheme: str) -> None:
    assert resolved(peer, headers, ["10.0.0.0/8"]) == (client, scheme)


@pytest.mark.parametrize(
    ("value", "client", "scheme"),
    [
        ("for=203.0.113.9;proto=https", "203.0.113.9", "https"),
        ('for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.2', "2001:db8:cafe::17", "https"),
        ("for=1.1.1.1, for=203.0.113.9;proto=https, for=10.0.0.3;proto=http", "203.0.113.9", "https"),
        ('For="198.51.100.1;x", for=203.0.113.9', "203.0.113.9", "http"),  # quoted ";" is no separator
        ("for=unknown", "10.0.0.2", "http"),
        ("for=_hidden, for=10.0.0.3", "10.0.0.3", "http"),
        ("proto=https", "10.0.0.2", "http"),
    ],
)
def test_forwarded(value: str, client: str, scheme: str) -> None:
    headers = {"Forwarded": value, "X-Forwarded-For": "192.0.2.99"}  # the client's own: ignored
    assert resolved("10.0.0.2", headers, ["10.0.0.0/8"], header="forwarded") == (client, scheme)


def test_forwarded_hops_and_node_addresses() -> None:
    assert list(forwarded_hops('for=a, for="1.2.3.4:80";proto=http, ,for=')) == [
        (None, None),
        ("1.2.3.4", "http"),
        (None, None),
        (None, None),
    ]
    assert [node_address(n) for n in ("[::1]", " 1.2.3.4 ", "::1", "[::1", "1.2.3.4:x", "")] == [
        "::1",
        "1.2.3.4",
        "::1",
        None,
        "1.2.3.4",
        None,
    ]


def test_without_trusted_proxies_nothing_changes() -> None:
    assert not TrustedProxies([])
    assert resolved("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, []) == ("127.0.0.1", "http")
    with pytest.raises(ValueError, match="does not appear to be"):
        TrustedProxies(["proxy.local"])

"""netguard: which addresses are internal, including IPv4 carried inside IPv6; which URLs are fetched."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.errors import FetchError
from syndication.ingest.netguard import (
    check_url,
    embedded_ipv4,
    file_problem,
    host_problem,
    is_internal,
    redact_url,
)

INTERNAL_V4 = [
    "0.0.0.0",  # unspecified
    "0.1.2.3",  # "this network" 0/8
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",  # shared CGNAT
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # link-local, cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.1",  # IETF protocol assignments
    "192.0.0.170",  # NAT64 discovery
    "192.0.2.1",  # TEST-NET-1
    "192.88.99.1",  # 6to4 relay anycast
    "192.168.1.1",
    "198.18.0.1",  # benchmarking
    "198.19.255.255",
    "198.51.100.7",  # TEST-NET-2
    "203.0.113.9",  # TEST-NET-3
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
]

EXTERNAL_V4 = [
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.0.3.1",
    "192.167.255.255",
    "198.17.255.255",
    "198.20.0.0",
    "203.0.114.1",
    "223.255.255.255",
    "113.160.92.5",  # a Vietnamese portal's range
]

INTERNAL_V6 = [
    "::",  # unspecified
    "::1",  # loopback
    "fe80::1",  # link-local
    "fe80::1%1",  # link-local with a zone
    "fec0::1",  # site-local (deprecated)
    "fc00::1",  # unique-local
    "fd12:3456:789a::1",
    "ff02::1",  # multicast
    "ff05::2",
    "100::1",  # discard-only
    "2001:db8::1",  # documentation
    "3fff::1",  # documentation (RFC 9637)
    "2001:2::1",  # benchmarking, IETF protocol assignments
    "2001:10::1",  # ORCHID
    "5f00::1",  # SRv6 SIDs
    "4000::1",  # outside global unicast
    "64:ff9b:1::a00:1",  # local-use NAT64 /48, whatever it carries
    "64:ff9b:1::808:808",
]

EXTERNAL_V6 = [
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2402:800:6318::1",  # a Vietnamese ISP's range
    "2a00:1450:4001:800::200e",
]

# IPv6 forms that carry an internal IPv4 address (Python's ipaddress calls most of them global).
EMBEDDED_INTERNAL = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0:127.0.0.1",  # IPv4-translated
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "64:ff9b::127.0.0.1",  # NAT64
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::192.168.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:c0a8:101:1::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, RFC 4380's client 192.0.2.45
    "2001:0:4136:e378:0:0:80ff:fffe",  # Teredo, client 127.0.0.1 (stored inverted)
    "2001:0:a00:1::f7f7:f7f7",  # Teredo, server 10.0.0.1
    "2607:f8b0:4005::200:5efe:10.0.0.1",  # ISATAP on a global prefix
    "2607:f8b0:4005::5efe:127.0.0.1",
    "2002:808:808::5efe:192.168.0.1",  # 6to4 of a public address, ISATAP of a private one
]

EMBEDDED_EXTERNAL = [
    "::ffff:8.8.8.8",
    "::8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2001:0:808:808::f7f7:f7f7",  # Teredo: server 8.8.8.8, client 8.8.8.8
    "2607:f8b0:4005::200:5efe:8.8.8.8",
]


@pytest.mark.parametrize("text", INTERNAL_V4 + INTERNAL_V6 + EMBEDDED_INTERNAL)
def test_internal(text: str) -> None:
    assert is_internal(ip_address(text))


@pytest.mark.parametrize("text", EXTERNAL_V4 + EXTERNAL_V6 + EMBEDDED_EXTERNAL)
def test_external(text: str) -> None:
    assert not is_internal(ip_address(text))


@pytest.mark.parametrize("text", INTERNAL_V4 + INTERNAL_V6 + EXTERNAL_V4 + EXTERNAL_V6 + EMBEDDED_INTERNAL)
def test_everything_python_calls_special_is_internal(text: str) -> None:
    ip = ip_address(text)
    special = ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved
    if isinstance(ip, IPv4Address):
        special = special or ip.is_private or not ip.is_global
    else:
        special = special or ip.is_site_local
    if special:
        assert is_internal(ip)


@pytest.mark.parametrize(
    ("text", "carried"),
    [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("::ffff:0:10.1.2.3", ["10.1.2.3"]),
        ("::1.2.3.4", ["1.2.3.4"]),
        ("64:ff9b::1.2.3.4", ["1.2.3.4"]),
        ("2002:102:304::", ["1.2.3.4"]),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),
        ("fe80::200:5efe:10.0.0.1", ["10.0.0.1"]),
        ("fe80::100:5efe:10.0.0.1", ["10.0.0.1"]),
        ("2001:4860:4860::8888", []),
    ],
)
def test_embedded_ipv4(text: str, carried: list[str]) -> None:
    address = ip_address(text)
    assert isinstance(address, IPv6Address)
    assert embedded_ipv4(address) == tuple(IPv4Address(a) for a in carried)


def test_teredo_matches_the_standard_library() -> None:
    address = IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert address.teredo is not None
    assert embedded_ipv4(address) == address.teredo


v4_addresses = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


@given(v4_addresses)
def test_carried_ipv4_decides(v4: IPv4Address) -> None:
    """Every form that stands for an IPv4 address is exactly as internal as that address."""
    value = int(v4)
    internal = is_internal(v4)
    assert is_internal(IPv6Address((0xFFFF << 32) | value)) is internal  # mapped
    assert is_internal(IPv6Address((0xFFFF << 48) | value)) is internal  # translated
    assert is_internal(IPv6Address(value)) is internal  # compatible
    assert is_internal(IPv6Address((0x64FF9B << 96) | value)) is internal  # NAT64


@given(v4_addresses, st.integers(min_value=1, max_value=0xFFFF))
def test_six_to_four_carries_its_address(v4: IPv4Address, host: int) -> None:
    address = IPv6Address((0x2002 << 112) | (int(v4) << 80) | host)
    assert is_internal(address) is is_internal(v4)


@given(v4_addresses, v4_addresses)
def test_teredo_is_internal_when_either_end_is(server: IPv4Address, client: IPv4Address) -> None:
    address = IPv6Address((0x2001_0000 << 96) | (int(server) << 64) | (~int(client) & 0xFFFF_FFFF))
    assert is_internal(address) is (is_internal(server) or is_internal(client))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/feed.xml",
        "https://vnexpress.net/rss/tin-moi-nhat.rss",
        "HTTPS://Example.org",
        "http://user:secret@example.org/private.rss",
        "http://[2001:db8::1]:8080/",
        "http://127.0.0.1:8000/",  # addresses are checked after resolution, not here
    ],
)
def test_check_url_accepts(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "'file' URLs are not fetched"),
        ("ftp://example.org/feed", "'ftp' URLs are not fetched"),
        ("gopher://example.org", "'gopher' URLs"),
        ("javascript:alert(1)", "'javascript' URLs"),
        ("//example.org/feed", "relative URLs are not fetched"),
        ("/feed.xml", "relative URLs"),
        ("http:///feed.xml", "URL has no host"),
        ("http://[::1/feed", "invalid URL"),
        ("http://xn--/", 'invalid host name "xn--": Malformed A-label'),
        ("https://a..example.vn/", 'invalid host name "a..example.vn": a label is empty'),
    ],
)
def test_check_url_refuses(url: str, message: str) -> None:
    with pytest.raises(FetchError, match=message) as caught:
        check_url(url)
    assert caught.value.url == url


def test_check_url_never_shows_credentials() -> None:
    with pytest.raises(FetchError) as caught:
        check_url("ftp://user:hunter2@example.org/feed")
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in caught.value.url
    assert caught.value.url == "ftp://example.org/feed"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pw@example.org/a", "http://example.org/a"),
        ("https://user@example.org", "https://example.org"),
        ("https://u:p@ss@example.org/x?y=@z", "https://example.org/x?y=@z"),
        ("http://example.org/a@b?c=d@e#f@g", "http://example.org/a@b?c=d@e#f@g"),
        ("http://example.org", "http://example.org"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    "host",
    [
        "example.org",
        "example.org.",  # fully qualified
        "a_b.example.org",  # not a valid DNS name, but the resolver may know it
        "ví-dụ.vn",
        "xn--v-d-rma6749a.vn",  # the same, as A-labels
        "XN--FIQS8S.cn",
        "127.0.0.1",
        "2001:db8::1",
        "a" * 63 + ".vn",
    ],
)
def test_host_problem_accepts_names_that_can_be_looked_up(host: str) -> None:
    assert host_problem(host) is None


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("", "no host name"),
        ("xn--", "Malformed A-label, no Punycode eligible content found"),
        ("tin.xn--zz-.vn", "A-label must not end with a hyphen"),
        ("xn--a.vn", "not allowed"),
        ("a" * 64 + ".vn", "a label is empty or longer than 63 characters"),
        ("a..vn", "a label is empty or longer than 63 characters"),
        ("exämple..com", "Empty Label"),
        ("ä" * 70 + ".vn", "Label too long"),
        (".".join(["a" * 60] * 5), "longer than 253 characters"),
    ],
)
def test_host_problem_names_what_is_wrong(host: str, problem: str) -> None:
    found = host_problem(host)
    assert found is not None
    assert found.startswith(f'invalid host name "{host}": ' if host else "no host name")
    assert problem in found


LISTING = "file:///srv/guong/tin/danh-sach.html"


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/guong/tin/bai-1.html",
        "file:///srv/guong/tin/con/bai%20hai.html",
        "file:///srv/guong/tin/con/%2e%2e/bai-1.html",
        "file://localhost/srv/guong/tin/bai-1.html",
    ],
)
def test_file_problem_accepts_links_inside_the_listings_folder(url: str) -> None:
    assert file_problem(url, listing=LISTING) is None


@pytest.mark.parametrize(
    ("url", "listing", "problem"),
    [
        ("file:///srv/guong/tin/%2e%2e/bi-mat.html", LISTING, "/srv/guong/bi-mat.html is outside the folder"),
        (
            "file:///srv/guong/tin/%2E%2E%2Fbi-mat.html",
            LISTING,
            "outside the folder of the listing (/srv/guong/tin)",
        ),
        ("file:///srv/guong/tin/%252e%252e/bi-mat.html", LISTING, "/srv/guong/bi-mat.html is outside"),
        ("file:///srv/guong/tinh/bai.html", LISTING, "outside the folder"),  # a sibling sharing a prefix
        ("file:///proc/self/environ", LISTING, "outside the folder"),
        ("file:///proc/self/environ", None, "/proc/self/environ is in a system folder"),
        ("file:///sys/../proc/1/environ", None, "/proc/1/environ is in a system folder"),
        ("file:////dev/zero", None, "/dev/zero is in a system folder"),
        ("file:///dev%2fzero", None, "/dev/zero is in a system folder"),
        ("file:///index.html", "file:///proc/a.html", "/index.html is outside"),
        ("file:///proc/1/environ", "file:///a.html", "in a system folder"),  # a listing at the root
        ("file:///srv/a%00.html", None, "a NUL character"),
        ("file:///srv/guong/tin/bai.html", "https://portal.example.vn/tin", "which is not a local file"),
        ("file://example.org/etc/hosts", None, "not a local absolute file URL"),
        ("file:relative.html", None, "not a local absolute file URL"),
    ],
)
def test_file_problem_refuses(url: str, listing: str | None, problem: str) -> None:
    found = file_problem(url, listing=listing)
    assert found is not None
    assert problem in found

"""Which URLs and network addresses a fetch may reach.

``ingest.fetch`` resolves a host name itself, asks ``is_internal`` about every
address it got, and connects only to an address that passed. This module holds
the rules, so they can be read and tested on their own.

An address is internal when it is not a public unicast address on the
Internet: private, loopback, link-local, multicast, reserved, unspecified,
shared (CGNAT), benchmarking, documentation, unique-local, site-local, and so
on. IPv6 forms that carry an IPv4 address inside them (IPv4-mapped and
-compatible, NAT64, 6to4, Teredo, ISATAP) are judged by the IPv4 address they
carry as well, because a packet sent to them can end up at that IPv4 address.
The lists are written out here rather than taken from ``ipaddress``'s
``is_private``/``is_global`` properties, whose answers change between Python
releases and which miss the embedded forms.

A ``file:`` URL is read only outside the system's own folders (``/proc``, ``/sys``,
``/dev``), and one linked from a ``file:`` listing only inside that listing's folder.
``file_problem`` checks what the URL says (percent-decoded once, and again until
nothing changes, ``..`` resolved); ``fetch`` checks again where symlinks lead.

A URL's host name must be one a resolver can be asked about: ``host_problem`` says
why not (an empty or over-long label, an international name IDNA refuses, an ``xn--``
label that is no valid A-label), so that a malformed name is a clear error where the
URL comes in (configuration, redirect, link) rather than a crash deep in httpx.

Pure: no I/O, no DNS, no logging.
"""

from __future__ import annotations

import posixpath
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import unquote, urlsplit

import idna

from syndication.errors import FetchError

IPAddress = IPv4Address | IPv6Address

# IANA IPv4 Special-Purpose Address Registry, every block that is not globally
# reachable, plus multicast and the reserved 240/4 (which holds the broadcast address).
_INTERNAL_V4 = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)

# IPv6 forms whose low 32 bits *are* an IPv4 address: reaching them means reaching it.
_STANDS_FOR_V4 = tuple(
    IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "::/96",  # IPv4-compatible (deprecated); also holds :: and ::1
        "64:ff9b::/96",  # NAT64 well-known prefix
    )
)

# Only 2000::/3 is global unicast; everything outside it (unique-local fc00::/7,
# link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard-only
# 100::/64, local-use NAT64 64:ff9b:1::/48, SRv6 5f00::/16, unassigned space)
# is internal. These are the internal blocks inside 2000::/3.
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_INTERNAL_V6 = tuple(
    IPv6Network(net)
    for net in (
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_TEREDO = IPv6Network("2001::/32")
_IETF_PROTOCOL_ASSIGNMENTS = IPv6Network("2001::/23")  # Teredo is judged by what it carries
_SIX_TO_FOUR = IPv6Network("2002::/16")
# ISATAP interface identifiers: 0000:5efe or 0200:5efe (with the group and
# universal/local bits in either state), followed by the IPv4 address.
_ISATAP_MARKERS = frozenset(bytes((flags, 0, 0x5E, 0xFE)) for flags in (0x00, 0x01, 0x02, 0x03))

SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
"""Never read through a ``file:`` URL: the process's environment, the kernel's state, devices."""

_HTTP_SCHEMES = frozenset({"http", "https"})
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")


def is_internal(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address a fetch must not reach unless the source allows it."""
    if isinstance(ip, IPv4Address):
        return any(ip in net for net in _INTERNAL_V4)
    if any(ip in net for net in _STANDS_FOR_V4):
        return is_internal(IPv4Address(int(ip) & 0xFFFF_FFFF))
    if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _INTERNAL_V6):
        return True
    if ip in _IETF_PROTOCOL_ASSIGNMENTS and ip not in _TEREDO:
        return True
    return any(is_internal(v4) for v4 in embedded_ipv4(ip))


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, in the forms ``is_internal`` unwraps.

    IPv4-mapped, -translated and -compatible and NAT64 (64:ff9b::/96) carry
    their low 32 bits; 6to4 (2002::/16) carries bits 16-47; Teredo
    (2001::/32) carries its server and its client (stored inverted); an ISATAP
    interface identifier (``...:0:5efe:a.b.c.d``) carries its low 32 bits,
    whatever the prefix (so a 6to4 or Teredo address can carry three).
    """
    low32 = IPv4Address(int(ip) & 0xFFFF_FFFF)
    if any(ip in net for net in _STANDS_FOR_V4):
        return (low32,)
    carried: list[IPv4Address] = []
    if ip in _SIX_TO_FOUR:
        carried.append(IPv4Address((int(ip) >> 80) & 0xFFFF_FFFF))
    if ip in _TEREDO:
        carried.append(IPv4Address((int(ip) >> 64) & 0xFFFF_FFFF))  # server
        carried.append(IPv4Address(~int(ip) & 0xFFFF_FFFF))  # client, stored inverted
    if ip.packed[8:12] in _ISATAP_MARKERS:
        carried.append(low32)
    return tuple(carried)


def host_problem(host: str) -> str | None:
    """Why ``host`` (a URL's host name as ``urlsplit`` gives it) is no name to look up, or
    ``None`` when it is one: an IP address, or labels of 1 to 63 characters (253 in all),
    an international name IDNA 2008 accepts, every ``xn--`` label a valid A-label."""
    if not host:
        return "no host name"
    try:
        ip_address(host)
    except ValueError:
        pass
    else:
        return None
    name = host.removesuffix(".")  # a fully qualified name may end with a dot
    try:
        # As httpx does: an international name is encoded to A-labels...
        ascii_name = name if name.isascii() else idna.encode(name.lower()).decode("ascii")
        labels = ascii_name.split(".")
        for label in labels:
            if not label or len(label) > 63:
                return f'invalid host name "{host}": a label is empty or longer than 63 characters'
            if label[:4].lower() == "xn--":
                idna.decode(label)  # ...and a name with an A-label decoded for display
    except idna.IDNAError as exc:
        return f'invalid host name "{host}": {exc}'
    if len(ascii_name) > 253:
        return f'invalid host name "{host}": longer than 253 characters'
    return None


def check_url(url: str) -> None:
    """Accept only absolute http and https URLs with a host name that can be looked up.

    User information (``user:password@``) is allowed, but never shown: error
    messages carry ``redact_url(url)``.

    Raises:
        FetchError: the scheme is not http or https, or the URL has no host, or a
            malformed one (``host_problem``).
    """
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise FetchError(f"invalid URL: {safe}", url=safe) from exc
    scheme = parts.scheme.lower()
    if scheme not in _HTTP_SCHEMES:
        shown = f"{scheme!r} URLs are" if scheme else "relative URLs are"
        raise FetchError(f"{shown} not fetched (only http and https): {safe}", url=safe)
    if not host:
        raise FetchError(f"URL has no host: {safe}", url=safe)
    if problem := host_problem(host):
        raise FetchError(problem, url=safe)


def redact_url(url: str) -> str:
    """``url`` without its user information (``user:password@``), for messages and results."""
    return _USERINFO.sub(r"\g<head>", url, count=1)


def file_path(url: str) -> str | None:
    """The absolute local path a ``file:`` URL names, percent-decoded and with ``.`` and
    ``..`` resolved (lexically: symlinks are for the caller); ``None`` when ``url`` is not
    a ``file:`` URL of this machine with an absolute path."""
    paths = _file_paths(url)
    return None if paths is None else paths[0]


def _file_paths(url: str) -> tuple[str, str] | None:
    """``file_path``, and the same with the path percent-decoded until nothing changes."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    once = unquote(parts.path)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost") or not once.startswith("/"):
        return None
    return _normal(once), _normal(_decoded(once))


def inside(path: str, folder: str) -> bool:
    """Whether the normal absolute ``path`` is ``folder`` or lies under it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def in_system_folder(path: str) -> bool:
    """Whether the normal absolute ``path`` lies in one of ``SYSTEM_FOLDERS``."""
    return any(inside(path, folder) for folder in SYSTEM_FOLDERS)


def file_problem(url: str, *, listing: str | None) -> str | None:
    """Why the ``file:`` URL ``url`` must not be read, or ``None``: it is not a local
    absolute file URL, holds a NUL, is in a system folder, or (when it is a link of
    ``listing``) leads outside the folder of that listing, which must be a ``file:`` URL
    too. Both the path decoded once, as it is read, and the path decoded until nothing
    changes (``%252e%252e``) are checked, so no later decoding can lead anywhere else.
    """
    paths = _file_paths(url)
    if paths is None:
        return f"not a local absolute file URL: {url}"
    path, fully = paths
    if "\0" in fully:
        return f"refused: a NUL character in {url}"
    if listing is not None:
        listing_path = file_path(listing)
        if listing_path is None:
            return f"refused: {url} is linked from {listing}, which is not a local file"
        folder = posixpath.dirname(listing_path)
        if not (inside(path, folder) and inside(fully, folder)):
            return f"refused: {fully} is outside the folder of the listing ({folder})"
    if in_system_folder(path) or in_system_folder(fully):
        return f"refused: {fully} is in a system folder ({', '.join(SYSTEM_FOLDERS)})"
    return None


def _normal(path: str) -> str:
    # normpath keeps a leading "//" (POSIX leaves its meaning open); no file system here does.
    return "/" + posixpath.normpath(path).lstrip("/")


def _decoded(path: str) -> str:
    """``path`` percent-decoded until nothing changes (a few rounds at most)."""
    for _ in range(8):
        if "%" not in path:
            break
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return path

"""Who sent a request, and over which scheme, when reverse proxies stand in front.

``TrustedProxies.resolve`` rewrites an ASGI scope's ``client`` and ``scheme`` before
anything reads them (rate limits, the same-site check of forms, uvicorn's access log).
It reads a forwarding header only when the immediate peer, the other end of the TCP
connection, is one of the configured addresses or networks; anyone else's headers are
the client's own words and are ignored.

One header is read, the one the proxies write: ``X-Forwarded-For`` (nginx's
``$proxy_add_x_forwarded_for``) or ``Forwarded`` (RFC 7239). Never both: a proxy
passes the header it does not write on as the client sent it, so reading both would
let a client choose its address.

The hops are read from the right, where each proxy appends the address it received
the request from: the client is the first address that is not a trusted proxy, and
whatever lies left of it (written by the client, or by proxies we do not know) is
ignored. A hop that is no address (``unknown``, an obfuscated name, garbage) stops the
walk at the last trusted proxy, so such requests share that proxy's limits rather than
escape them. The scheme is the last ``X-Forwarded-Proto`` value (set by the nearest
proxy) or the ``proto`` of the hops taken, and only ``http`` or ``https``.

Pure: rewrites a scope, no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from starlette.types import Scope

__all__ = ["ProxyHeader", "TrustedProxies", "forwarded_hops", "node_address"]

ProxyHeader = Literal["x-forwarded-for", "forwarded"]

_SCHEMES = frozenset({"http", "https"})
# One forwarded-pair of RFC 7239: token=token or token="quoted string" (with \-escapes).
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


class TrustedProxies:
    """The reverse proxies whose ``header`` is believed; see the module docstring.

    Raises:
        ValueError: an entry of ``networks`` is no address or network.
    """

    def __init__(self, networks: Sequence[str], *, header: ProxyHeader = "x-forwarded-for") -> None:
        self.networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)
        self.header = header
        self._name = header.encode("ascii")
        # Peers are few (the proxies themselves and direct clients): remember the answers.
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _trusts(self, host: str) -> bool:
        """Whether ``host`` (an address as text) is one of the trusted proxies."""
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)

    def resolve(self, scope: Scope) -> None:
        """Put the forwarded client and scheme in ``scope`` when its peer is a trusted proxy."""
        peer = scope.get("client")
        if scope["type"] not in ("http", "websocket") or not peer or not self.trusts(peer[0]):
            return
        values: list[str] = []
        protos: list[str] = []
        for name, value in scope["headers"]:
            if name == self._name:
                values.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto" and self.header == "x-forwarded-for":
                protos.append(value.decode("latin-1"))
        if self.header == "forwarded":
            hops = list(forwarded_hops(",".join(values)))
        else:
            hops = [(node_address(hop), None) for hop in ",".join(values).split(",")] if values else []
        client, scheme = None, None
        for address, proto in reversed(hops):
            if address is None:
                break
            client, scheme = address, proto or scheme
            if not self.trusts(address):
                break
        if protos:
            scheme = protos[-1].rsplit(",", 1)[-1]
        if client is not None:
            scope["client"] = (client, 0)
        if scheme is not None and scheme.strip().lower() in _SCHEMES:
            scope["scheme"] = scheme.strip().lower()


def forwarded_hops(value: str) -> Iterator[tuple[str | None, str | None]]:
    """``(address, proto)`` of each element of a ``Forwarded`` header, left to right;
    the address None where ``for`` is missing or no address (``unknown``, ``_hidden``)."""
    for element in _split(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split(element, ";"):
            match = _PAIR.fullmatch(pair)
            if match is None:
                continue
            text = match.group(2)
            if text.startswith('"'):
                text = re.sub(r"\\(.)", r"\1", text[1:-1])
            pairs.setdefault(match.group(1).lower(), text)
        yield node_address(pairs.get("for", "")), pairs.get("proto")


def _split(text: str, separator: str) -> Iterator[str]:
    """``text`` cut at ``separator`` outside quoted strings."""
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield text[start:i]
            start = i + 1
    yield text[start:]


def node_address(node: str) -> str | None:
    """The address of a hop, as ``ipaddress`` writes it, without port or brackets
    (``203.0.113.9:4711``, ``[2001:db8::1]:80``, ``"2001:db8::1"``); None when it is none."""
    text = node.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    address = _address(text)
    return None if address is None else str(address)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address

"""Pages for subscribers: subscribe (double opt-in), confirm, preferences, unsubscribe.

``app.create_app`` adds these routes to the Starlette app of ``pages.Pages``::

    GET  /dang-ky             the subscribe form
    POST /dang-ky             validate, rate-limit, ``SubscriptionProvider.subscribe``: "check your inbox"
    GET  /xac-nhan/{token}    a page with a confirm button; a GET changes nothing (scanners follow links)
    POST /xac-nhan/{token}    the button: ``confirm``, the address becomes active
    GET  /tuy-chon/{token}    preferences (categories, digest) and an unsubscribe button
    POST /tuy-chon/{token}    save them
    GET  /huy/{token}         a page with an unsubscribe button; a GET changes nothing (scanners follow links)
    POST /huy/{token}         RFC 8058 one-click (the body is exactly ``List-Unsubscribe=One-Click``,
                              no CSRF token: mail providers send it), or the button of a page

Nothing here tells whether an address exists: the subscribe form answers the
same page for a new, pending, active or unsubscribed address, and every token
that is malformed (not ``[A-Za-z0-9_-]{20,100}``, checked before the provider is
asked) or unknown gets the same 404 page. Links carry tokens, never addresses;
personal pages show the address masked (``ng***@example.org``).

Forms carry a stateless CSRF token, ``<issued>.<HMAC(secret, purpose, token, issued)>``,
valid for two hours, and a POST is refused when ``Origin`` or ``Sec-Fetch-Site``
says it came from another site. Subscribing is rate-limited per client (IPv6 by
/64; behind trusted reverse proxies the forwarded client, see ``proxies``; counted
once the CSRF token is checked and before the fields are, so invalid posts count
too), per mailbox and over the site: this module says who the client is and when
to ask; the provider counts, in the store, and answers how long to wait (a 429 with
``Retry-After``). A confirmation link whose request expired gets a page (410)
offering to subscribe again.

Must not: send mail, read the store, keep limits in memory, or interpret tokens:
the provider does.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import time
import unicodedata
from base64 import urlsafe_b64encode
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, urlsplit

from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from syndication import addresses
from syndication.errors import AddressError
from syndication.types import Confirmation, Subscriber
from syndication.web.pages import SECURITY_HEADERS

if TYPE_CHECKING:
    from starlette.types import Scope

    from syndication.web.pages import Pages

__all__ = [
    "CsrfTokens",
    "SubscriptionPages",
    "SubscriptionProvider",
    "client_key",
    "mask_address",
    "valid_token",
]

logger = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{20,100}")
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 2 * 3600.0
MAX_BODY = 32 * 1024
"""Bytes: a form here is a few hundred; uvicorn sets no limit of its own."""
MAX_FIELDS = 200
MAX_NAME = 200

_INVALID_LINK = (
    "Liên kết không hợp lệ hoặc đã hết hạn",
    "Hãy kiểm tra lại liên kết trong thư (có thể nó bị ngắt dòng), hoặc đăng ký lại.",
)
_EXPIRED = (
    "Phiên làm việc đã hết hạn, vui lòng thử lại",
    "Trang bạn gửi đã mở quá lâu hoặc không được gửi từ trang của chúng tôi. Hãy mở lại trang và gửi lại.",
)
_LINK_EXPIRED = (
    "Liên kết xác nhận đã hết hạn",
    "Liên kết trong thư xác nhận chỉ dùng được trong một thời gian sau khi đăng ký, và thời gian "
    "đó đã qua. Nếu vẫn muốn nhận bản tin, xin đăng ký lại: một thư xác nhận mới sẽ được gửi tới "
    "hộp thư của bạn.",
)
_TOO_MANY = "Bạn đã gửi quá nhiều yêu cầu, vui lòng thử lại sau"
_BAD_REQUEST = {
    400: ("Yêu cầu không hợp lệ", "Dữ liệu gửi lên không đọc được. Hãy mở lại trang và gửi lại."),
    413: ("Dữ liệu gửi lên quá lớn", "Hãy mở lại trang và gửi lại."),
}


class SubscriptionProvider(Protocol):
    """What the subscription pages need from the rest of the service (implemented in ``core``).

    A token is whatever the provider puts in personal links; these pages only check
    its shape. Every method returning ``Subscriber | None`` or ``Confirmation | None``
    returns None for an unknown token (or, for confirmations, one that leads nowhere).
    The limits are the provider's: it counts, these pages show the answer.
    """

    def categories(self) -> Sequence[tuple[str, str]]:
        """(slug, title) of every category one can follow, in display order."""
        ...

    def digests(self) -> Sequence[tuple[str, str]]:
        """(name, title) of every digest one can receive; the first is the default."""
        ...

    async def limit_client(self, client: str) -> float | None:
        """Count one subscribe request from ``client`` (an IP address, or an IPv6 /64): None
        when allowed, else the seconds until one more would be."""
        ...

    async def subscribe(
        self, *, address: str, display_name: str, categories: Sequence[str], digest: str
    ) -> float | None:
        """Open an opt-in request and send the confirmation e-mail, if the limits of the
        mailbox and the site allow: None, else the seconds until they would (nothing done).

        Behaves alike whether or not the address is known (no enumeration).

        Raises:
            ValueError: invalid input; the message, in Vietnamese, is shown on the form.
        """
        ...

    async def confirmation(self, token: str) -> Confirmation | None:
        """Where the token's confirmation link stands (open, confirmed, expired); changes nothing."""
        ...

    async def confirm(self, token: str) -> Confirmation | None:
        """The button: an open request makes the address active (then ``confirmed``); an
        active one stays so; an expired request stays ``expired``."""
        ...

    async def subscriber(self, token: str) -> Subscriber | None: ...

    async def set_preferences(
        self, token: str, *, categories: Sequence[str], digest: str
    ) -> Subscriber | None: ...

    async def unsubscribe(self, token: str) -> Subscriber | None: ...


def valid_token(token: str) -> bool:
    """Whether ``token`` has the shape of a personal-link token (before any lookup)."""
    return TOKEN_PATTERN.fullmatch(token) is not None


def _token(request: Request) -> str | None:
    """The token of a personal page's path, if it has the shape of one."""
    token: str = request.path_params["token"]
    # Starlette's route patterns end in "$", which also matches before a final newline.
    if not valid_token(token) or not request.scope["path"].endswith(token):
        return None
    return token


def mask_address(address: str) -> str:
    """``nguyen@example.org`` -> ``ng***@example.org``: enough to recognise, little to leak."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:2] if len(local) > 3 else local[:1]}***@{domain}"


class CsrfTokens:
    """Stateless CSRF tokens: ``<issued>.<mac>``, bound to a purpose and a subject (a token or "")."""

    def __init__(self, secret: bytes, *, clock: Callable[[], float], max_age: float = CSRF_MAX_AGE) -> None:
        self._secret = secret
        self._clock = clock
        self._max_age = max_age

    def issue(self, purpose: str, subject: str = "") -> str:
        issued = int(self._clock())
        return f"{issued}.{self._mac(purpose, subject, issued)}"

    def valid(self, token: str, purpose: str, subject: str = "") -> bool:
        issued_text, dot, mac = token.partition(".")
        if not dot or not (issued_text.isascii() and issued_text.isdigit()) or len(issued_text) > 15:
            return False
        issued = int(issued_text)
        if not 0 <= self._clock() - issued <= self._max_age:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(purpose, subject, issued).encode())

    def _mac(self, purpose: str, subject: str, issued: int) -> str:
        message = f"csrf\0{purpose}\0{subject}\0{issued}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:24]
        return urlsafe_b64encode(digest).decode()


def client_key(scope: Scope) -> str:
    """Who sent the request, for rate limits: the client's address as ``scope`` holds it
    (``web.proxies`` put the forwarded one there when the peer is a trusted proxy), an
    IPv6 one as its /64 (one subscriber's network)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _origin(url: str) -> str:
    """``scheme://host[:port]``, lower-cased, without the scheme's default port."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host.removesuffix(default)
    return f"{scheme}://{host}"


def _address_error(address: str) -> str | None:
    """The one rule for addresses (``addresses.parse``), answered at once, in Vietnamese."""
    if not address:
        return "Vui lòng nhập địa chỉ thư điện tử."
    try:
        addresses.parse(address)
    except AddressError as exc:
        if exc.problem == "smtputf8":
            return (
                "Phần trước dấu @ chỉ dùng chữ không dấu, chữ số và các dấu . _ - +. "
                "Ví dụ đúng: vanphong@example.org"
            )
        return "Địa chỉ thư điện tử không hợp lệ. Ví dụ đúng: vanphong@example.org"
    return None


def _clean_name(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    return " ".join(text.split())


class _BadForm(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Form:
    """The fields of a posted form, text only."""

    fields: tuple[tuple[str, str], ...]

    def one(self, name: str) -> str:
        return next((value for key, value in self.fields if key == name), "")

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def one_click(self) -> bool:
        """RFC 8058: the body is the single pair ``List-Unsubscribe=One-Click``."""
        return [(k.strip(), v.strip()) for k, v in self.fields] == [("List-Unsubscribe", "One-Click")]


async def _read_form(request: Request) -> _Form:
    """The posted form, at most ``MAX_BODY`` bytes, url-encoded or multipart (no files).

    Raises:
        _BadForm: too large (413) or unreadable (400). Other content types give an empty form.
    """
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise _BadForm(413 if length.isdigit() else 400)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _BadForm(413)
        chunks.append(chunk)
    body = b"".join(chunks)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if media_type == "application/x-www-form-urlencoded":
            pairs = parse_qsl(
                body.decode(), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
            )
            return _Form(tuple(pairs))
        if media_type == "multipart/form-data":

            async def stream() -> AsyncGenerator[bytes, None]:
                yield body

            parser = MultiPartParser(
                request.headers, stream(), max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_BODY
            )
            parsed = await parser.parse()
            return _Form(tuple((k, v) for k, v in parsed.multi_items() if isinstance(v, str)))
    except (ValueError, MultiPartException) as exc:  # UnicodeDecodeError is a ValueError
        raise _BadForm(400) from exc
    return _Form(())


@dataclass(frozen=True, slots=True, kw_only=True)
class _Choices:
    """What a form shows as filled in."""

    address: str = ""
    name: str = ""
    categories: frozenset[str] = frozenset()
    digest: str = ""


class SubscriptionPages:
    """The subscription routes (``routes``), rendered with the templates and headers of ``pages``."""

    def __init__(
        self,
        provider: SubscriptionProvider,
        *,
        pages: Pages,
        secret: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``secret`` keys the CSRF tokens, which ``clock`` (seconds) times; the provider keeps
        the rate limits."""
        self.provider = provider
        self._pages = pages
        self.csrf = CsrfTokens(secret, clock=clock)
        self.routes = [
            Route("/dang-ky", self.subscribe, methods=["GET", "POST"]),
            Route("/xac-nhan/{token:path}", self.confirm, methods=["GET", "POST"]),
            Route("/tuy-chon/{token:path}", self.preferences, methods=["GET", "POST"]),
            Route("/huy/{token:path}", self.unsubscribe, methods=["GET", "POST"]),
        ]

    # -- routes ---------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":
            return self._subscribe_form(_Choices(digest=self._default_digest()))
        if not self._same_site(request):
            return self._expired("dang-ky")
        try:
            form = await _read_form(request)
        except _BadForm as exc:
            return self._bad_form(exc.status)
        if not self.csrf.valid(form.one(CSRF_FIELD), "subscribe"):
            return self._expired("dang-ky")
        retry = await self.provider.limit_client(client_key(request.scope))
        if retry is not None:
            return self._too_many(retry, "dang-ky")

        address = unicodedata.normalize("NFC", form.one("address").strip())
        name = _clean_name(form.one("name"))
        categories, digest, error = self._choices(form)
        choices = _Choices(address=address, name=name, categories=frozenset(categories), digest=digest)
        error = _address_error(address) or error
        if error is None and len(name) > MAX_NAME:
            error = f"Tên quá dài: tối đa {MAX_NAME} ký tự."
        if error is not None:
            return self._subscribe_form(choices, error=error, status=400)

        try:
            retry = await self.provider.subscribe(
                address=address, display_name=name, categories=categories, digest=digest
            )
        except ValueError as exc:
            return self._subscribe_form(choices, error=str(exc), status=400)
        if retry is not None:
            return self._too_many(retry, "dang-ky")
        return self._render("subscribe_sent.html", home="./")

    async def confirm(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return self._invalid_link()
        if request.method != "POST":  # mail scanners open every link: only the button confirms
            found = await self.provider.confirmation(token)
            if found is None:
                return self._invalid_link()
            if found.state == "expired":
                return self._link_expired()
            subscriber = found.subscriber
            return self._render(
                "subscribe_confirm.html",
                home="../",
                masked=mask_address(subscriber.address),
                digest_title=self._digest_title(subscriber.digest),
                confirmed=found.state == "confirmed",
                csrf=self.csrf.issue("confirm", token),
                preferences=f"../tuy-chon/{token}",
            )
        if not self._same_site(request):
            return self._expired(f"xac-nhan/{token}")
        try:
            form = await _read_form(request)
        except _BadForm as exc:
            return self._bad_form(exc.status)
        if not self.csrf.valid(form.one(CSRF_FIELD), "confirm", token):
            return self._expired(f"xac-nhan/{token}")
        confirmed = await self.provider.confirm(token)
        if confirmed is None:
            return self._invalid_link()
        if confirmed.state != "confirmed":
            return self._link_expired()
        return self._render(
            "subscribe_confirmed.html",
            home="../",
            digest_title=self._digest_title(confirmed.subscriber.digest),
            preferences=f"../tuy-chon/{confirmed.subscriber.token}",
        )

    async def preferences(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return self._invalid_link()
        if request.method != "POST":
            subscriber = await self.provider.subscriber(token)
            return self._invalid_link() if subscriber is None else self._preferences_page(token, subscriber)
        if not self._same_site(request):
            return self._expired(f"tuy-chon/{token}")
        try:
            form = await _read_form(request)
        except _BadForm as exc:
            return self._bad_form(exc.status)
        if not self.csrf.valid(form.one(CSRF_FIELD), "preferences", token):
            return self._expired(f"tuy-chon/{token}")
        categories, digest, error = self._choices(form)
        if error is None:
            try:
                saved = await self.provider.set_preferences(token, categories=categories, digest=digest)
            except ValueError as exc:
                error = str(exc)
            else:
                if saved is None:
                    return self._invalid_link()
                return self._preferences_page(token, saved, saved_message=True)
        subscriber = await self.provider.subscriber(token)
        if subscriber is None:
            return self._invalid_link()
        choices = _Choices(categories=frozenset(categories), digest=digest)
        return self._preferences_page(token, subscriber, choices=choices, error=error, status=400)

    async def unsubscribe(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return self._invalid_link()
        if request.method != "POST":
            subscriber = await self.provider.subscriber(token)
            if subscriber is None:
                return self._invalid_link()
            return self._render(
                "unsubscribe.html",
                home="../",
                masked=mask_address(subscriber.address),
                unsubscribed=subscriber.status == "unsubscribed",
                csrf=self.csrf.issue("unsubscribe", token),
                preferences=f"../tuy-chon/{token}",
                subscribe="../dang-ky",
            )
        try:
            form = await _read_form(request)
        except _BadForm as exc:
            return self._bad_form(exc.status)
        if form.one_click:  # RFC 8058: a mail provider, on the recipient's behalf
            if await self.provider.unsubscribe(token) is None:
                return self._invalid_link()
            return PlainTextResponse("Đã huỷ đăng ký.\n", headers=self._headers())
        if not self._same_site(request) or not self.csrf.valid(form.one(CSRF_FIELD), "unsubscribe", token):
            return self._expired(f"huy/{token}")
        if await self.provider.unsubscribe(token) is None:
            return self._invalid_link()
        return self._render("unsubscribe_done.html", home="../", subscribe="../dang-ky")

    # -- helpers --------------------------------------------------------------------------

    def _choices(self, form: _Form) -> tuple[list[str], str, str | None]:
        """The categories (in display order) and digest a form chose, and what is wrong with them."""
        known = [slug for slug, _ in self.provider.categories()]
        ticked = set(form.all("categories"))
        categories = [slug for slug in known if slug in ticked]
        digest = form.one("digest")
        if not ticked.issubset(known):
            return categories, digest, "Chuyên mục đã chọn không còn tồn tại. Hãy chọn lại."
        if digest not in {name for name, _ in self.provider.digests()}:
            return categories, digest, "Vui lòng chọn một bản tin."
        return categories, digest, None

    def _default_digest(self) -> str:
        digests = self.provider.digests()
        return digests[0][0] if digests else ""

    def _digest_title(self, name: str) -> str:
        return next((title for digest, title in self.provider.digests() if digest == name), name)

    def _same_site(self, request: Request) -> bool:
        """False when the browser says the form was posted from another site."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:  # an old browser or not a browser: the CSRF token decides
            return True
        own = {
            _origin(self._pages.provider.channel().link),
            _origin(f"{request.url.scheme}://{request.headers.get('host', '')}"),
        }
        return _origin(origin) in own

    def _headers(self) -> dict[str, str]:
        # Personal pages, with CSRF tokens: never cached, never indexed. The referrer policy
        # stays strict-origin-when-cross-origin (no path, so no token, leaves the site): with
        # no-referrer, browsers send "Origin: null" with the buttons' POSTs, which _same_site refuses.
        return {**SECURITY_HEADERS, "Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}

    def _render(self, template: str, *, status: int = 200, **context: object) -> HTMLResponse:
        channel = self._pages.provider.channel()
        html = self._pages.templates.get_template(template).render(channel=channel, alternates=(), **context)
        return HTMLResponse(html, status_code=status, headers=self._headers())

    def _subscribe_form(self, choices: _Choices, *, error: str | None = None, status: int = 200) -> Response:
        return self._render(
            "subscribe.html",
            status=status,
            home="./",
            form=choices,
            error=error,
            categories=self.provider.categories(),
            digests=self.provider.digests(),
            csrf=self.csrf.issue("subscribe"),
        )

    def _preferences_page(
        self,
        token: str,
        subscriber: Subscriber,
        *,
        choices: _Choices | None = None,
        error: str | None = None,
        saved_message: bool = False,
        status: int = 200,
    ) -> Response:
        if choices is None:
            choices = _Choices(categories=frozenset(subscriber.categories), digest=subscriber.digest)
        return self._render(
            "preferences.html",
            status=status,
            home="../",
            subscriber=subscriber,
            masked=mask_address(subscriber.address),
            form=choices,
            error=error,
            saved=saved_message,
            categories=self.provider.categories(),
            digests=self.provider.digests(),
            csrf=self.csrf.issue("preferences", token),
            unsubscribe=f"../huy/{subscriber.token}",
            unsubscribe_csrf=self.csrf.issue("unsubscribe", subscriber.token),
            subscribe="../dang-ky",
        )

    def _error(
        self,
        status: int,
        heading: str,
        message: str,
        *,
        retry: str | None = None,
        retry_label: str = "Mở lại trang",
    ) -> Response:
        # Absolute links: a tampered token may hold slashes that would bend relative ones.
        link = self._pages.provider.channel().link
        return self._render(
            "subscribe_error.html",
            status=status,
            home=link,
            heading=heading,
            message=message,
            retry=None if retry is None else f"{link}{retry}",
            retry_label=retry_label,
        )

    def _invalid_link(self) -> Response:
        return self._error(404, *_INVALID_LINK, retry="dang-ky")

    def _link_expired(self) -> Response:
        """410: the confirmation request is too old; the page offers to subscribe again."""
        return self._error(410, *_LINK_EXPIRED, retry="dang-ky", retry_label="Đăng ký lại")

    def _expired(self, retry: str) -> Response:
        """403; ``retry`` is the page to open again, from the site root (``dang-ky``, ``huy/<token>``)."""
        return self._error(403, *_EXPIRED, retry=retry)

    def _bad_form(self, status: int) -> Response:
        return self._error(status, *_BAD_REQUEST[status])

    def _too_many(self, retry_after: float, retry: str) -> Response:
        seconds = math.ceil(retry_after)
        if seconds >= 2 * 3600:
            wait = f"khoảng {math.ceil(seconds / 3600)} giờ"
        else:
            wait = f"khoảng {max(1, math.ceil(seconds / 60))} phút"
        message = (
            "Để hộp thư của mọi người không bị làm phiền, số yêu cầu đăng ký từ mỗi máy, tới mỗi "
            f"địa chỉ và của cả trang đều có giới hạn. Vui lòng thử lại sau {wait}."
        )
        response = self._error(429, _TOO_MANY, message, retry=retry)
        response.headers["Retry-After"] = str(seconds)
        return response

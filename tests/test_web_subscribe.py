"""The subscription pages over real HTTP: uvicorn on a loopback port, httpx as the client.

``FakeSubscriptions`` implements ``SubscriptionProvider`` over a dict, records
every call and keeps the confirmation e-mails it "sent" in ``outbox``; its limits
are plain counters (the real ones, sliding windows in the store, are tested with the
store and end to end in ``test_consent``). The clock is a ``FakeClock``: CSRF expiry
is crossed without sleeping.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from syndication.errors import StoreError
from syndication.types import Channel, Confirmation, FeedDocument, FeedFormat, FeedPage, FeedSpec, Subscriber
from syndication.web.app import FeedProvider, SubscriptionProvider, WebApp, create_app
from syndication.web.proxies import TrustedProxies
from syndication.web.subscribe import CsrfTokens, client_key, mask_address, valid_token
from tests.webserver import AppServer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
SECRET = b"k" * 32

CHANNEL = Channel(
    title="Cổng thông tin Đảng bộ tỉnh",
    link="https://tin.example.vn/",
    description="Tin tức, sự kiện và văn bản của Đảng bộ tỉnh",
    language="vi",
    rights="© Đảng bộ Khối các cơ quan tỉnh",
    ttl=timedelta(minutes=30),
)
CATEGORIES = (
    ("xay-dung-dang", "Xây dựng Đảng"),
    ("kinh-te", "Kinh tế"),
    ("van-hoa-xa-hoi", "Văn hoá – Xã hội"),
)
DIGESTS = (("daily", "Bản tin hằng ngày"), ("weekly", "Bản tin hằng tuần"))

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-content-type-options": "nosniff",
}
SENT = "Kiểm tra hộp thư để xác nhận"
INVALID_LINK = "Liên kết không hợp lệ hoặc đã hết hạn"
EXPIRED = "Phiên làm việc đã hết hạn, vui lòng thử lại"
TOO_MANY = "Bạn đã gửi quá nhiều yêu cầu, vui lòng thử lại sau"
LINK_EXPIRED = "Liên kết xác nhận đã hết hạn"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeFeeds:
    """Just enough of a ``FeedProvider`` for the pages: a channel, no feeds."""

    def feeds(self) -> Sequence[FeedSpec]:
        return ()

    def channel(self) -> Channel:
        return CHANNEL

    def cached(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        return None

    async def document(self, name: str, fmt: FeedFormat, page: int) -> FeedDocument | None:
        return None

    async def latest(self, name: str) -> FeedPage | None:
        return None

    def opml(self) -> FeedDocument:
        raise AssertionError("not used here")

    def stylesheet(self) -> bytes:
        raise AssertionError("not used here")


class FakeSubscriptions:
    """A ``SubscriptionProvider`` over a dict of subscribers by address; one token each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.subscribers: dict[str, Subscriber] = {}
        self.outbox: list[tuple[str, str]] = []
        """(address, token) of every confirmation e-mail sent."""
        self.failure: Exception | None = None
        self.clients: list[str] = []
        """The client of every subscribe request counted (``limit_client``), in order."""
        self.client_limit = 1000
        self.client_wait = 1800.2
        """Seconds a client over ``client_limit`` is told to wait."""
        self.mailbox_wait: float | None = None
        """When set, ``subscribe`` answers it: the mailbox's or the site's limit is reached."""
        self.requests: set[str] = set()
        """Tokens with an open opt-in request beside an unsubscribed status."""
        self.expired: set[str] = set()
        """Tokens whose opt-in request expired."""

    def add(self, address: str, status: str = "active", **changes: object) -> Subscriber:
        values: dict[str, object] = {
            "id": len(self.subscribers) + 1,
            "address": address,
            "display_name": "Chi bộ Văn phòng",
            "organisation": None,
            "categories": (),
            "digest": "daily",
            "status": status,
            "token": secrets.token_urlsafe(32),
            "created": NOW,
        }
        values.update(changes)
        subscriber = Subscriber(**values)  # type: ignore[arg-type]
        self.subscribers[address] = subscriber
        return subscriber

    def get(self, address: str) -> Subscriber:
        return self.subscribers[address]

    def calls_of(self, method: str) -> list[object]:
        return [args for name, args in self.calls if name == method]

    def _by_token(self, token: str) -> Subscriber | None:
        return next((s for s in self.subscribers.values() if s.token == token), None)

    def _update(self, subscriber: Subscriber, **changes: object) -> Subscriber:
        values = {name: getattr(subscriber, name) for name in Subscriber.__dataclass_fields__}
        values.update(changes)
        updated = Subscriber(**values)
        self.subscribers[updated.address] = updated
        return updated

    def categories(self) -> Sequence[tuple[str, str]]:
        return CATEGORIES

    def digests(self) -> Sequence[tuple[str, str]]:
        return DIGESTS

    async def limit_client(self, client: str) -> float | None:
        if self.clients.count(client) >= self.client_limit:
            return self.client_wait
        self.clients.append(client)
        return None

    async def subscribe(
        self, *, address: str, display_name: str, categories: Sequence[str], digest: str
    ) -> float | None:
        self.calls.append(
            (
                "subscribe",
                {"address": address, "name": display_name, "categories": tuple(categories), "digest": digest},
            )
        )
        if self.failure is not None:
            raise self.failure
        if address.endswith("@khong-nhan-thu.example.vn"):
            raise ValueError("Tên miền của địa chỉ này không nhận thư.")
        if self.mailbox_wait is not None:
            return self.mailbox_wait
        address = address.lower()
        existing = self.subscribers.get(address)
        if existing is None:
            existing = self.add(
                address, "pending", display_name=display_name, categories=tuple(categories), digest=digest
            )
        elif existing.status in ("pending", "unsubscribed"):
            existing = self._update(existing, token=secrets.token_urlsafe(32))
            self.requests.add(existing.token)
        self.outbox.append((address, existing.token))
        return None

    def _confirmation(self, token: str) -> Confirmation | None:
        subscriber = self._by_token(token)
        if subscriber is None:
            return None
        if subscriber.status == "active":
            return Confirmation(subscriber=subscriber, state="confirmed")
        if subscriber.status != "pending" and token not in self.requests:
            return None
        return Confirmation(subscriber=subscriber, state="expired" if token in self.expired else "open")

    async def confirmation(self, token: str) -> Confirmation | None:
        self.calls.append(("confirmation", token))
        return self._confirmation(token)

    async def confirm(self, token: str) -> Confirmation | None:
        self.calls.append(("confirm", token))
        found = self._confirmation(token)
        if found is None or found.state != "open":
            return found
        self.requests.discard(token)
        return Confirmation(
            subscriber=self._update(found.subscriber, status="active", confirmed=NOW), state="confirmed"
        )

    async def subscriber(self, token: str) -> Subscriber | None:
        self.calls.append(("subscriber", token))
        if self.failure is not None:
            raise self.failure
        return self._by_token(token)

    async def set_preferences(
        self, token: str, *, categories: Sequence[str], digest: str
    ) -> Subscriber | None:
        self.calls.append(("set_preferences", (token, tuple(categories), digest)))
        subscriber = self._by_token(token)
        if subscriber is None:
            return None
        return self._update(subscriber, categories=tuple(categories), digest=digest)

    async def unsubscribe(self, token: str) -> Subscriber | None:
        self.calls.append(("unsubscribe", token))
        subscriber = self._by_token(token)
        if subscriber is None:
            return None
        return self._update(subscriber, status="unsubscribed")


def _is_provider(provider: FakeSubscriptions) -> SubscriptionProvider:
    return provider  # mypy checks here that the fake keeps to the Protocol


def _is_feed_provider(provider: FakeFeeds) -> FeedProvider:
    return provider


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def subscriptions() -> FakeSubscriptions:
    return FakeSubscriptions()


def make_app(subscriptions: FakeSubscriptions, clock: FakeClock, **kw: object) -> WebApp:
    return create_app(
        _is_feed_provider(FakeFeeds()),
        templates_dir=TEMPLATES,
        subscriptions=_is_provider(subscriptions),
        secret=SECRET,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def running_server() -> Iterator[AppServer]:
    with AppServer(_no_app) as running:
        yield running


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a request reached the server between tests")


@pytest.fixture
def serve(running_server: AppServer) -> Iterator[AppServer]:
    """The module's server; a test puts its own app in ``serve.app``."""
    yield running_server
    running_server.app = _no_app


@pytest.fixture
def app(subscriptions: FakeSubscriptions, clock: FakeClock) -> WebApp:
    return make_app(subscriptions, clock)


@pytest.fixture
def client(serve: AppServer, app: WebApp) -> Iterator[httpx.Client]:
    serve.app = app
    with httpx.Client(base_url=serve.base_url) as opened:
        yield opened


def csrf_tokens(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="csrf" value="([^"]+)">', html)


def subscribe_form(client: httpx.Client, **fields: object) -> httpx.Response:
    """Open the form, then post it with ``fields`` over the defaults."""
    csrf = csrf_tokens(client.get("/dang-ky").text)[0]
    data: dict[str, object] = {"csrf": csrf, "address": "vanphong@example.org", "name": "", "digest": "daily"}
    data.update(fields)
    return client.post("/dang-ky", data=data)


def assert_page(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["cache-control"] == "no-store"
    assert '<html lang="vi">' in response.text
    return response.text


def multipart_one_click() -> tuple[bytes, str]:
    """The body a mail provider sends as multipart/form-data (RFC 8058 §3.1 allows either)."""
    boundary = "----one-click-7MA4YWxkTrZu0gW"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


# --- subscribe, confirm, preferences, unsubscribe -----------------------------------------


def test_subscribe_form(client: httpx.Client) -> None:
    html = assert_page(client.get("/dang-ky"), 200)

    assert "<h1>Đăng ký nhận bản tin qua thư điện tử</h1>" in html
    assert 'name="address" type="email" required' in html
    assert 'name="name" type="text"' in html
    for slug, title in CATEGORIES:
        assert f'<input type="checkbox" name="categories" value="{slug}"> {title}</label>' in html
    assert '<input type="radio" name="digest" value="daily" required checked> Bản tin hằng ngày' in html
    assert '<input type="radio" name="digest" value="weekly" required> Bản tin hằng tuần' in html
    assert len(csrf_tokens(html)) == 1
    assert "Không chọn chuyên mục nào để nhận tin của tất cả chuyên mục." in html
    assert "<script" not in html


def test_double_opt_in(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    response = subscribe_form(
        client,
        address="VanPhong@Example.org ",
        name="  Chi bộ\r\nVăn phòng ",
        categories=["kinh-te", "xay-dung-dang"],
        digest="weekly",
    )

    html = assert_page(response, 200)
    assert f"<h1>{SENT}</h1>" in html
    assert subscriptions.calls_of("subscribe") == [
        {
            "address": "VanPhong@Example.org",
            "name": "Chi bộ Văn phòng",
            "categories": ("xay-dung-dang", "kinh-te"),  # in display order
            "digest": "weekly",
        }
    ]
    [(address, token)] = subscriptions.outbox
    assert subscriptions.get(address).status == "pending"

    page = assert_page(client.get(f"/xac-nhan/{token}"), 200)

    assert subscriptions.get(address).status == "pending"  # a GET changes nothing
    assert "<h1>Xác nhận đăng ký nhận bản tin</h1>" in page
    assert "<strong>va***@example.org</strong>" in page
    [confirm_csrf] = csrf_tokens(page)

    confirmed = assert_page(client.post(f"/xac-nhan/{token}", data={"csrf": confirm_csrf}), 200)

    assert subscriptions.get(address).status == "active"
    assert "<h1>Đã xác nhận đăng ký</h1>" in confirmed
    assert "<strong>Bản tin hằng tuần</strong>" in confirmed
    assert f'href="../tuy-chon/{token}"' in confirmed
    assert address not in confirmed

    preferences = assert_page(client.get(f"/tuy-chon/{token}"), 200)

    assert "Địa chỉ: <strong>va***@example.org</strong> (Chi bộ Văn phòng)" in preferences
    assert "vanphong@" not in preferences.lower()
    assert '<input type="checkbox" name="categories" value="kinh-te" checked>' in preferences
    assert '<input type="checkbox" name="categories" value="van-hoa-xa-hoi">' in preferences
    assert '<input type="radio" name="digest" value="weekly" required checked>' in preferences
    assert f'<form method="post" action="../huy/{token}">' in preferences
    save_csrf, _ = csrf_tokens(preferences)

    saved = client.post(
        f"/tuy-chon/{token}", data={"csrf": save_csrf, "categories": "van-hoa-xa-hoi", "digest": "daily"}
    )

    html = assert_page(saved, 200)
    assert "Đã lưu tuỳ chọn." in html
    assert subscriptions.get(address).categories == ("van-hoa-xa-hoi",)
    assert subscriptions.get(address).digest == "daily"
    assert '<input type="checkbox" name="categories" value="van-hoa-xa-hoi" checked>' in html

    page = assert_page(client.get(f"/huy/{token}"), 200)

    assert subscriptions.get(address).status == "active"  # a GET changes nothing
    assert "va***@example.org" in page
    [unsubscribe_csrf] = csrf_tokens(page)

    done = client.post(f"/huy/{token}", data={"csrf": unsubscribe_csrf})

    assert "<h1>Đã huỷ đăng ký</h1>" in assert_page(done, 200)
    assert subscriptions.get(address).status == "unsubscribed"
    assert "đã huỷ đăng ký" in assert_page(client.get(f"/huy/{token}"), 200)


def test_unsubscribe_button_on_the_preferences_page(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriber = subscriptions.add("bithu@example.org")
    page = client.get(f"/tuy-chon/{subscriber.token}").text
    _, unsubscribe_csrf = csrf_tokens(page)

    done = client.post(f"/huy/{subscriber.token}", data={"csrf": unsubscribe_csrf})

    assert done.status_code == 200
    assert subscriptions.get(subscriber.address).status == "unsubscribed"
    assert "đã huỷ đăng ký" in client.get(f"/tuy-chon/{subscriber.token}").text


@pytest.mark.parametrize("status", ["new", "pending", "active", "unsubscribed", "bounced"])
def test_the_same_answer_whatever_the_address_is(
    client: httpx.Client, subscriptions: FakeSubscriptions, status: str
) -> None:
    reference = subscribe_form(client, address="moi-tinh@example.org")
    address = "dangky@example.org"
    if status != "new":
        subscriptions.add(address, status)

    response = subscribe_form(client, address=address)

    assert response.status_code == reference.status_code == 200
    assert response.content == reference.content
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    assert headers == {k: v for k, v in reference.headers.items() if k != "date"}
    assert SENT in response.text
    assert address not in response.text


def test_an_invalid_address_shows_the_form_again_with_the_values(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    response = subscribe_form(
        client,
        address="vanphong.example.org",
        name="Chi bộ <script>alert(1)</script>",
        categories=["kinh-te"],
        digest="weekly",
    )

    html = assert_page(response, 400)
    assert "Địa chỉ thư điện tử không hợp lệ." in html
    assert 'value="vanphong.example.org"' in html
    assert 'value="Chi bộ &lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert "<script>" not in html
    assert '<input type="checkbox" name="categories" value="kinh-te" checked>' in html
    assert '<input type="checkbox" name="categories" value="xay-dung-dang">' in html
    assert '<input type="radio" name="digest" value="weekly" required checked>' in html
    assert len(csrf_tokens(html)) == 1  # a fresh token: the form can be sent again
    assert subscriptions.calls == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": ""}, "Vui lòng nhập địa chỉ thư điện tử."),
        ({"address": "a@b"}, "Địa chỉ thư điện tử không hợp lệ."),
        ({"address": "a b@example.org"}, "Địa chỉ thư điện tử không hợp lệ."),
        ({"address": "x@example.org\r\nBcc: y@example.org"}, "Địa chỉ thư điện tử không hợp lệ."),
        ({"address": "a" * 65 + "@example.org"}, "Địa chỉ thư điện tử không hợp lệ."),
        (
            {"address": "=?utf-8?q?v=0D=0ABcc=3A_evil=40evil.example?=@example.org"},
            "Địa chỉ thư điện tử không hợp lệ.",
        ),
        ({"address": "nguyễn.văn.a@example.org"}, "Phần trước dấu @ chỉ dùng chữ không dấu"),
        ({"address": "van-phong@mien.invalid"}, "Địa chỉ thư điện tử không hợp lệ."),
        ({"name": "Đ" * 201}, "Tên quá dài"),
        ({"categories": "khong-co"}, "Chuyên mục đã chọn không còn tồn tại."),
        ({"digest": "monthly"}, "Vui lòng chọn một bản tin."),
        ({"digest": ""}, "Vui lòng chọn một bản tin."),
    ],
)
def test_invalid_input_is_refused_before_the_provider(
    client: httpx.Client, subscriptions: FakeSubscriptions, fields: dict[str, str], message: str
) -> None:
    response = subscribe_form(client, **fields)

    assert message in assert_page(response, 400)
    assert subscriptions.calls == []


def test_the_providers_refusal_is_shown_and_costs_no_confirmation(
    serve: AppServer, subscriptions: FakeSubscriptions, clock: FakeClock
) -> None:
    serve.app = make_app(subscriptions, clock)
    with httpx.Client(base_url=serve.base_url) as client:
        for _ in range(3):
            response = subscribe_form(client, address="vanphong@khong-nhan-thu.example.vn", name="Văn phòng")
            html = assert_page(response, 400)
            assert "Tên miền của địa chỉ này không nhận thư." in html
            assert 'value="Văn phòng"' in html

    assert len(subscriptions.calls_of("subscribe")) == 3
    assert subscriptions.outbox == []


def test_a_store_failure_is_503(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriptions.failure = StoreError("database is locked")

    response = subscribe_form(client)

    assert response.status_code == 503
    assert "thử lại" in response.text
    assert "database" not in response.text


def test_pages_are_absent_without_a_provider(serve: AppServer) -> None:
    serve.app = create_app(FakeFeeds(), templates_dir=TEMPLATES)

    response = httpx.get(serve.url("/dang-ky"))

    assert response.status_code == 404
    assert "Không tìm thấy trang" in response.text


# --- confirmation: the link opens a page, only its button confirms ---------------------------


@pytest.mark.parametrize("request_as", ["GET", "GET following redirects", "HEAD"])
def test_opening_the_confirmation_link_confirms_nothing(
    client: httpx.Client, subscriptions: FakeSubscriptions, request_as: str
) -> None:
    subscriber = subscriptions.add("nannhan@example.org", "pending")
    method, _, follow = request_as.partition(" ")

    # As a mail scanner fetches it: a fresh client, no cookies, no Origin, no Referer.
    response = httpx.request(
        method, client.base_url.join(f"/xac-nhan/{subscriber.token}"), follow_redirects=bool(follow)
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert subscriptions.get(subscriber.address).status == "pending"
    assert subscriptions.calls_of("confirm") == []


def test_the_confirmation_page(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriber = subscriptions.add("nguyenvana@example.org", "pending", digest="weekly")

    html = assert_page(client.get(f"/xac-nhan/{subscriber.token}"), 200)

    assert "<h1>Xác nhận đăng ký nhận bản tin</h1>" in html
    assert "<strong>Bản tin hằng tuần</strong>" in html
    assert "<strong>ng***@example.org</strong>" in html
    assert "nguyenvana" not in html
    assert '<form method="post">' in html
    assert '<button type="submit">Xác nhận đăng ký</button>' in html
    assert len(csrf_tokens(html)) == 1
    assert "<script" not in html
    assert subscriptions.get(subscriber.address).status == "pending"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser, or an old one: the CSRF token decides
        {"Sec-Fetch-Site": "same-origin"},  # what a browser sends for the page's own button
        {"Origin": "https://tin.example.vn", "Sec-Fetch-Site": "same-origin"},  # behind a proxy
    ],
)
def test_the_button_confirms(
    client: httpx.Client, serve: AppServer, subscriptions: FakeSubscriptions, headers: dict[str, str]
) -> None:
    subscriber = subscriptions.add("nannhan@example.org", "pending")
    [csrf] = csrf_tokens(client.get(f"/xac-nhan/{subscriber.token}").text)

    response = client.post(f"/xac-nhan/{subscriber.token}", data={"csrf": csrf}, headers=headers)

    html = assert_page(response, 200)
    assert "<h1>Đã xác nhận đăng ký</h1>" in html
    assert f'href="../tuy-chon/{subscriber.token}"' in html
    assert subscriptions.get(subscriber.address).status == "active"
    assert subscriptions.calls_of("confirm") == [subscriber.token]


@pytest.mark.parametrize(
    "csrf", ["missing", "empty", "tampered", "expired", "other purpose", "other token", "as a query"]
)
def test_the_button_needs_a_valid_csrf_token(
    client: httpx.Client, subscriptions: FakeSubscriptions, clock: FakeClock, csrf: str
) -> None:
    subscriber = subscriptions.add("nannhan@example.org", "pending")
    other = subscriptions.add("khac@example.org", "pending")
    [valid] = csrf_tokens(client.get(f"/xac-nhan/{subscriber.token}").text)
    data: dict[str, str] = {}
    path = f"/xac-nhan/{subscriber.token}"
    if csrf == "empty":
        data["csrf"] = ""
    elif csrf == "tampered":
        issued, _, mac = valid.partition(".")
        data["csrf"] = f"{issued}.{('A' if mac[0] != 'A' else 'B')}{mac[1:]}"
    elif csrf == "expired":
        data["csrf"] = valid
        clock.advance(2 * 3600 + 1)
    elif csrf == "other purpose":
        data["csrf"] = csrf_tokens(client.get(f"/huy/{subscriber.token}").text)[0]
    elif csrf == "other token":
        [data["csrf"]] = csrf_tokens(client.get(f"/xac-nhan/{other.token}").text)
    elif csrf == "as a query":  # a link holding the token must not confirm either
        path += f"?csrf={valid}"
    subscriptions.calls.clear()

    response = client.post(path, data=data)

    html = assert_page(response, 403)
    assert f"<h1>{EXPIRED}</h1>" in html
    assert f'href="https://tin.example.vn/xac-nhan/{subscriber.token}"' in html  # a fresh button there
    assert subscriptions.calls == []
    assert subscriptions.get(subscriber.address).status == "pending"
    assert subscriptions.get(other.address).status == "pending"


def test_confirming_an_unknown_token_is_404_and_reveals_nothing(
    client: httpx.Client, app: WebApp, subscriptions: FakeSubscriptions
) -> None:
    known = subscriptions.add("nannhan@example.org", "pending")
    unknown = secrets.token_urlsafe(32)
    assert app.subscriptions is not None
    csrf = app.subscriptions.csrf.issue("confirm", unknown)  # as if the page had been opened
    reference = client.get(f"/xac-nhan/{secrets.token_urlsafe(32)}")

    response = client.post(f"/xac-nhan/{unknown}", data={"csrf": csrf})
    malformed = client.post("/xac-nhan/ngan", data={"csrf": csrf})
    # Without a CSRF token, an unknown and a known token get the same refusal, before any lookup.
    unknown_refused = client.post(f"/xac-nhan/{unknown}")
    known_refused = client.post(f"/xac-nhan/{known.token}")

    assert INVALID_LINK in assert_page(response, 404)
    assert response.content == malformed.content == reference.content
    assert "nannhan" not in response.text
    assert unknown_refused.status_code == known_refused.status_code == 403
    assert unknown_refused.content == known_refused.content.replace(known.token.encode(), unknown.encode())
    assert subscriptions.calls_of("confirm") == [unknown]
    assert subscriptions.get(known.address).status == "pending"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_active_subscriber_is_told_it_is_already_confirmed(
    client: httpx.Client, subscriptions: FakeSubscriptions, method: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org")

    response = client.request(method, f"/xac-nhan/{subscriber.token}")

    assert response.status_code == 200
    assert subscriptions.calls == [("confirmation", subscriber.token)]
    if method == "GET":
        html = assert_page(response, 200)
        assert "<h1>Đăng ký đã được xác nhận</h1>" in html
        assert "<strong>bi***@example.org</strong>" in html
        assert "<strong>Bản tin hằng ngày</strong>" in html
        assert f'href="../tuy-chon/{subscriber.token}"' in html
        assert "<button" not in html
        assert csrf_tokens(html) == []


@pytest.mark.parametrize("status", ["unsubscribed", "bounced"])
def test_the_link_of_a_subscriber_who_left_is_dead(
    client: httpx.Client, app: WebApp, subscriptions: FakeSubscriptions, status: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org", status)
    reference = client.get(f"/xac-nhan/{secrets.token_urlsafe(32)}").content
    assert app.subscriptions is not None
    csrf = app.subscriptions.csrf.issue("confirm", subscriber.token)

    page = client.get(f"/xac-nhan/{subscriber.token}")
    pressed = client.post(f"/xac-nhan/{subscriber.token}", data={"csrf": csrf})

    assert page.status_code == pressed.status_code == 404
    assert page.content == pressed.content == reference
    assert subscriptions.get(subscriber.address).status == status


def test_an_expired_link_offers_to_subscribe_again(
    client: httpx.Client, app: WebApp, subscriptions: FakeSubscriptions
) -> None:
    subscriber = subscriptions.add("nannhan@example.org", "pending")
    subscriptions.expired.add(subscriber.token)
    assert app.subscriptions is not None
    csrf = app.subscriptions.csrf.issue("confirm", subscriber.token)  # a page opened in time

    page = client.get(f"/xac-nhan/{subscriber.token}")
    pressed = client.post(f"/xac-nhan/{subscriber.token}", data={"csrf": csrf})

    for response in (page, pressed):
        html = assert_page(response, 410)
        assert f"<h1>{LINK_EXPIRED}</h1>" in html
        assert '<a href="https://tin.example.vn/dang-ky">Đăng ký lại</a>' in html
        assert csrf_tokens(html) == []
        assert "nannhan" not in html
    assert page.content == pressed.content
    assert subscriptions.get(subscriber.address).status == "pending"


def test_an_unsubscribed_address_with_a_new_request_confirms_with_the_button(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriptions.add("bithu@example.org", "unsubscribed")
    subscribe_form(client, address="bithu@example.org")
    [(_, token)] = subscriptions.outbox
    assert subscriptions.get("bithu@example.org").status == "unsubscribed"

    page = assert_page(client.get(f"/xac-nhan/{token}"), 200)
    [csrf] = csrf_tokens(page)
    assert "<h1>Xác nhận đăng ký nhận bản tin</h1>" in page

    assert "<h1>Đã xác nhận đăng ký</h1>" in client.post(f"/xac-nhan/{token}", data={"csrf": csrf}).text
    assert subscriptions.get("bithu@example.org").status == "active"


# --- cross-site request forgery ------------------------------------------------------------


@pytest.mark.parametrize("csrf", ["missing", "empty", "forged", "expired", "other purpose", "not ascii"])
def test_subscribe_needs_a_valid_csrf_token(
    client: httpx.Client, subscriptions: FakeSubscriptions, clock: FakeClock, csrf: str
) -> None:
    data = {"address": "vanphong@example.org", "digest": "daily"}
    valid = csrf_tokens(client.get("/dang-ky").text)[0]
    if csrf == "empty":
        data["csrf"] = ""
    elif csrf == "forged":
        issued, _, mac = valid.partition(".")
        data["csrf"] = f"{int(issued) + 60}.{mac}"
    elif csrf == "expired":
        data["csrf"] = valid
        clock.advance(2 * 3600 + 1)
    elif csrf == "other purpose":
        subscriber = subscriptions.add("bithu@example.org")
        subscriptions.calls.clear()
        data["csrf"] = csrf_tokens(client.get(f"/tuy-chon/{subscriber.token}").text)[0]
        subscriptions.calls.clear()
    elif csrf == "not ascii":
        data["csrf"] = valid[:-1] + "đ"

    response = client.post("/dang-ky", data=data)

    html = assert_page(response, 403)
    assert f"<h1>{EXPIRED}</h1>" in html
    assert 'href="https://tin.example.vn/dang-ky"' in html
    assert subscriptions.calls == []


def test_a_csrf_token_lasts_two_hours(
    client: httpx.Client, subscriptions: FakeSubscriptions, clock: FakeClock
) -> None:
    csrf = csrf_tokens(client.get("/dang-ky").text)[0]
    clock.advance(2 * 3600 - 1)

    response = client.post(
        "/dang-ky", data={"csrf": csrf, "address": "vanphong@example.org", "digest": "daily"}
    )

    assert response.status_code == 200
    assert len(subscriptions.calls_of("subscribe")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://tin.example.vn"},  # not the site's https origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_posts_are_refused(
    client: httpx.Client, subscriptions: FakeSubscriptions, headers: dict[str, str]
) -> None:
    subscriber = subscriptions.add("bithu@example.org")
    pending = subscriptions.add("moi@example.org", "pending")
    subscribe_csrf = csrf_tokens(client.get("/dang-ky").text)[0]
    save_csrf, unsubscribe_csrf = csrf_tokens(client.get(f"/tuy-chon/{subscriber.token}").text)
    [confirm_csrf] = csrf_tokens(client.get(f"/xac-nhan/{pending.token}").text)
    subscriptions.calls.clear()

    responses = [
        client.post(
            "/dang-ky",
            data={"csrf": subscribe_csrf, "address": "x@example.org", "digest": "daily"},
            headers=headers,
        ),
        client.post(
            f"/tuy-chon/{subscriber.token}", data={"csrf": save_csrf, "digest": "weekly"}, headers=headers
        ),
        client.post(f"/huy/{subscriber.token}", data={"csrf": unsubscribe_csrf}, headers=headers),
        client.post(f"/xac-nhan/{pending.token}", data={"csrf": confirm_csrf}, headers=headers),
    ]

    for response in responses:
        assert EXPIRED in assert_page(response, 403)
    assert subscriptions.calls == []
    assert subscriptions.get(subscriber.address).status == "active"
    assert subscriptions.get(pending.address).status == "pending"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://tin.example.vn"},  # the public address, behind a proxy
        {"Origin": "https://TIN.example.vn:443"},
        {"Sec-Fetch-Site": "same-origin"},
        {},
    ],
)
def test_same_site_posts_are_accepted(
    client: httpx.Client, serve: AppServer, subscriptions: FakeSubscriptions, headers: dict[str, str]
) -> None:
    csrf = csrf_tokens(client.get("/dang-ky").text)[0]

    response = client.post(
        "/dang-ky", data={"csrf": csrf, "address": "x@example.org", "digest": "daily"}, headers=headers
    )
    own = client.post(
        "/dang-ky",
        data={"csrf": csrf, "address": "y@example.org", "digest": "daily"},
        headers={"Origin": serve.base_url},
    )

    assert response.status_code == own.status_code == 200


def test_preferences_need_the_token_of_their_own_page(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    one = subscriptions.add("mot@example.org")
    other = subscriptions.add("hai@example.org")
    save_csrf, unsubscribe_csrf = csrf_tokens(client.get(f"/tuy-chon/{one.token}").text)
    subscriptions.calls.clear()

    saved = client.post(f"/tuy-chon/{other.token}", data={"csrf": save_csrf, "digest": "weekly"})
    unsubscribed = client.post(f"/huy/{other.token}", data={"csrf": unsubscribe_csrf})
    swapped = client.post(f"/huy/{one.token}", data={"csrf": save_csrf})

    assert saved.status_code == unsubscribed.status_code == swapped.status_code == 403
    assert subscriptions.calls == []


def test_invalid_preferences_keep_the_choices(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriber = subscriptions.add("bithu@example.org", display_name="Bí thư <script>x</script>")
    save_csrf, _ = csrf_tokens(client.get(f"/tuy-chon/{subscriber.token}").text)

    response = client.post(
        f"/tuy-chon/{subscriber.token}", data={"csrf": save_csrf, "categories": "kinh-te", "digest": "hourly"}
    )

    html = assert_page(response, 400)
    assert "Vui lòng chọn một bản tin." in html
    assert '<input type="checkbox" name="categories" value="kinh-te" checked>' in html
    assert "(Bí thư &lt;script&gt;x&lt;/script&gt;)" in html
    assert "<script>" not in html
    assert subscriptions.calls_of("set_preferences") == []


# --- one-click unsubscribe (RFC 8058) ------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribes_without_a_csrf_token(
    client: httpx.Client, subscriptions: FakeSubscriptions, encoding: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org")
    if encoding == "urlencoded":
        body, content_type = b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    else:
        body, content_type = multipart_one_click()

    # As a mail provider sends it: no cookies, no Origin, no Referer.
    response = httpx.post(
        client.base_url.join(f"/huy/{subscriber.token}"), content=body, headers={"Content-Type": content_type}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Đã huỷ đăng ký.\n"
    assert subscriptions.get(subscriber.address).status == "unsubscribed"

    again = httpx.post(
        client.base_url.join(f"/huy/{subscriber.token}"), content=body, headers={"Content-Type": content_type}
    )

    assert again.status_code == 200  # idempotent


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"List-Unsubscribe=One-Click&x=1", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=Yes", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click", "text/plain"),
        (b"", "application/x-www-form-urlencoded"),
    ],
)
def test_anything_else_than_one_click_needs_a_csrf_token(
    client: httpx.Client, subscriptions: FakeSubscriptions, body: bytes, content_type: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org")

    response = client.post(f"/huy/{subscriber.token}", content=body, headers={"Content-Type": content_type})

    assert EXPIRED in assert_page(response, 403)
    assert subscriptions.get(subscriber.address).status == "active"


def test_one_click_for_an_unknown_token_is_404(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    unknown = secrets.token_urlsafe(32)

    response = client.post(f"/huy/{unknown}", data={"List-Unsubscribe": "One-Click"})
    malformed = client.post("/huy/ngan", data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == malformed.status_code == 404
    assert response.content == malformed.content
    assert subscriptions.calls == [("unsubscribe", unknown)]


def test_get_and_head_change_nothing(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    pending = subscriptions.add("moi@example.org", "pending")
    active = subscriptions.add("bithu@example.org")

    for method in ("GET", "HEAD"):
        assert client.request(method, f"/huy/{active.token}").status_code == 200
        assert client.request(method, f"/tuy-chon/{active.token}").status_code == 200
        assert client.request(method, f"/xac-nhan/{pending.token}").status_code == 200

    assert subscriptions.get(active.address).status == "active"
    assert subscriptions.get(pending.address).status == "pending"
    assert {name for name, _ in subscriptions.calls} == {"subscriber", "confirmation"}  # reads only


def test_a_large_body_is_refused(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriber = subscriptions.add("bithu@example.org")

    response = client.post(
        f"/huy/{subscriber.token}", data={"List-Unsubscribe": "One-Click", "x": "a" * 40_000}
    )
    chunked = client.post(
        f"/huy/{subscriber.token}",
        content=iter([b"List-Unsubscribe=One-Click&x="] + [b"a" * 1000] * 40),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == chunked.status_code == 413
    assert subscriptions.calls == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"csrf=%FF%FE", "application/x-www-form-urlencoded"),
        (b"\xff\xfe=1", "application/x-www-form-urlencoded"),
        (b"&".join([b"categories=kinh-te"] * 300), "application/x-www-form-urlencoded"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        (b"x", "multipart/form-data"),
        (
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
)
def test_an_unreadable_body_is_400(
    client: httpx.Client, subscriptions: FakeSubscriptions, body: bytes, content_type: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org")

    for path in ("/dang-ky", f"/tuy-chon/{subscriber.token}", f"/huy/{subscriber.token}"):
        response = client.post(path, content=body, headers={"Content-Type": content_type})
        assert "Yêu cầu không hợp lệ" in assert_page(response, 400)
    assert subscriptions.calls == []


def test_a_token_that_goes_away_between_page_and_post(
    client: httpx.Client, app: WebApp, subscriptions: FakeSubscriptions
) -> None:
    gone = secrets.token_urlsafe(32)
    assert app.subscriptions is not None
    csrf = app.subscriptions.csrf

    saved = client.post(
        f"/tuy-chon/{gone}", data={"csrf": csrf.issue("preferences", gone), "digest": "daily"}
    )
    refused = client.post(f"/tuy-chon/{gone}", data={"csrf": csrf.issue("preferences", gone), "digest": "x"})
    unsubscribed = client.post(f"/huy/{gone}", data={"csrf": csrf.issue("unsubscribe", gone)})
    confirmed = client.post(f"/xac-nhan/{gone}", data={"csrf": csrf.issue("confirm", gone)})

    for response in (saved, refused, unsubscribed, confirmed):
        assert INVALID_LINK in assert_page(response, 404)


def test_the_providers_refusal_of_preferences_is_shown(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriber = subscriptions.add("bithu@example.org")
    save_csrf, _ = csrf_tokens(client.get(f"/tuy-chon/{subscriber.token}").text)

    async def refuse(token: str, *, categories: Sequence[str], digest: str) -> Subscriber | None:
        raise ValueError("Không lưu được: bản tin này tạm ngừng.")

    subscriptions.set_preferences = refuse  # type: ignore[method-assign]
    response = client.post(f"/tuy-chon/{subscriber.token}", data={"csrf": save_csrf, "digest": "weekly"})

    html = assert_page(response, 400)
    assert "Không lưu được: bản tin này tạm ngừng." in html
    assert '<input type="radio" name="digest" value="weekly" required checked>' in html


# --- tokens ---------------------------------------------------------------------------------


def _tampered(token: str) -> list[str]:
    changed = ("A" if token[5] != "A" else "B").join((token[:5], token[6:]))
    return [
        changed,  # one character changed: well-formed but unknown
        token[:19],  # too short
        token + "x" * 70,  # too long
        token[:-1] + "%C3%A9",  # é
        "%C4%90" * 30,  # Đ
        token[:-1] + "%EF%BC%91",  # fullwidth digit one
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        token + "%2F..",
        token + "%00",
        token + "%0A",
        "",
    ]


@pytest.mark.parametrize("route", ["xac-nhan", "tuy-chon", "huy"])
def test_tampered_tokens_are_404_like_unknown_ones(
    client: httpx.Client, subscriptions: FakeSubscriptions, route: str
) -> None:
    subscriber = subscriptions.add("bithu@example.org", "pending")
    reference = client.get(f"/{route}/{secrets.token_urlsafe(32)}")
    html = assert_page(reference, 404)
    assert f"<h1>{INVALID_LINK}</h1>" in html
    assert "bithu" not in html

    for tampered in _tampered(subscriber.token):
        response = client.get(f"/{route}/{tampered}")
        assert response.status_code == 404, tampered
        assert response.content == reference.content, tampered

    # Only well-formed tokens reach the provider: the reference and the one-character change.
    looked_up = [args for _, args in subscriptions.calls]
    assert len(looked_up) == 2
    assert all(isinstance(token, str) and valid_token(token) for token in looked_up)
    assert subscriptions.get(subscriber.address).status == "pending"


def test_tampered_tokens_on_posts_are_404(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriber = subscriptions.add("bithu@example.org")
    reference = client.get(f"/huy/{secrets.token_urlsafe(32)}").content
    subscriptions.calls.clear()

    for tampered in _tampered(subscriber.token)[1:]:
        for path in (f"/huy/{tampered}", f"/tuy-chon/{tampered}", f"/xac-nhan/{tampered}"):
            response = client.post(path, data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 404, path
            assert response.content == reference, path

    assert subscriptions.calls == []
    assert subscriptions.get(subscriber.address).status == "active"


def test_a_confirmation_link_shows_no_address(client: httpx.Client, subscriptions: FakeSubscriptions) -> None:
    subscriber = subscriptions.add("nguyenvana@example.org", "pending")
    [csrf] = csrf_tokens(client.get(f"/xac-nhan/{subscriber.token}").text)

    html = client.post(f"/xac-nhan/{subscriber.token}", data={"csrf": csrf}).text

    assert "<h1>Đã xác nhận đăng ký</h1>" in html
    assert "nguyenvana" not in html


# --- rate limits ----------------------------------------------------------------------------


def test_a_client_over_its_limit_is_told_when_to_come_back(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriptions.client_limit = 3
    accepted = [subscribe_form(client, address=f"nguoi{n}@example.org") for n in range(3)]
    refused = subscribe_form(client, address="nguoi4@example.org")

    assert [r.status_code for r in accepted] == [200, 200, 200]
    html = assert_page(refused, 429)
    assert f"<h1>{TOO_MANY}</h1>" in html
    assert "Vui lòng thử lại sau khoảng 31 phút." in html
    assert refused.headers["retry-after"] == "1801"  # whole seconds, rounded up
    assert 'href="https://tin.example.vn/dang-ky"' in html
    assert len(subscriptions.calls_of("subscribe")) == 3
    assert subscriptions.clients == ["127.0.0.1"] * 3

    subscriptions.client_wait = 3 * 3600
    assert "khoảng 3 giờ" in subscribe_form(client).text


def test_invalid_posts_count_against_the_client(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriptions.client_limit = 2
    assert subscribe_form(client, address="sai").status_code == 400
    assert subscribe_form(client, address="sai-nua").status_code == 400
    assert subscribe_form(client).status_code == 429

    assert subscriptions.calls == []


def test_posts_without_a_valid_csrf_token_are_not_counted(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscribe_form(client, csrf="khong-hop-le")
    client.post("/dang-ky", data={"address": "a@example.org"}, headers={"Sec-Fetch-Site": "cross-site"})

    assert subscriptions.clients == []


def test_a_mailbox_or_the_site_over_its_limit_is_429(
    client: httpx.Client, subscriptions: FakeSubscriptions
) -> None:
    subscriptions.mailbox_wait = 86399.5

    refused = subscribe_form(client, address="nannhan@example.org", name="Nan Nhân")

    html = assert_page(refused, 429)
    assert TOO_MANY in html
    assert refused.headers["retry-after"] == "86400"
    assert "khoảng 24 giờ" in html
    assert subscriptions.outbox == []
    assert len(subscriptions.calls_of("subscribe")) == 1


def test_forwarded_addresses_count_only_from_trusted_proxies(
    serve: AppServer, subscriptions: FakeSubscriptions, clock: FakeClock
) -> None:
    serve.app = make_app(subscriptions, clock)
    with httpx.Client(base_url=serve.base_url) as client:
        csrf = csrf_tokens(client.get("/dang-ky").text)[0]
        for n in range(2):
            client.post(
                "/dang-ky",
                data={"csrf": csrf, "address": f"n{n}@example.org", "digest": "daily"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
    assert subscriptions.clients == ["127.0.0.1", "127.0.0.1"]  # the header is not believed

    subscriptions.clients.clear()
    serve.app = make_app(subscriptions, clock, trusted_proxies=["127.0.0.0/8"])
    with httpx.Client(base_url=serve.base_url) as client:
        csrf = csrf_tokens(client.get("/dang-ky").text)[0]
        for n, forwarded in enumerate(["203.0.113.1", "203.0.113.2", "198.51.100.7, 203.0.113.2"]):
            client.post(
                "/dang-ky",
                data={"csrf": csrf, "address": f"m{n}@example.org", "digest": "daily"},
                headers={"X-Forwarded-For": forwarded},
            )
    # The nearest untrusted hop is the client.
    assert subscriptions.clients == ["203.0.113.1", "203.0.113.2", "203.0.113.2"]


def test_the_forwarded_scheme_counts_only_from_trusted_proxies(
    serve: AppServer, subscriptions: FakeSubscriptions, clock: FakeClock
) -> None:
    """A proxy that ends TLS forwards over http: the browser's Origin says https://<host>."""
    origin = serve.base_url.replace("http://", "https://")
    headers = {"Origin": origin, "X-Forwarded-Proto": "https"}
    statuses = []
    for trusted in ([], ["127.0.0.1"]):
        serve.app = make_app(subscriptions, clock, trusted_proxies=trusted)
        with httpx.Client(base_url=serve.base_url) as client:
            csrf = csrf_tokens(client.get("/dang-ky").text)[0]
            data = {"csrf": csrf, "address": "x@example.org", "digest": "daily"}
            statuses.append(client.post("/dang-ky", data=data, headers=headers).status_code)
    assert statuses == [403, 200]


# --- the rules, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("nguyenvana@example.org", "ng***@example.org"),
        ("abc@example.org", "a***@example.org"),
        ("a@example.org", "a***@example.org"),
        ("không-có-a-còng", "***"),
    ],
)
def test_mask_address(address: str, masked: str) -> None:
    assert mask_address(address) == masked


@pytest.mark.parametrize(
    ("token", "valid"),
    [
        ("a" * 20, True),
        ("A-z_0" * 20, True),
        ("a" * 19, False),
        ("a" * 101, False),
        ("a" * 20 + "\n", False),
        ("a" * 19 + "=", False),
        ("a" * 19 + "é", False),
        ("a" * 19 + "١", False),  # an Arabic-Indic digit
    ],
)
def test_valid_token(token: str, valid: bool) -> None:
    assert valid_token(token) is valid


def test_csrf_tokens() -> None:
    clock = FakeClock()
    tokens = CsrfTokens(SECRET, clock=clock)
    token = tokens.issue("preferences", "abc")

    assert tokens.valid(token, "preferences", "abc")
    assert not tokens.valid(token, "preferences", "abd")
    assert not tokens.valid(token, "unsubscribe", "abc")
    assert not CsrfTokens(b"x" * 32, clock=clock).valid(token, "preferences", "abc")
    clock.advance(7200)
    assert tokens.valid(token, "preferences", "abc")
    clock.advance(1)
    assert not tokens.valid(token, "preferences", "abc")
    for bad in ("", ".", "x.y", "-1.abc", "1" * 16 + ".abc", "١.abc"):
        assert not tokens.valid(bad, "preferences", "abc")


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "key"),
    [
        (("198.51.100.7", 1), [], [], "198.51.100.7"),
        (("198.51.100.7", 1), [(b"x-forwarded-for", b"203.0.113.9")], [], "198.51.100.7"),
        (("10.0.0.2", 1), [(b"x-forwarded-for", b"203.0.113.9")], ["10.0.0.0/8"], "203.0.113.9"),
        (
            ("10.0.0.2", 1),
            [(b"x-forwarded-for", b"1.1.1.1, 203.0.113.9, 10.0.0.3")],
            ["10.0.0.0/8"],
            "203.0.113.9",
        ),
        (("10.0.0.2", 1), [(b"x-forwarded-for", b"garbage")], ["10.0.0.0/8"], "10.0.0.2"),
        (("2001:db8:1:2:3:4:5:6", 1), [], [], "2001:db8:1:2::/64"),
        (("::ffff:198.51.100.7", 1), [], [], "198.51.100.7"),
        (None, [], [], ""),
    ],
)
def test_client_key(
    peer: tuple[str, int] | None, headers: list[tuple[bytes, bytes]], trusted: list[str], key: str
) -> None:
    scope: Scope = {"type": "http", "client": peer, "headers": headers}
    TrustedProxies(trusted).resolve(scope)  # as the app does first

    assert client_key(scope) == key

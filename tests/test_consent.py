"""Consent and the subscribe limits as people meet them: `syndication serve` as a
subprocess, the forms posted over HTTP, the directory imported with the CLI, every
e-mail read back from the Maildir.

- An address that unsubscribed stays unsubscribed through the public form and any
  directory import; only the person, confirming the link, makes it active again.
- A person's choices on the preferences page win over a re-import of the directory.
- Subscribe limits live in the store: provider-equivalent addresses share them, a
  restart does not reset them, two processes do not multiply them.
- Confirmation links expire; the confirmation mail greets by name.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from syndication.store import Store
from syndication.types import Subscriber, SubscriberData
from syndication.web.subscribe import CsrfTokens
from tests.httpserver import TestServer
from tests.test_cli import write_config as write_base_config
from tests.test_core import ITEMS, rss
from tests.test_serve import free_port, wait_until

SECRET = "bi-mat-cua-cong-thong-tin-0123456789"
CONFIRM_LINK = re.compile(r"https://syn\.example\.vn/xac-nhan/([A-Za-z0-9_-]+)")


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))  # a first digest reaches back one period
        yield srv


def write_config(tmp_path: Path, store_url: str, server: TestServer, *, subscribe: str = "") -> Path:
    outbox = tmp_path / "outbox"
    return write_base_config(
        tmp_path,
        store_url,
        f"""
[mail]
maildir = "{outbox}"
from_address = "ban-tin@example.org"
[subscribe]
secret_env = "SYNDICATION_TEST_SECRET"
{subscribe}
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
[[digests]]
name = "weekly"
title = "Bản tin hằng tuần"
schedule = "0 7 * * mon"
[[sources]]
id = "tin"
url = "{server.url("/tin.rss")}"
categories = ["tin-tuc-su-kien", "xay-dung-dang"]
allow_private_network = true
""",
    )


def env() -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    values["SYNDICATION_TEST_SECRET"] = SECRET
    return values


def cli(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "syndication", "--config", str(conf), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=120)


@contextmanager
def serving(conf: Path) -> Iterator[httpx.Client]:
    """`syndication serve` on a free port until the block ends (SIGINT; it must stop cleanly)."""
    port = free_port()
    cmd = [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"serve exited: {proc.communicate()[1]}")
                try:
                    return http.get("/dang-ky").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, "the subscription page")
            yield http
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors, errors


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def subscribe(http: httpx.Client, address: str, *, name: str = "", digest: str = "daily") -> httpx.Response:
    """Fill in and send the public form, as anyone may."""
    token = csrf(http.get("/dang-ky").text)
    data = {"csrf": token, "address": address, "name": name, "digest": digest}
    return http.post("/dang-ky", data=data)


def mails(outbox: Path) -> list[EmailMessage]:
    folder = outbox / "new"
    found: list[EmailMessage] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def wait_for_mails(outbox: Path, count: int) -> list[EmailMessage]:
    wait_until(lambda: len(mails(outbox)) >= count, f"{count} e-mails in the Maildir")
    return mails(outbox)


def recipient(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def listed(conf: Path) -> dict[str, dict[str, object]]:
    result = cli(conf, "subscribers", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["address"]: row for row in json.loads(result.stdout)}


def stored(store_url: str, address: str) -> Subscriber:
    """The subscriber as the store has it (what `subscribers list` shows, without a process)."""
    with Store(store_url) as store:
        found = store.get_subscriber(address=address)
    assert found is not None
    return found


def token_of(store_url: str, address: str) -> str:
    """The personal token of an address, as the links of its earlier mails carry it."""
    return stored(store_url, address).token


def press(http: httpx.Client, path: str, **fields: object) -> httpx.Response:
    """Open a personal page and press its form's button, as a browser of this site does."""
    page = http.get(path)
    assert page.status_code == 200, page.text
    data = {"csrf": csrf(page.text), **fields}
    headers = {"Origin": str(http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    return http.post(path, data=data, headers=headers)


# --- item 7: an opt-out stays an opt-out ---------------------------------------------------


def test_an_unsubscribe_survives_the_form_and_a_reimport_until_the_person_confirms(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    conf = write_config(tmp_path, store_url, server)
    outbox = tmp_path / "outbox"
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        "bithu@example.org,Nguyễn Thị Hoà,Chi bộ Văn phòng,daily\n"
        "phobithu@example.org,Trần Văn Đức,Chi bộ Văn phòng,daily\n",
        encoding="utf-8",
    )
    imported = cli(conf, "subscribers", "import", str(people))
    assert imported.returncode == 0, imported.stderr

    with serving(conf) as http:
        # She unsubscribes with the one-click link of an earlier digest.
        token = token_of(store_url, "bithu@example.org")
        gone = http.post(f"/huy/{token}", data={"List-Unsubscribe": "One-Click"})
        assert gone.status_code == 200
        assert stored(store_url, "bithu@example.org").status == "unsubscribed"

        # Anyone types her address into the public form: she gets a confirmation mail...
        assert subscribe(http, "bithu@example.org").status_code == 200
        (confirmation,) = wait_for_mails(outbox, 1)
        assert recipient(confirmation) == "bithu@example.org"
        # ...and stays unsubscribed until she confirms.
        assert stored(store_url, "bithu@example.org").status == "unsubscribed"

        # The publisher imports the same directory again: she is still listed there.
        again = cli(conf, "subscribers", "import", str(people))
        assert again.returncode == 0, again.stderr
        assert "kept unsubscribed: 1 (listed in the directory; they opted out)" in again.stdout
        assert stored(store_url, "bithu@example.org").status == "unsubscribed"
        # Nor can the publisher add her by hand.
        added = cli(conf, "subscribers", "add", "bithu@example.org", "--name", "Nguyễn Thị Hoà")
        assert added.returncode == 0, added.stderr
        assert "bithu@example.org: kept unsubscribed (they opted out" in added.stdout
        assert stored(store_url, "bithu@example.org").status == "unsubscribed"

        # The digest goes to her colleague, not to her.
        assert cli(conf, "fetch").returncode == 0
        sent = cli(conf, "digest", "send", "daily")
        assert sent.returncode == 0, sent.stderr
        # (`digest send` returns once every message is in the Maildir.)
        received = sorted((recipient(m), str(m["Subject"])) for m in mails(outbox))
        assert [address for address, _ in received] == ["bithu@example.org", "phobithu@example.org"]
        assert received[0][1].startswith("Xác nhận đăng ký")  # her only mail: the confirmation

        # She opens the link of the confirmation mail and presses the button: active again.
        link = CONFIRM_LINK.search(text_of(confirmation))
        assert link, text_of(confirmation)
        confirmed = press(http, f"/xac-nhan/{link.group(1)}")
        assert confirmed.status_code == 200, confirmed.text
        assert "Đã xác nhận đăng ký" in confirmed.text
        assert listed(conf)["bithu@example.org"]["status"] == "active"  # as the publisher sees it


# --- item 19: the person's choices win over the directory -----------------------------------


def test_a_reimport_keeps_what_the_person_chose_and_reports_it(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    conf = write_config(tmp_path, store_url, server)
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,categories,digest\n"
        "bithu@example.org,Nguyễn Thị Hoà,Chi bộ Văn phòng,xay-dung-dang,daily\n"
        "phobithu@example.org,Trần Văn Đức,Chi bộ Văn phòng,xay-dung-dang,daily\n",
        encoding="utf-8",
    )
    assert cli(conf, "subscribers", "import", str(people)).returncode == 0

    with serving(conf) as http:
        token = token_of(store_url, "bithu@example.org")
        saved = press(http, f"/tuy-chon/{token}", categories=["tin-tuc-su-kien"], digest="weekly")
        assert saved.status_code == 200, saved.text
        assert "Đã lưu tuỳ chọn" in saved.text

    # Her row of the directory is unchanged; her colleague moves to another organisation.
    people.write_text(
        "email,name,organisation,categories,digest\n"
        "bithu@example.org,Nguyễn Thị Hoà,Chi bộ Văn phòng,xay-dung-dang,daily\n"
        "phobithu@example.org,Trần Văn Đức,Chi bộ Ban Tổ chức,xay-dung-dang,daily\n",
        encoding="utf-8",
    )
    again = cli(conf, "subscribers", "import", str(people))
    assert again.returncode == 0, again.stderr
    assert "1 updated, 1 unchanged" in again.stdout
    assert "kept what 1 person chose on the preferences page (2 fields)" in again.stdout
    assert (
        'bithu@example.org: categories: the directory says "xay-dung-dang", '
        'the person chose "tin-tuc-su-kien"'
    ) in again.stdout
    assert 'bithu@example.org: digest: the directory says "daily", the person chose "weekly"' in again.stdout
    people_now = listed(conf)
    assert (people_now["bithu@example.org"]["categories"], people_now["bithu@example.org"]["digest"]) == (
        ["tin-tuc-su-kien"],
        "weekly",
    )
    assert people_now["phobithu@example.org"]["organisation"] == "Chi bộ Ban Tổ chức"

    # The fields she did not touch still follow the directory.
    renamed_file = people.read_text(encoding="utf-8").replace("Nguyễn Thị Hoà", "Nguyễn Thị Hòa Bình")
    people.write_text(renamed_file, encoding="utf-8")
    renamed = cli(conf, "subscribers", "import", str(people))
    assert "1 updated" in renamed.stdout
    assert stored(store_url, "bithu@example.org").display_name == "Nguyễn Thị Hòa Bình"


# --- item 9: subscribe bombing ----------------------------------------------------------------

GMAIL_VARIANTS = (
    "nguyen.van.an@gmail.com",
    "NguyenVanAn@gmail.com",
    "nguyenvanan+tin@googlemail.com",
    "n.g.u.y.e.n.vanan@gmail.com",
    "Nguyen.VanAn+ban-tin@GoogleMail.com",
)


def test_gmail_variants_share_one_mailboxs_limit(tmp_path: Path, store_url: str, server: TestServer) -> None:
    conf = write_config(tmp_path, store_url, server)  # the default limit: 3 per address per day
    outbox = tmp_path / "outbox"
    with serving(conf) as http:
        statuses = [subscribe(http, address).status_code for address in GMAIL_VARIANTS]
        assert statuses == [200, 200, 200, 429, 429]
        received = wait_for_mails(outbox, 3)
        time.sleep(1)  # the refused ones sent nothing: nothing else arrives
    assert len(mails(outbox)) == len(received) == 3


def test_limits_are_shared_by_processes_and_survive_a_restart(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    conf = write_config(tmp_path, store_url, server, subscribe="per_address_per_day = 2")
    with serving(conf) as first, serving(conf) as second:
        assert subscribe(first, "bithu@example.org").status_code == 200
        assert subscribe(second, "bithu@example.org").status_code == 200
        assert subscribe(first, "bithu@example.org").status_code == 429
        refused = subscribe(second, "bithu@example.org")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 23 * 3600
    with serving(conf) as restarted:
        assert subscribe(restarted, "BiThu@example.org").status_code == 429
        assert subscribe(restarted, "phobithu@example.org").status_code == 200
    assert len(wait_for_mails(tmp_path / "outbox", 3)) == 3


def test_a_site_wide_hourly_cap_on_confirmation_mails(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    conf = write_config(tmp_path, store_url, server, subscribe="confirmations_per_hour = 2")
    with serving(conf) as first, serving(conf) as second:
        assert subscribe(first, "mot@example.org").status_code == 200
        assert subscribe(second, "hai@example.net").status_code == 200
        refused = subscribe(first, "ba@example.com")
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
    received = wait_for_mails(tmp_path / "outbox", 2)
    assert sorted(recipient(m) for m in received) == ["hai@example.net", "mot@example.org"]


# --- item 20: links expire, the mail greets by name -------------------------------------------


def test_the_confirmation_mail_greets_by_name(tmp_path: Path, store_url: str, server: TestServer) -> None:
    conf = write_config(tmp_path, store_url, server)
    outbox = tmp_path / "outbox"
    with serving(conf) as http:
        assert subscribe(http, "hoa@example.org", name="Nguyễn Thị Hoà").status_code == 200
        assert subscribe(http, "an.danh@example.org").status_code == 200
        received = {recipient(m): m for m in wait_for_mails(outbox, 2)}
    named = received["hoa@example.org"]
    assert "Kính gửi đồng chí Nguyễn Thị Hoà," in text_of(named)
    assert "Kính gửi đồng chí Nguyễn Thị Hoà," in html_of(named)
    assert "Liên kết xác nhận có hiệu lực trong 7 ngày" in " ".join(text_of(named).split())
    anonymous = received["an.danh@example.org"]
    assert "Kính gửi quý bạn đọc," in text_of(anonymous)
    assert "đồng chí" not in text_of(anonymous)


def test_an_old_confirmation_link_has_expired(tmp_path: Path, store_url: str, server: TestServer) -> None:
    conf = write_config(tmp_path, store_url, server)
    now = datetime.now(UTC)
    with Store(store_url) as store:
        store.upgrade()
        # Two people asked through the form: one eight days ago, one six days ago.
        old, _ = store.subscribe_pending(
            SubscriberData(address="cu@example.org", status="pending"), now=now - timedelta(days=8)
        )
        recent, _ = store.subscribe_pending(
            SubscriberData(address="moi@example.org", status="pending"), now=now - timedelta(days=6)
        )
    tokens = CsrfTokens(SECRET.encode(), clock=time.time)
    with serving(conf) as http:
        page = http.get(f"/xac-nhan/{old.token}")
        assert page.status_code == 410
        assert "Liên kết xác nhận đã hết hạn" in page.text
        assert 'href="https://syn.example.vn/dang-ky"' in page.text  # subscribe again
        assert 'name="csrf"' not in page.text  # no button to press
        # Pressing the button of a page opened long ago does not confirm either.
        pressed = http.post(
            f"/xac-nhan/{old.token}",
            data={"csrf": tokens.issue("confirm", old.token)},
            headers={"Origin": str(http.base_url).rstrip("/")},
        )
        assert pressed.status_code == 410
        assert "Liên kết xác nhận đã hết hạn" in pressed.text
        assert stored(store_url, "cu@example.org").status == "pending"

        confirmed = press(http, f"/xac-nhan/{recent.token}")
        assert confirmed.status_code == 200
        assert stored(store_url, "moi@example.org").status == "active"

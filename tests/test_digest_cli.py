"""Subscribers and digests as a user runs them: the CLI as a subprocess, a real SMTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy

from syndication import config
from syndication.core import Syndication
from syndication.store import Store
from syndication.store.schema import deliveries
from syndication.types import SubscriberData
from tests.httpserver import TestServer
from tests.smtpserver import SmtpServer
from tests.test_cli import ROOT, syndication
from tests.test_core import ITEMS, rss


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as srv:
        yield srv


def write_config(
    tmp_path: Path, store_url: str, feed_url: str, smtp: SmtpServer, *, extra_mail: str = ""
) -> Path:
    path = tmp_path / "syndication.toml"
    path.write_text(
        f"""
[site]
title = "Cổng thông tin thử nghiệm"
base_url = "https://syn.example.vn/"
[storage]
url = "{store_url}"
[mail]
transport = "smtp"
host = "{smtp.host}"
port = {smtp.port}
security = "none"
from_address = "ban-tin@example.org"
from_name = "Ban Tuyên giáo"
{extra_mail}
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
[[digests]]
name = "weekly"
schedule = "0 7 * * mon"
[[categories]]
slug = "tin-tuc-su-kien"
title = "Tin tức - Sự kiện"
[[categories]]
slug = "xay-dung-dang"
title = "Xây dựng Đảng"
[[categories]]
slug = "van-hoa-xa-hoi"
title = "Văn hoá - Xã hội"
[[sources]]
id = "tin"
url = "{feed_url}"
categories = ["tin-tuc-su-kien", "xay-dung-dang", "van-hoa-xa-hoi"]
allow_private_network = true
""",
        encoding="utf-8",
    )
    return path


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_directory_digest_and_report(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp)

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "email,name,organisation,categories,digest\n"
        "bi-thu@example.org,Nguyễn Thị Hoà,Chi bộ Văn phòng,,daily\n"
        "chi bo@example,Lê Chung,Chi bộ Văn phòng,,daily\n"
        "pho@example.org,Trần Văn Uỷ,Chi bộ Văn phòng,khong-co,daily\n",
        encoding="utf-8",
    )
    refused = syndication("subscribers", "import", str(bad), config=conf)
    assert refused.returncode == 2
    assert f"{bad}:3: email:" in refused.stderr
    assert f"{bad}:4: categories:" in refused.stderr
    assert "nothing imported" in refused.stderr
    listed = syndication("subscribers", "list", "--format", "json", config=conf)
    assert json.loads(listed.stdout) == []
    skipped = syndication("subscribers", "import", str(bad), "--skip-invalid", config=conf)
    assert skipped.returncode == 0, skipped.stderr
    assert "1 new" in skipped.stdout

    sample = syndication("subscribers", "import", str(ROOT / "subscribers" / "branches.csv"), config=conf)
    assert sample.returncode == 0, sample.stderr
    added = syndication(
        "subscribers", "add", "hoa@example.net", "--name", "Phạm Hoà", "--organisation", "Chi bộ Văn phòng",
        config=conf,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    exported = syndication("subscribers", "export", config=conf)
    assert exported.stdout.startswith("\ufeff")
    assert "Nguyễn Thị Hoà" in exported.stdout

    assert syndication("fetch", config=conf).returncode == 0
    dry = syndication("digest", "send", "daily", "--dry-run", config=conf, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would receive" in dry.stdout
    assert smtp.messages == []

    preview = tmp_path / "xem-truoc.html"
    shown = syndication(
        "digest", "preview", "daily", "--subscriber", "bi-thu@example.org", "--out", str(preview), config=conf
    )
    assert shown.returncode == 0, shown.stderr
    assert ITEMS[0][1] in preview.read_text(encoding="utf-8")

    sent = syndication("digest", "send", "daily", config=conf)
    assert sent.returncode == 0, sent.stderr
    received = smtp.messages
    assert received
    by_address = {r.rcpt_tos[0]: parse(r.data) for r in received}
    assert len(by_address) == len(received)  # one message per address
    hoa = by_address["bi-thu@example.org"]
    assert hoa["To"].addresses[0].display_name == "Nguyễn Thị Hoà"
    assert hoa["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = hoa.get_body(("html",)).get_content()
    text = hoa.get_body(("plain",)).get_content()
    assert ITEMS[1][1] in html
    assert ITEMS[1][1] in text
    assert "https://syn.example.vn/tuy-chon/" in html
    assert "bi-thu@example.org" not in hoa["List-Unsubscribe"]

    report = syndication("digest", "report", "daily", config=conf)
    assert report.returncode == 0, report.stderr
    assert "Chi bộ Văn phòng" in report.stdout
    as_csv = syndication("digest", "report", "daily", "--format", "csv", config=conf)
    lines = as_csv.stdout.lstrip("\ufeff").splitlines()
    assert lines[0] == "organisation,delivered,failed,pending,superseded"
    assert any(line.startswith("Chi bộ Văn phòng,") for line in lines)

    status = syndication("status", config=conf)
    assert status.returncode == 0, status.stderr
    daily = next(line for line in status.stdout.splitlines() if line.startswith("daily"))
    assert daily.split()[1:6] == ["0", "7", "*", "*", "*"]
    assert daily.split()[-4:] == [
        "1",
        str(len(received)),
        "0",
        "0",
    ]  # issue 1: all sent, none failed or waiting
    assert "Subscribers: " in status.stdout

    assert syndication("subscribers", "remove", "hoa@example.net", config=conf).returncode == 0
    assert syndication("subscribers", "remove", "hoa@example.net", config=conf).returncode == 1
    assert syndication("digest", "send", "khong-co", config=conf).returncode == 1


def test_killed_sender_resumes_without_losing_or_repeating(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(
        tmp_path, store_url, server.url("/tin.rss"), smtp, extra_mail='rate = 150\nlease = "1s"\npool = 2'
    )
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        + "".join(f"can-bo-{n}@example.org,Cán bộ số {n},Chi bộ {n % 7},daily\n" for n in range(500)),
        encoding="utf-8",
    )
    assert syndication("subscribers", "import", str(people), config=conf).returncode == 0
    assert syndication("fetch", config=conf).returncode == 0

    env = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    cmd = [sys.executable, "-m", "syndication", "--config", str(conf), "digest", "send", "daily"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(smtp.messages) < 120 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = len(smtp.messages)
    assert 0 < before < 500, "the sender must be killed part-way"

    time.sleep(1.5)  # the killed sender's leases (1 s) run out
    again = syndication("digest", "send", "daily", config=conf)
    assert again.returncode == 0, again.stderr
    assert "continuing issue" in again.stdout

    ids = Counter(parse(r.data)["Message-ID"] for r in smtp.messages)
    per_address = Counter(r.rcpt_tos[0] for r in smtp.messages)
    assert len(per_address) == 500  # everyone got it
    assert len(ids) == 500  # one Message-ID per subscriber
    assert max(per_address.values()) <= 2  # at most one duplicate, from the moment of the kill
    duplicates = [a for a, n in per_address.items() if n == 2]
    # Only messages in flight when it was killed: at 150 msg/s, what was accepted in the
    # last few milliseconds before its "sent" marks were written.
    assert len(duplicates) <= 12
    report = syndication("digest", "report", "daily", "--format", "csv", config=conf)
    totals = [line.split(",") for line in report.stdout.lstrip("\ufeff").splitlines()[1:]]
    assert sum(int(row[1]) for row in totals) == 500
    assert all(int(row[3]) == 0 for row in totals)


# Addresses stored before the one address rule existed (or written around the entry
# points): the sender checks them again, and one it cannot use fails alone.
IDN = "idn@exämple.org"
IDN_WIRE = "idn@xn--exmple-cua.org"
ENCODED_WORD = "=?utf-8?q?v=0D=0ABcc=3A_evil=40evil.example?=@example.org"
UTF8_LOCAL = "nguyễn@example.org"


def store_directly(store_url: str, *rows: SubscriberData) -> None:
    with Store(store_url) as store:
        store.upgrade()
        store.upsert_subscribers(list(rows), now=datetime.now(UTC))


def test_one_unusable_address_fails_alone(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp, extra_mail="bounce_threshold = 1")
    store_directly(
        store_url,
        SubscriberData(address="bi-thu@example.org", display_name="Nguyễn Thị Hoà", organisation="Chi bộ A"),
        SubscriberData(address=IDN, display_name="Tên miền quốc tế", organisation="Chi bộ A"),
        SubscriberData(address=ENCODED_WORD, display_name="Kẻ giả mạo", organisation="Chi bộ B"),
        SubscriberData(address=UTF8_LOCAL, display_name="Nguyễn", organisation="Chi bộ B"),
    )
    assert syndication("fetch", config=conf).returncode == 0

    sent = syndication("digest", "send", "daily", config=conf)

    assert sent.returncode == 0, sent.stderr
    assert "Traceback" not in sent.stderr
    # The server saw exactly the two usable recipients, the IDN one in its ASCII form.
    assert sorted(r.rcpt_tos for r in smtp.messages) == [("bi-thu@example.org",), (IDN_WIRE,)]
    for received in smtp.messages:
        message = parse(received.data)
        (to,) = message.get_all("To")
        assert [a.addr_spec for a in to.addresses] == list(received.rcpt_tos)
        assert message.get_all("Cc") is None
        assert message.get_all("Bcc") is None
        assert received.data.isascii()
    # Each refusal is told, with its reason; nobody is counted as bounced for it.
    assert "sent now 2, retrying 0, failed 2" in sent.stdout
    assert "encoded word" in sent.stderr
    assert "SMTPUTF8" in sent.stderr
    assert "bounced:" not in sent.stderr
    with Store(store_url) as store:
        issue = store.latest_issue("daily")
        assert issue is not None
        errors = {d.address: (d.status, d.last_error or "") for d in store.get_deliveries(issue.id)}
        statuses = {s.address: s.status for s in store.list_subscribers()}
    assert errors[ENCODED_WORD.lower()][0] == "failed"
    assert "encoded word" in errors[ENCODED_WORD.lower()][1]
    assert errors[UTF8_LOCAL][0] == "failed"
    assert "SMTPUTF8" in errors[UTF8_LOCAL][1]
    assert statuses == dict.fromkeys(["bi-thu@example.org", IDN, ENCODED_WORD.lower(), UTF8_LOCAL], "active")


def test_a_utf8_address_goes_out_where_the_server_offers_smtputf8(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    with SmtpServer(smtputf8=True) as smtp:
        conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp)
        store_directly(store_url, SubscriberData(address=UTF8_LOCAL, display_name="Nguyễn Văn A"))
        assert syndication("fetch", config=conf).returncode == 0

        sent = syndication("digest", "send", "daily", config=conf)

        assert sent.returncode == 0, sent.stderr
        (received,) = smtp.messages
    assert received.rcpt_tos == (UTF8_LOCAL,)
    assert "SMTPUTF8" in received.mail_options
    message = email.message_from_string(received.data.decode("utf-8"), policy=email.policy.default)
    (to,) = message.get_all("To")
    assert [a.addr_spec for a in to.addresses] == [UTF8_LOCAL]
    assert to.addresses[0].display_name == "Nguyễn Văn A"


# --- stopping and crashing part-way ---------------------------------------------------------


def many_subscribers(tmp_path: Path, conf: Path, count: int) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        + "".join(f"can-bo-{n}@example.org,Cán bộ số {n},Chi bộ {n % 7},daily\n" for n in range(count)),
        encoding="utf-8",
    )
    assert syndication("subscribers", "import", str(people), config=conf).returncode == 0
    assert syndication("fetch", config=conf).returncode == 0


def start_sending(conf: Path, smtp: SmtpServer, *, until: int) -> subprocess.Popen[str]:
    """``digest send daily`` in the background, once the server has ``until`` messages."""
    env = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    cmd = [sys.executable, "-m", "syndication", "--config", str(conf), "digest", "send", "daily"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(smtp.messages) < until and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the sender must still be at work"
    return proc


def assert_everyone_got_it_once(smtp: SmtpServer, count: int, *, duplicates: int) -> None:
    ids = Counter(parse(r.data)["Message-ID"] for r in smtp.messages)
    per_address = Counter(r.rcpt_tos[0] for r in smtp.messages)
    assert len(per_address) == count  # everyone got it
    assert len(ids) == count  # one Message-ID per subscriber
    assert sum(per_address.values()) - count <= duplicates


def interrupted(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer, signum: signal.Signals
) -> tuple[Path, subprocess.Popen[str], str]:
    """``digest send daily`` to 300 subscribers at 60 messages a second, sent ``signum``
    once 40 went out: the configuration, the ended process and its stderr. The default
    lease (10 minutes): a claim left behind would block a re-run."""
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp, extra_mail="rate = 60\npool = 2")
    many_subscribers(tmp_path, conf, 300)
    first = start_sending(conf, smtp, until=40)
    first.send_signal(signum)
    _, stderr = first.communicate(timeout=60)
    return conf, first, stderr


def test_ctrl_c_gives_the_claims_back_and_a_rerun_sends_the_rest_at_once(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    conf, first, stderr = interrupted(tmp_path, store_url, server, smtp, signal.SIGINT)
    before = len(smtp.messages)

    assert first.returncode == 130, stderr
    assert 0 < before < 300, "stopped part-way"

    again = syndication("digest", "send", "daily", config=conf)  # at once: nothing to wait for

    assert again.returncode == 0, again.stderr
    assert "continuing issue" in again.stdout
    assert f"sent now {300 - before}," in again.stdout
    assert_everyone_got_it_once(smtp, 300, duplicates=0)  # a clean stop sends nothing twice
    assert "Traceback" not in stderr
    assert re.search(r"stopped: \d+ messages went back to the outbox", stderr), stderr


def test_a_rerun_takes_over_at_once_from_a_sender_killed_on_this_host(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    conf, _, _ = interrupted(tmp_path, store_url, server, smtp, signal.SIGKILL)
    assert len(smtp.messages) < 300, "killed part-way"

    again = syndication("digest", "send", "daily", config=conf)  # at once, leases still running

    assert again.returncode == 0, again.stderr
    assert re.search(r"took over \d+ messages claimed by \S+, which is no longer running", again.stdout)
    assert "in all: failed 0, pending 0, retrying 0, sending 0, sent 300" in again.stdout
    # At most the messages in flight at the kill go out twice, with the same Message-ID.
    assert_everyone_got_it_once(smtp, 300, duplicates=8)


def queued_for(
    tmp_path: Path,
    store_url: str,
    server: TestServer,
    smtp: SmtpServer,
    owner: str,
    *,
    heartbeat: timedelta | None,
) -> Path:
    """An issue of 6 messages queued and claimed by ``owner`` (a sender on another host)
    for 10 minutes, with a heartbeat of that age (None: it never sent one); the config."""
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp)
    many_subscribers(tmp_path, conf, 6)
    assert syndication("digest", "send", "daily", "--queue-only", config=conf).returncode == 0
    now = datetime.now(UTC)
    with Store(store_url) as store:
        if heartbeat is not None:
            store.heartbeat(owner=owner, role="send", started=now - timedelta(hours=1), now=now - heartbeat)
        claimed = store.claim_deliveries(
            issue_id=None, limit=1000, lease=timedelta(minutes=10), owner=owner, now=now
        )
    assert len(claimed) == 6
    return conf


def test_claims_of_a_sender_on_another_host(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    # Running elsewhere (a fresh heartbeat): its messages are its own, even with --take-over.
    conf = queued_for(tmp_path, store_url, server, smtp, "may-khac:4242:beef", heartbeat=timedelta(seconds=2))
    running = syndication("digest", "send", "daily", "--take-over", config=conf)
    assert running.returncode == 0, running.stderr
    assert "6 messages are being sent by may-khac:4242:beef, another sender that is running" in running.stderr
    assert smtp.messages == []

    # Unseen (no heartbeat at all): the command says until when, and what to do.
    with Store(store_url) as store:
        store.remove_node("may-khac:4242:beef")
    hint = syndication("digest", "send", "daily", config=conf)
    assert hint.returncode == 0, hint.stderr
    assert "6 messages are claimed by may-khac:4242:beef, a sender that cannot be seen" in hint.stderr
    expiry = re.search(r"its claims expire at (\d\d/\d\d/\d{4} \d\d:\d\d) \(Asia/Ho_Chi_Minh\)", hint.stderr)
    assert expiry, hint.stderr
    expected = (datetime.now(UTC) + timedelta(minutes=10)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    shown = datetime.strptime(expiry.group(1), "%d/%m/%Y %H:%M").replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert abs(shown - expected) < timedelta(minutes=2)
    assert "with --take-over" in hint.stderr
    assert smtp.messages == []
    taken = syndication("digest", "send", "daily", "--take-over", config=conf)
    assert taken.returncode == 0, taken.stderr
    assert "took over 6 messages claimed by may-khac:4242:beef" in taken.stdout
    assert len(smtp.messages) == 6


def test_claims_of_a_silent_sender_on_another_host_are_taken_over(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    # Its last heartbeat is 5 minutes old (the site's tick is 5 s): it is gone.
    conf = queued_for(tmp_path, store_url, server, smtp, "may-khac:4242:dead", heartbeat=timedelta(minutes=5))

    sent = syndication("digest", "send", "daily", config=conf)

    assert sent.returncode == 0, sent.stderr
    assert "took over 6 messages claimed by may-khac:4242:dead, which is no longer running" in sent.stdout
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == sorted(f"can-bo-{n}@example.org" for n in range(6))


def test_the_report_shows_superseded_deliveries_apart_from_failed_ones(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    server.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
    conf = write_config(tmp_path, store_url, server.url("/tin.rss"), smtp)
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        "a@example.org,A,Chi bộ Văn phòng,daily\n"
        "b@example.org,B,Chi bộ Văn phòng,daily\n"
        "c@example.org,C,Đảng bộ Sở Y tế,daily\n"
        "d@example.org,D,Đảng bộ Sở Y tế,daily\n",
        encoding="utf-8",
    )
    assert syndication("subscribers", "import", str(people), config=conf).returncode == 0
    assert syndication("fetch", config=conf).returncode == 0
    smtp.temp_fail.add("b@example.org")  # waits for a retry...
    smtp.perm_fail.add("d@example.org")  # ...and fails for good
    assert syndication("digest", "send", "daily", config=conf).returncode == 0
    smtp.temp_fail.clear()
    # The next issue carries b's articles too: its wait for a retry ends, superseded.
    second = syndication("digest", "send", "daily", config=conf)
    assert second.returncode == 0, second.stderr
    assert "issue 2" in second.stdout

    table = syndication("digest", "report", "daily", "--issue", "1", config=conf)
    as_csv = syndication("digest", "report", "daily", "--issue", "1", "--format", "csv", config=conf)

    assert table.returncode == as_csv.returncode == 0, table.stderr + as_csv.stderr
    lines = as_csv.stdout.lstrip("\ufeff").splitlines()
    assert lines == [
        "organisation,delivered,failed,pending,superseded",
        "Chi bộ Văn phòng,1,0,0,1",
        "Đảng bộ Sở Y tế,1,1,0,0",
    ]
    rows = [
        line.split() for line in table.stdout.splitlines() if line.split()[-4:] and line.split()[-1].isdigit()
    ]
    assert [row[-4:] for row in rows] == [["1", "0", "0", "1"], ["1", "1", "0", "0"], ["2", "1", "0", "1"]]
    assert rows[-1][0] == "(tổng"  # "(tổng cộng)": every branch together, adding up to the 4 deliveries
    assert "superseded" in table.stdout.splitlines()[1]


def _item(slug: str, title: str, published: datetime) -> str:
    return (
        f"<item><title>{title}</title><link>https://portal.example.vn/{slug}.html</link>"
        f"<guid>https://portal.example.vn/{slug}.html</guid>"
        f"<pubDate>{email.utils.format_datetime(published)}</pubDate><description>{title}.</description></item>"
    )


def _outbox(folder: Path, seen: set[Path]) -> list[EmailMessage]:
    """The messages written into the Maildir since ``seen`` (which it extends)."""
    new = sorted(set((folder / "new").iterdir()) - seen)
    seen.update(new)
    return [parse(path.read_bytes()) for path in new]


def test_the_bundled_sites_first_digests_carry_no_backlog(tmp_path: Path) -> None:
    """On the bundled configuration, a new install has weeks of sample articles: the first
    daily carries only what was published in the day before it, and so does a source added
    later to the running site."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    conf = tmp_path / "config" / "syndication.toml"
    sample = tmp_path / "config" / "sample" / "tin-tuc-su-kien.rss"
    now = datetime.now(UTC)
    fresh = "Hội nghị giao ban công tác Đảng sáng nay"
    sample.write_text(
        sample.read_text(encoding="utf-8").replace(
            "<item>", _item("giao-ban", fresh, now - timedelta(hours=2)) + "<item>", 1
        ),
        encoding="utf-8",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = syndication(*args, config=conf, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    run("fetch")
    stored = {a["title"] for a in json.loads(run("articles", "--limit", "1000", "--format", "json").stdout)}
    backlog = stored - {fresh}
    assert len(backlog) >= 15  # three weeks of sample articles
    run("subscribers", "import", str(ROOT / "subscribers" / "branches.csv"))
    run("digest", "send", "daily")
    outbox, seen = tmp_path / "var" / "outbox", set[Path]()
    first = _outbox(outbox, seen)
    # Each daily reader of "Tin tức - Sự kiện" (or of everything) gets the one fresh article.
    assert sorted(m["To"].addresses[0].addr_spec for m in first) == [
        "bithu.vanphong@example.org",
        "bithu@sotaichinh.example",
        "phobithu.vanphong@example.org",
        "tuyengiao@example.com",
        "vanphong@sotaichinh.example",
    ]
    for message in first:
        text = message.get_body(("plain",)).get_content()
        assert fresh in text
        assert [title for title in backlog if title in text] == []
        assert message["Subject"].endswith(": 1 tin mới")

    # The running site gets a new source, with its own three weeks behind it.
    added = tmp_path / "config" / "sample" / "nguon-moi.rss"
    newest = "Đảng uỷ Khối sơ kết công tác kiểm tra giám sát"
    items = [_item("nguon-moi-0", newest, now - timedelta(hours=1))]
    items += [
        _item(f"nguon-moi-{n}", f"Tin cũ của nguồn mới số {n:02d}", now - timedelta(days=n))
        for n in range(2, 22)
    ]
    added.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Nguồn mới</title>'
        f"<link>https://portal.example.vn/</link>{''.join(items)}</channel></rss>",
        encoding="utf-8",
    )
    with conf.open("a", encoding="utf-8") as file:
        file.write('\n[[sources]]\nid = "nguon-moi"\nurl = "file:sample/nguon-moi.rss"\n')
        file.write('categories = ["xay-dung-dang"]\n')
    run("fetch")
    run("digest", "send", "daily")
    second = _outbox(outbox, seen)
    assert second
    for message in second:
        text = message.get_body(("plain",)).get_content()
        assert newest in text
        assert "Tin cũ của nguồn mới" not in text
        assert fresh not in text  # in the first digest: not again
        assert message["Subject"].endswith(": 1 tin mới")


def test_a_catch_up_issue_carries_the_backlog_and_its_retries_carry_the_same(tmp_path: Path) -> None:
    """``digest send --catch-up`` (a first issue after installing) is not bounded by the
    digest's period; the issue remembers it, so a message retried later holds the same
    articles, and the next ordinary issue is bounded again."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    conf = tmp_path / "config" / "syndication.toml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = syndication(*args, config=conf, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    run("fetch")
    stored = json.loads(run("articles", "--limit", "1000", "--format", "json").stdout)
    backlog = {a["title"] for a in stored if "tin-tuc-su-kien" in a["categories"]}
    assert len(backlog) >= 5
    run("subscribers", "import", str(ROOT / "subscribers" / "branches.csv"))
    # Sent without --catch-up, the sample's weeks-old articles are all outside the period.
    assert "nothing to send" in run("digest", "send", "daily").stdout

    caught_up = run("digest", "send", "daily", "--catch-up")

    assert "messages queued" in caught_up.stdout
    outbox, seen = tmp_path / "var" / "outbox", set[Path]()
    first = _outbox(outbox, seen)
    reader = next(m for m in first if m["To"].addresses[0].addr_spec == "tuyengiao@example.com")
    text = reader.get_body(("plain",)).get_content()
    carried = sorted(title for title in backlog if title in text)
    assert len(carried) >= 5
    # A retry of that issue (a message that failed for a while) renders the issue again: the
    # same articles, not a window bounded by date (which would now be empty).
    with Store(f"sqlite:///{tmp_path / 'var' / 'syndication.db'}") as store:
        issue = store.latest_issue("daily")
        assert issue is not None
        assert issue.catch_up
        (delivery,) = [d for d in store.get_deliveries(issue.id) if d.address == "tuyengiao@example.com"]
    # As the sender leaves a message that a server answered with a 4xx: retrying, due now.
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'var' / 'syndication.db'}")
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.update(deliveries)
            .where(deliveries.c.id == delivery.id)
            .values(status="retrying", next_attempt=datetime.now(UTC), last_error="451 thử lại sau")
        )
    engine.dispose()
    # What a worker of the running service does with it (`digest send` would start a new
    # issue, which replaces an earlier issue's queued messages).

    async def send_queued() -> None:
        async with Syndication(config.load(conf, environ={})) as syn:
            service = await syn.digest_service()
            summary = await service.send(issue)
            assert summary.sent == 1

    asyncio.run(send_queued())
    (again,) = _outbox(outbox, seen)
    assert again["Message-ID"] == reader["Message-ID"]
    assert sorted(t for t in backlog if t in again.get_body(("plain",)).get_content()) == carried

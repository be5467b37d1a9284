"""Subscribers and digests as a user runs them: the CLI as a subprocess, a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import os
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

import pytest

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
    assert lines[0] == "organisation,delivered,failed,pending"
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

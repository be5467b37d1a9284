"""Subscribers and digests as a user runs them: the CLI as a subprocess, a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
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
    server.add("/tin.rss", rss(ITEMS))
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
    server.add("/tin.rss", rss(ITEMS))
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

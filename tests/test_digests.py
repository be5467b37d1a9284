"""Digests end to end in one process: real store, our fake transport (our own seam)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from syndication import config
from syndication.core import Syndication
from syndication.core.outbox import unmarked_limit
from syndication.errors import TransportError
from syndication.store import Store
from syndication.types import SendOutcome, SubscriberData
from tests.httpserver import TestServer
from tests.test_core import ITEMS, START, Clock, rss, settings_for, source

DIGESTS = """
[mail]
from_address = "ban-tin@example.org"
from_name = "Ban Tuyên giáo Đảng uỷ Khối"
unsubscribe_mailto = "huy@example.org"
retry_base = "1m"
max_attempts = 3
bounce_threshold = 1
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
subject = "{digest} – {date}: {count} tin"
"""


class FakeTransport:
    """Records messages; answers per recipient as told (ok, temporary, permanent)."""

    def __init__(self, answers: dict[str, SendOutcome] | None = None) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.answers = answers or {}
        self.closed = 0

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        answer = self.answers.get(recipient, SendOutcome(ok=True))
        if answer.ok:
            self.sent.append((recipient, data))
        return answer

    async def aclose(self) -> None:
        self.closed += 1

    def parsed(self) -> list[EmailMessage]:
        return [email.message_from_bytes(d, policy=email.policy.default) for _, d in self.sent]  # type: ignore[misc]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def setup(tmp_path: Path, store_url: str, server: TestServer) -> config.Settings:
    server.add("/tin.rss", rss(ITEMS))
    settings = settings_for(tmp_path, store_url, source("tin", server.url("/tin.rss"), cats='["tin"]'))
    path = settings.path
    path.write_text(path.read_text(encoding="utf-8") + DIGESTS, encoding="utf-8")
    return config.load(path, environ={})


PEOPLE = [
    SubscriberData(
        address="bi-thu@chibo-vanphong.example.org",
        display_name="Nguyễn Thị Hoà",
        organisation="Chi bộ Văn phòng",
        categories=("tin",),
    ),
    SubscriberData(
        address="pho@chibo-vanphong.example.org", display_name="Trần Văn Uỷ", organisation="Chi bộ Văn phòng"
    ),
    SubscriberData(address="xdd@example.net", organisation="Chi bộ Ban Tuyên giáo", categories=("xdd",)),
    SubscriberData(address="cho@example.com", status="pending"),
]


def run(settings: config.Settings, clock: Clock, transport: FakeTransport, coro_fn):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as syn:
            return await coro_fn(syn)

    return asyncio.run(go())


def test_plan_send_and_report(tmp_path: Path, store_url: str, server: TestServer) -> None:
    settings = setup(tmp_path, store_url, server)
    clock = Clock(START)
    transport = FakeTransport()

    async def first(syn: Syndication):  # type: ignore[no-untyped-def]
        await syn.upsert_subscribers(PEOPLE)
        await syn.poll()
        service = await syn.digest_service()
        plan = await service.plan("daily")
        summary = await service.send(plan.issue)
        report = await syn.digest_report("daily")
        return plan, summary, report

    plan, summary, (issue, rows) = run(settings, clock, transport, first)
    # The "xdd" follower has nothing new; the pending address gets nothing.
    assert (plan.recipients, plan.nothing_new) == (2, 1)
    assert summary.sent == 2
    assert sorted(r for r, _ in transport.sent) == [
        "bi-thu@chibo-vanphong.example.org",
        "pho@chibo-vanphong.example.org",
    ]
    assert rows == [("Chi bộ Văn phòng", 2, 0, 0, 0)]
    message = next(m for m in transport.parsed() if m["To"].addresses[0].display_name == "Nguyễn Thị Hoà")
    assert message["Subject"].startswith("Bản tin hằng ngày – ")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://syn.example.vn/huy/" in message["List-Unsubscribe"]
    assert "mailto:huy@example.org" in message["List-Unsubscribe"]
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for _, title, _ in ITEMS:
        assert title in html
        assert title in text
    assert "Nguyễn Thị Hoà" in html
    # The personal links went into the bodies encoded once per content (BodyTemplate).
    (unsubscribe,) = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])
    assert f'href="{unsubscribe}"' in html
    assert f"\r\n{unsubscribe}\r\n" in text
    assert f'href="{unsubscribe.replace("/huy/", "/tuy-chon/")}"' in html

    # Planning the same issue again adds nothing and sends nothing.
    async def again(syn: Syndication):  # type: ignore[no-untyped-def]
        service = await syn.digest_service()
        plan = await service.plan("daily", scheduled_for=issue.scheduled_for)
        return plan, await service.send(plan.issue)

    replan, resend = run(settings, clock, transport, again)
    assert (replan.added, resend.sent, len(transport.sent)) == (0, 0, 2)

    # The next day's digest starts where the delivered one ended: nothing new, no mail.
    clock.now += timedelta(days=1)

    async def next_day(syn: Syndication):  # type: ignore[no-untyped-def]
        service = await syn.digest_service()
        return await service.plan("daily")

    assert run(settings, clock, transport, next_day).recipients == 0


def test_failures_retry_then_fail_and_bounce(tmp_path: Path, store_url: str, server: TestServer) -> None:
    settings = setup(tmp_path, store_url, server)
    clock = Clock(START)
    transport = FakeTransport(
        {
            "bi-thu@chibo-vanphong.example.org": SendOutcome(ok=False, error="451 thử lại sau"),
            "pho@chibo-vanphong.example.org": SendOutcome(
                ok=False, permanent=True, error="550 không có hộp thư"
            ),
        }
    )

    async def go(syn: Syndication):  # type: ignore[no-untyped-def]
        await syn.upsert_subscribers(PEOPLE)
        await syn.poll()
        service = await syn.digest_service()
        plan = await service.plan("daily")
        first = await service.send(plan.issue)
        counts = await syn.delivery_counts(plan.issue.id)
        return plan, first, counts, syn.metrics.render(None).decode()

    plan, first, counts, metrics = run(settings, clock, transport, go)
    assert (first.sent, first.retrying, first.failed) == (0, 1, 1)
    # Each attempt is counted by what became of it, with the transport's time.
    assert 'syndication_deliveries_attempted_total{result="retry"} 1.0' in metrics
    assert 'syndication_deliveries_attempted_total{result="failed"} 1.0' in metrics
    assert 'syndication_deliveries_attempted_total{result="sent"} 0.0' in metrics
    assert "syndication_send_seconds_count 2.0" in metrics
    assert first.bounced == ["pho@chibo-vanphong.example.org"]
    assert counts["retrying"] == 1
    assert counts["failed"] == 1

    # Not due yet: nothing is tried. Once due and the server takes it: sent.
    del transport.answers["bi-thu@chibo-vanphong.example.org"]

    async def resend(syn: Syndication):  # type: ignore[no-untyped-def]
        service = await syn.digest_service()
        return await service.send(plan.issue)

    assert run(settings, clock, transport, resend).sent == 0
    clock.now += timedelta(minutes=2)
    assert run(settings, clock, transport, resend).sent == 1

    async def bounced(syn: Syndication):  # type: ignore[no-untyped-def]
        return await syn.list_subscribers(status="bounced")

    assert [s.address for s in run(settings, clock, transport, bounced)] == ["pho@chibo-vanphong.example.org"]


def test_view_in_browser_archive(tmp_path: Path, store_url: str, server: TestServer) -> None:
    settings = setup(tmp_path, store_url, server)
    transport = FakeTransport()

    async def go(syn: Syndication):  # type: ignore[no-untyped-def]
        await syn.upsert_subscribers(PEOPLE[:1])
        await syn.poll()
        service = await syn.digest_service()
        plan = await service.plan("daily")
        await service.send(plan.issue)
        html = transport.parsed()[0].get_body(("html",)).get_content()
        match = re.search(r'href="https://syn\.example\.vn/ban-tin/(\d+)/([0-9a-f]+)"', html)
        assert match, html[:2000]
        page = await service.archive(int(match.group(1)), match.group(2))
        missing = await service.archive(int(match.group(1)), "0" * 32)
        return page, missing

    page, missing = run(settings, Clock(START), transport, go)
    assert missing is None
    assert page is not None
    assert ITEMS[0][1] in page
    # Whoever opens the archive is not the subscriber: no personal link or name in it.
    assert "/huy/" not in page
    assert "/tuy-chon/" not in page
    assert "Nguyễn Thị Hoà" not in page


class BrokenTransport(FakeTransport):
    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        raise TransportError("the server refused the credentials of 'ban-tin'")


def test_a_broken_transport_keeps_everything_queued(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = setup(tmp_path, store_url, server)

    async def go(syn: Syndication):  # type: ignore[no-untyped-def]
        await syn.upsert_subscribers(PEOPLE)
        await syn.poll()
        service = await syn.digest_service()
        plan = await service.plan("daily")
        with pytest.raises(TransportError, match="credentials"):
            await service.send(plan.issue)
        return await syn.delivery_counts(plan.issue.id), await syn.list_subscribers(status="bounced")

    counts, bounced = run(settings, Clock(START), BrokenTransport(), go)
    assert counts["retrying"] == 2
    assert counts["failed"] == 0
    assert bounced == []


class BuggyTransport(FakeTransport):
    """Fails with an error that is not ours (a bug) for one recipient."""

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        if recipient.startswith("pho@"):
            raise RuntimeError("a bug in the transport")
        return await super().send(sender=sender, recipient=recipient, data=data)


def test_a_message_the_transport_chokes_on_fails_alone(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = setup(tmp_path, store_url, server)
    transport = BuggyTransport()

    async def go(syn: Syndication):  # type: ignore[no-untyped-def]
        await syn.upsert_subscribers(PEOPLE)
        await syn.poll()
        service = await syn.digest_service()
        plan = await service.plan("daily")
        summary = await service.send(plan.issue)
        deliveries = await syn._db(syn.store.get_deliveries, plan.issue.id)
        return summary, deliveries, await syn.list_subscribers(status="bounced")

    summary, deliveries, bounced = run(settings, Clock(START), transport, go)
    assert [r for r, _ in transport.sent] == ["bi-thu@chibo-vanphong.example.org"]
    assert (summary.sent, summary.failed) == (1, 1)
    (failed,) = [d for d in deliveries if d.status == "failed"]
    assert failed.address == "pho@chibo-vanphong.example.org"
    assert failed.last_error is not None
    assert "a bug in the transport" in failed.last_error
    assert bounced == []  # our bug says nothing about the mailbox (bounce_threshold is 1 here)


def test_a_confirmation_to_an_internationalised_domain_goes_to_its_ascii_form(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    settings = setup(tmp_path, store_url, server)
    transport = FakeTransport()

    async def go(syn: Syndication) -> None:
        await syn.upsert_subscribers([SubscriberData(address="idn@exämple.org", status="pending")])
        subscriber = await syn.get_subscriber("idn@exämple.org")
        assert subscriber is not None
        await (await syn.digest_service()).send_confirmation(subscriber)

    run(settings, Clock(START), transport, go)
    ((recipient, _),) = transport.sent
    assert recipient == "idn@xn--exmple-cua.org"
    assert [a.addr_spec for a in transport.parsed()[0]["To"].addresses] == ["idn@xn--exmple-cua.org"]


class SlowToMarkStore(Store):
    """The real store, slow to record that messages were sent (a busy database): counts
    the messages it has marked, for the transport below to compare with what it sent."""

    marked = 0

    def mark_sent(self, ids: Sequence[int], *, owner: str, now: datetime) -> int:
        time.sleep(0.05)
        done = super().mark_sent(ids, owner=owner, now=now)
        SlowToMarkStore.marked += len(ids)
        return done


class AheadTransport(FakeTransport):
    """Accepts at once, and records by how many messages it ran ahead of the store's marks."""

    def __init__(self) -> None:
        super().__init__()
        self.most_unmarked = 0

    async def send(self, *, sender: str, recipient: str, data: bytes) -> SendOutcome:
        outcome = await super().send(sender=sender, recipient=recipient, data=data)
        self.most_unmarked = max(self.most_unmarked, len(self.sent) - SlowToMarkStore.marked)
        return outcome


def test_a_slow_store_never_lets_the_sender_run_ahead_of_its_marks(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    """What a crash can send twice is what was sent and not yet marked: it stays within
    ``unmarked_limit`` however slow the store is to write (before, a busy database let the
    sender run ahead by hundreds of messages, which a kill then sent again)."""
    settings = setup(tmp_path, store_url, server)
    people = [SubscriberData(address=f"can-bo-{n}@example.org", organisation="Chi bộ") for n in range(300)]
    transport = AheadTransport()
    SlowToMarkStore.marked = 0

    async def go() -> int:
        store = SlowToMarkStore(settings.storage.url)
        async with Syndication(
            settings, clock=Clock(START), store=store, transport_factory=lambda: transport
        ) as syn:
            await syn.upsert_subscribers(people)
            await syn.poll()
            service = await syn.digest_service()
            plan = await service.plan("daily")
            assert plan.issue is not None
            return (await service.send(plan.issue)).sent

    assert asyncio.run(go()) == 300
    assert len(transport.sent) == 300
    assert 0 < transport.most_unmarked <= unmarked_limit(settings.mail.pool)

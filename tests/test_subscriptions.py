"""The subscription use-cases in one process: the real store, our fake mail transport (our own
seam), a clock moved by hand. What the pages ask of ``SubscriptionService``: limits kept in
the store, the confirmation mail, expiry and the daily clean-up."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from syndication import config
from syndication.core import Syndication
from syndication.core.subscriptions import SubscriptionService
from syndication.store import Store
from syndication.store.schema import rate_hits
from tests.test_consent import GMAIL_VARIANTS
from tests.test_core import START, Clock, settings_for
from tests.test_digests import DIGESTS, FakeTransport

T = TypeVar("T")
DAY = timedelta(days=1)


def make_settings(tmp_path: Path, store_url: str, subscribe: str = "") -> config.Settings:
    settings = settings_for(tmp_path, store_url, "")
    path = settings.path
    path.write_text(
        path.read_text(encoding="utf-8") + DIGESTS + f"[subscribe]\n{subscribe}\n", encoding="utf-8"
    )
    return config.load(path, environ={})


def run(
    settings: config.Settings,
    clock: Clock,
    transport: FakeTransport,
    work: Callable[[SubscriptionService, Syndication], Awaitable[T]],
) -> T:
    async def go() -> T:
        async with Syndication(settings, clock=clock, transport_factory=lambda: transport) as syn:
            await syn.start()
            service = await syn.subscription_service()
            try:
                return await work(service, syn)
            finally:
                await service.drain()

    return asyncio.run(go())


async def ask(service: SubscriptionService, address: str, name: str = "") -> float | None:
    return await service.subscribe(address=address, display_name=name, categories=[], digest="daily")


def test_provider_equivalent_addresses_share_one_mailboxs_limit(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url)  # 3 per mailbox per day
    clock = Clock(START)
    transport = FakeTransport()

    async def work(service: SubscriptionService, syn: Syndication) -> list[float | None]:
        answers = [await ask(service, address) for address in GMAIL_VARIANTS]
        clock.now = START + DAY  # the first three leave the window
        answers.append(await ask(service, GMAIL_VARIANTS[-1]))
        return answers

    answers = run(settings, clock, transport, work)

    assert answers[:3] == [None, None, None]
    assert answers[3] == answers[4] == DAY.total_seconds()
    assert answers[5] is None
    assert len(transport.sent) == 4


def test_a_refused_address_or_choice_costs_no_limit(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url, "per_address_per_day = 1\nconfirmations_per_hour = 1")
    transport = FakeTransport()

    async def work(service: SubscriptionService, syn: Syndication) -> float | None:
        for _ in range(3):
            with pytest.raises(ValueError, match="không hợp lệ"):
                await ask(service, "sai dia chi@example.org")
            with pytest.raises(ValueError, match="Bản tin"):
                await service.subscribe(
                    address="an@example.org", display_name="", categories=[], digest="khong-co"
                )
        return await ask(service, "an@example.org")

    assert run(settings, Clock(START), transport, work) is None
    assert [recipient for recipient, _ in transport.sent] == ["an@example.org"]


def test_the_site_wide_hourly_cap(tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, store_url, "confirmations_per_hour = 2")
    clock = Clock(START)
    transport = FakeTransport()

    async def work(service: SubscriptionService, syn: Syndication) -> list[float | None]:
        answers = [await ask(service, "mot@example.org")]
        clock.now = START + timedelta(minutes=15)
        answers += [await ask(service, "hai@example.net"), await ask(service, "ba@example.com")]
        clock.now = START + timedelta(hours=1, seconds=1)
        answers.append(await ask(service, "ba@example.com"))
        return answers

    with caplog.at_level(logging.INFO, logger="syndication.core.subscriptions"):
        answers = run(settings, clock, transport, work)

    assert answers == [None, None, 45 * 60, None]
    assert "the site's limit of 2 confirmation e-mails per hour is reached" in caplog.text
    assert sorted(r for r, _ in transport.sent) == ["ba@example.com", "hai@example.net", "mot@example.org"]


def test_the_client_limit_and_its_keys(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url, "per_client_per_hour = 2")
    clock = Clock(START)

    async def work(service: SubscriptionService, syn: Syndication) -> list[float | None]:
        answers = [await service.limit_client("203.0.113.7") for _ in range(3)]
        answers.append(await service.limit_client("2001:db8:1:2::/64"))
        clock.now = START + timedelta(hours=1, seconds=1)
        answers.append(await service.limit_client("203.0.113.7"))
        return answers

    assert run(settings, clock, FakeTransport(), work) == [None, None, 3600, None, None]
    # The limits keep keyed hashes, not client addresses.
    with Store(store_url) as store, store._db.transaction("read hits") as connection:
        keys = set(connection.scalars(select(rate_hits.c.key)))
    assert len(keys) == 2
    assert all(re.fullmatch(r"client:[0-9a-f]{32}", key) for key in keys)


def test_the_confirmation_greets_only_a_name(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url, 'confirm_expiry = "2d"')
    transport = FakeTransport()

    async def work(service: SubscriptionService, syn: Syndication) -> None:
        await ask(service, "hoa@example.org", "  Nguyễn Thị   Hoà ")
        await ask(service, "la@example.org", "Trúng thưởng! Xem https://evil.example")

    run(settings, Clock(START), transport, work)

    texts = {m["To"].addresses[0].addr_spec: m.get_body(("plain",)).get_content() for m in transport.parsed()}
    assert "Kính gửi đồng chí Nguyễn Thị Hoà," in texts["hoa@example.org"]
    assert "Liên kết xác nhận có hiệu lực trong 2 ngày." in " ".join(texts["hoa@example.org"].split())
    assert "Kính gửi quý bạn đọc," in texts["la@example.org"]
    assert "evil" not in texts["la@example.org"]


def test_links_expire_as_configured_and_the_clean_up_purges_them(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url, 'confirm_expiry = "2d"')
    clock = Clock(START)
    transport = FakeTransport()

    async def work(service: SubscriptionService, syn: Syndication) -> None:
        await ask(service, "cu@example.org")
        clock.now = START + DAY
        await ask(service, "moi@example.org")
        tokens = {s.address: s.token for s in await syn.list_subscribers()}

        clock.now = START + 2 * DAY + timedelta(seconds=1)
        expired = await service.confirm(tokens["cu@example.org"])
        assert expired is not None
        assert (expired.state, expired.subscriber.status) == ("expired", "pending")
        opened = await service.confirmation(tokens["moi@example.org"])
        assert opened is not None
        assert opened.state == "open"

        pruned = await syn.prune()
        assert pruned.subscribers == 1
        assert [s.address for s in await syn.list_subscribers()] == ["moi@example.org"]
        assert await service.confirmation(tokens["cu@example.org"]) is None
        done = await service.confirm(tokens["moi@example.org"])
        assert done is not None
        assert (done.state, done.subscriber.status) == ("confirmed", "active")

    run(settings, clock, transport, work)

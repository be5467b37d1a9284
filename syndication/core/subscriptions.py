"""Subscriptions from the web: double opt-in, its limits, preferences, unsubscribe.

``SubscriptionService`` is what the web pages ask (it satisfies
``web.subscribe.SubscriptionProvider`` structurally; core does not import web).
Answers never tell whether an address was known: ``subscribe`` behaves the same
for a new, pending, active or unsubscribed address, and the confirmation mail is
sent in the background so the response time does not tell either.

The subscribe limits are kept in the store (``Store.take_rate_limits``), so a
restart forgets nothing and every process of the site counts against the same
limits: requests per client per hour, confirmation mails per mailbox per day (the
mailbox by ``policy.optin.mailbox_key``: Gmail's dots, ``googlemail.com`` and
``+tags`` are one mailbox), and confirmation mails per hour over the site. Every
request that passes the checks counts as a mail, whether or not the address needed
one, so that the limits do not tell either. Keys are HMACs (``[subscribe]``
secret, or a fixed key when none is set): the store keeps neither client
addresses nor e-mail addresses for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import timedelta

from syndication import directory
from syndication.config import Settings
from syndication.core.digests import DigestService
from syndication.core.feeds import DbRunner
from syndication.errors import SyndicationError
from syndication.policy.optin import greeting_name, mailbox_key
from syndication.store import Store
from syndication.types import Clock, Confirmation, RateLimit, Subscriber, SubscriberData

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONGEST_WINDOW = DAY
"""No limit looks further back: the daily clean-up forgets older hits."""
SITE_KEY = "site:confirmations"
"""The key of the site-wide hourly limit on confirmation mails."""
_UNKEYED = b"syndication subscribe limits"
"""Keys the HMACs of rate-limit keys when ``[subscribe]`` has no secret: stable across
processes and restarts, which a random key would not be."""


class SubscriptionService:
    def __init__(
        self, settings: Settings, *, store: Store, db: DbRunner, clock: Clock, digests: DigestService
    ) -> None:
        self._settings = settings
        self._store = store
        self._db = db
        self._clock = clock
        self._digests = digests
        self._background: set[asyncio.Task[None]] = set()
        secret = settings.subscribe.secret
        self._rate_secret = secret.encode() if secret else _UNKEYED

    def categories(self) -> Sequence[tuple[str, str]]:
        return [(c.slug, c.title) for c in self._settings.categories]

    def digests(self) -> Sequence[tuple[str, str]]:
        return [(d.name, d.title or d.name) for d in self._settings.digests]

    def _check(self, categories: Sequence[str], digest: str) -> tuple[tuple[str, ...], str]:
        known = {c.slug for c in self._settings.categories}
        if any(c not in known for c in categories):
            raise ValueError("Chuyên mục đã chọn không có trong danh sách.")
        if self._settings.digest(digest) is None:
            raise ValueError("Bản tin đã chọn không có trong danh sách.")
        return tuple(sorted(set(categories))), digest

    def _key(self, kind: str, value: str) -> str:
        mac = hmac.new(self._rate_secret, f"rate\0{kind}\0{value}".encode(), hashlib.sha256)
        return f"{kind}:{mac.hexdigest()[:32]}"

    async def limit_client(self, client: str) -> float | None:
        """Count one subscribe request from ``client``: None when allowed, else the seconds
        until one more would be (nothing counted)."""
        limit = RateLimit(
            key=self._key("client", client), limit=self._settings.subscribe.per_client_per_hour, window=HOUR
        )
        refused = await self._db(self._store.take_rate_limits, [limit], now=self._clock())
        if refused is None:
            return None
        log.info("subscribe refused: too many requests from one client")
        return refused[1].total_seconds()

    async def subscribe(
        self, *, address: str, display_name: str, categories: Sequence[str], digest: str
    ) -> float | None:
        try:
            normalised = directory.normalise_address(address)
        except ValueError:
            raise ValueError("Địa chỉ e-mail không hợp lệ. Vui lòng kiểm tra lại.") from None
        cats, digest = self._check(categories, digest)
        limits = self._settings.subscribe
        mailbox = RateLimit(
            key=self._key("mailbox", mailbox_key(normalised)), limit=limits.per_address_per_day, window=DAY
        )
        site = RateLimit(key=SITE_KEY, limit=limits.confirmations_per_hour, window=HOUR)
        refused = await self._db(self._store.take_rate_limits, [mailbox, site], now=self._clock())
        if refused is not None:
            limit, wait = refused
            if limit.key == SITE_KEY:
                log.warning(
                    "subscribe refused: the site's limit of %d confirmation e-mails per hour is reached",
                    limit.limit,
                )
            else:
                log.info("subscribe refused: too many confirmation e-mails for one mailbox")
            return wait.total_seconds()
        name = " ".join(display_name.split())[:200]
        row = SubscriberData(
            address=normalised, display_name=name, categories=cats, digest=digest, status="pending"
        )
        subscriber, needs_confirmation = await self._db(self._store.subscribe_pending, row, now=self._clock())
        if needs_confirmation:
            task = asyncio.create_task(self._confirm_mail(subscriber, greeting_name(name)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return None

    async def _confirm_mail(self, subscriber: Subscriber, name: str) -> None:
        try:
            await self._digests.send_confirmation(subscriber, name=name)
        except SyndicationError as exc:
            log.warning("confirmation e-mail to subscriber %d not sent: %s", subscriber.id, exc)
        except Exception:  # a bug: keep its traceback in the log (a background task has no caller)
            log.exception("confirmation e-mail to subscriber %d not sent", subscriber.id)

    async def drain(self) -> None:
        """Wait for confirmation mails still being sent (on shutdown, and in tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def confirmation(self, token: str) -> Confirmation | None:
        expiry = self._settings.subscribe.confirm_expiry
        return await self._db(self._store.confirmation, token, expiry=expiry, now=self._clock())

    async def confirm(self, token: str) -> Confirmation | None:
        expiry = self._settings.subscribe.confirm_expiry
        return await self._db(self._store.confirm, token, expiry=expiry, now=self._clock())

    async def subscriber(self, token: str) -> Subscriber | None:
        return await self._db(self._store.get_subscriber, token=token)

    async def set_preferences(
        self, token: str, *, categories: Sequence[str], digest: str
    ) -> Subscriber | None:
        cats, digest = self._check(categories, digest)
        return await self._db(
            self._store.set_preferences, token, categories=cats, digest=digest, now=self._clock()
        )

    async def unsubscribe(self, token: str) -> Subscriber | None:
        return await self._db(self._store.unsubscribe, token, now=self._clock())

"""Subscriptions from the web: double opt-in, preferences, unsubscribe.

``SubscriptionService`` is what the web pages ask (it satisfies
``web.subscribe.SubscriptionProvider`` structurally; core does not import web).
Answers never tell whether an address was known: ``subscribe`` behaves the same
for a new, pending, active or unsubscribed address, and the confirmation mail is
sent in the background so the response time does not tell either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from syndication import directory
from syndication.config import Settings
from syndication.core.digests import DigestService
from syndication.core.feeds import DbRunner
from syndication.errors import SyndicationError
from syndication.store import Store
from syndication.types import Clock, Subscriber, SubscriberData

log = logging.getLogger(__name__)


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

    async def subscribe(
        self, *, address: str, display_name: str, categories: Sequence[str], digest: str
    ) -> None:
        try:
            normalised = directory.normalise_address(address)
        except ValueError:
            raise ValueError("Địa chỉ e-mail không hợp lệ. Vui lòng kiểm tra lại.") from None
        cats, digest = self._check(categories, digest)
        row = SubscriberData(
            address=normalised,
            display_name=" ".join(display_name.split())[:200],
            categories=cats,
            digest=digest,
            status="pending",
        )
        subscriber, needs_confirmation = await self._db(self._store.subscribe_pending, row, now=self._clock())
        if needs_confirmation:
            task = asyncio.create_task(self._confirm_mail(subscriber))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _confirm_mail(self, subscriber: Subscriber) -> None:
        try:
            await self._digests.send_confirmation(subscriber)
        except SyndicationError as exc:
            log.warning("confirmation e-mail to subscriber %d not sent: %s", subscriber.id, exc)
        except Exception:  # a bug: keep its traceback in the log (a background task has no caller)
            log.exception("confirmation e-mail to subscriber %d not sent", subscriber.id)

    async def drain(self) -> None:
        """Wait for confirmation mails still being sent (on shutdown, and in tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def confirm(self, token: str) -> Subscriber | None:
        return await self._db(self._store.confirm, token, now=self._clock())

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

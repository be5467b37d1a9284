"""Digests: plan one issue of a digest into the outbox, then send the outbox.

The outbox (``deliveries`` in the store) is the truth: planning writes one row per
subscriber with something new, sending claims rows with a lease, sends, and marks
each one. A crash loses nothing: a row marked sent is never sent again, a row left
``sending`` by a dead process is claimed again after its lease with the same
Message-ID, and the same (digest, scheduled time) is one issue however often it is
planned.

Rendering is shared: subscribers with the same categories and window get the same
content, rendered (and CSS-inlined) and transfer-encoded once; only the name and
personal links are encoded and filled in per message, and the MIME is assembled
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from syndication.config import Settings
from syndication.core.batching import WriteBehind
from syndication.core.feeds import DbRunner
from syndication.digest import select
from syndication.digest.render import DigestRenderer, Rendered
from syndication.errors import SyndicationError, TransportError
from syndication.mail.body import BodyTemplate
from syndication.mail.message import DkimSigner, OutgoingMessage, build, message_id
from syndication.mail.send import MaildirTransport, SmtpTransport, Transport
from syndication.store import NewDelivery, Store
from syndication.types import Clock, Delivery, DigestContent, DigestIssue, DigestSpec, SendOutcome, Subscriber

log = logging.getLogger(__name__)

CLAIM_BATCH = 500
MARK_SENT_LINGER = 0.005
"""Seconds accepted messages wait to be marked sent together (``WriteBehind``)."""
BODY_TEMPLATES_KEPT = 64
"""Encoded digest bodies kept for reuse: more than the distinct contents of a batch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What an issue holds: who gets a message, who has nothing new."""

    issue: DigestIssue | None
    """None in a dry run."""
    added: int
    """Deliveries written now (0 when the issue was planned before)."""
    recipients: int
    """Subscribers with something new."""
    nothing_new: int
    preview: tuple[Subscriber, DigestContent] | None = None
    resumed: bool = False
    """True when an existing, unfinished issue is continued instead of a new one."""


@dataclass(slots=True, kw_only=True)
class SendSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: list[str] = field(default_factory=list)


def transport_for(settings: Settings) -> Transport:
    mail = settings.mail
    if mail.transport == "smtp":
        return SmtpTransport(
            mail.host,
            mail.port,
            security=mail.security,
            username=mail.username,
            password=mail.password,
            pool_size=mail.pool,
            rate=mail.rate or None,
            timeout=mail.timeout,
        )
    return MaildirTransport(mail.maildir)


class DigestService:
    """Plans and sends digests; one per ``Syndication``."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        db: DbRunner,
        clock: Clock,
        templates_dir: Path,
        transport_factory: Callable[[], Transport] | None = None,
        owner: str | None = None,
        on_send: Callable[[str, float], None] | None = None,
    ) -> None:
        self._settings = settings
        # (result, seconds) of each hand-over to the transport: "sent", "retry" or "failed".
        self._on_send = on_send
        self._store = store
        self._db = db
        self._clock = clock
        self._transport_factory = transport_factory or (lambda: transport_for(settings))
        site = settings.site
        self._base = site.base_url if site.base_url.endswith("/") else site.base_url + "/"
        self._domain = urlsplit(self._base).hostname or "localhost"
        self._category_titles = {c.slug: c.title for c in settings.categories}
        self.renderer = DigestRenderer(
            templates_dir=templates_dir,
            site_title=site.title,
            site_url=self._base,
            publisher=settings.mail.from_name or site.title,
            timezone=site.timezone,
        )
        mail = settings.mail
        self._dkim = (
            DkimSigner(mail.dkim_selector, mail.dkim_domain, mail.dkim_key.read_bytes())
            if mail.dkim_key and mail.dkim_selector and mail.dkim_domain
            else None
        )
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._templates: dict[Rendered, tuple[BodyTemplate, BodyTemplate]] = {}
        # Accepted messages are marked sent together, gathered for a few milliseconds
        # (one write per message would cost more than sending it); each send waits
        # for its mark, so at most the messages in flight or accepted in those last
        # milliseconds at a crash can go out twice (with the same Message-ID).
        self._sent: WriteBehind[int] = WriteBehind(
            lambda ids: self._db(self._store.mark_sent, ids, owner=self._owner, now=self._clock()),
            linger=MARK_SENT_LINGER,
        )

    def spec(self, name: str) -> DigestSpec:
        spec = self._settings.digest(name)
        if spec is None:
            known = ", ".join(d.name for d in self._settings.digests) or "none configured"
            raise SyndicationError(f'unknown digest "{name}" (configured: {known})')
        return spec

    # --- links ----------------------------------------------------------------------

    def preferences_url(self, token: str) -> str:
        return f"{self._base}tuy-chon/{token}"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self._base}huy/{token}"

    def confirm_url(self, token: str) -> str:
        return f"{self._base}xac-nhan/{token}"

    def archive_url(self, issue_id: int, key: str) -> str:
        return f"{self._base}ban-tin/{issue_id}/{key}"

    def _archive_html(self, rendered: Rendered) -> str:
        """The page behind "view in browser": the shared HTML with neutral links instead of
        personal ones (whoever holds the link is not the subscriber)."""
        html, _ = self.renderer.personalise(
            rendered,
            display_name="",
            preferences_url=f"{self._base}dang-ky",
            unsubscribe_url=f"{self._base}dang-ky",
        )
        return html

    async def archive(self, issue_id: int, key: str) -> str | None:
        """The archived page of one content of an issue (``/ban-tin/{issue}/{key}``)."""
        return await self._db(self._store.get_archive, issue_id, key)

    def preview_html(self, subscriber: Subscriber, content: DigestContent) -> str:
        """The HTML part ``subscriber`` would receive for ``content`` (``digest preview``)."""
        rendered = self.renderer.render(content, archive_url=self.archive_url(0, select.content_key(content)))
        html, _ = self.renderer.personalise(
            rendered,
            display_name=subscriber.display_name,
            preferences_url=self.preferences_url(subscriber.token),
            unsubscribe_url=self.unsubscribe_url(subscriber.token),
        )
        return html

    # --- planning -------------------------------------------------------------------

    async def content_for(self, spec: DigestSpec, subscriber: Subscriber, *, now: datetime) -> DigestContent:
        """What ``subscriber`` would receive if the digest ran at ``now``."""
        windows = await self._db(self._store.last_windows, spec.name, [subscriber.id])
        last_end = windows.get(subscriber.id)
        start, end = select.window(last_end=last_end, now=now, period=spec.period)
        return await self._content(spec, subscriber.categories, start, end, first=last_end is None)

    async def _content(
        self, spec: DigestSpec, categories: Sequence[str], start: datetime, end: datetime, *, first: bool
    ) -> DigestContent:
        """The content of one window; ``first``: the subscriber's first digest (see
        ``select.takes``: the store query and the re-check apply the same rule)."""
        articles = await self._db(
            self._store.digest_articles,
            categories=list(categories),
            seen_after=start,
            seen_until=end,
            limit=spec.max_items * 4,
            recent_after=end - spec.period,
            first=first,
        )
        states = await self._db(self._store.source_states, sorted({a.source_id for a in articles}))
        return select.content(
            digest=spec,
            categories=categories,
            articles=articles,
            category_titles=self._category_titles,
            start=start,
            end=end,
            first=first,
            sources_started={id: state.started for id, state in states.items()},
        )

    async def plan(self, name: str, *, scheduled_for: datetime | None = None, dry_run: bool = False) -> Plan:
        """Create (or find) the issue for ``scheduled_for`` (default now) and write its outbox."""
        spec = self.spec(name)
        now = self._clock()
        when = scheduled_for or now
        issue: DigestIssue | None = None
        if not dry_run and scheduled_for is None:
            # A run that stopped part-way (a crash, Ctrl-C) is finished before a new one starts.
            latest = await self._db(self._store.latest_issue, name)
            if latest is not None:
                counts = await self._db(self._store.delivery_counts, latest.id)
                if counts.get("pending", 0) or counts.get("sending", 0):
                    log.info("digest %s: resuming issue %d", name, latest.id)
                    return Plan(issue=latest, added=0, recipients=0, nothing_new=0, resumed=True)
        if not dry_run:
            found, created = await self._db(self._store.create_issue, name, when, now=now)
            if not created and found.planned is not None:
                log.info("digest %s: issue %d for %s exists; sending what is left", name, found.id, when)
                return Plan(issue=found, added=0, recipients=0, nothing_new=0, resumed=True)
            if not created:
                # Made by a process that stopped (or is still busy) before writing the whole
                # outbox: planning again adds only the missing rows (one per address).
                log.info("digest %s: completing the outbox of issue %d for %s", name, found.id, when)
            issue = found
            superseded = await self._db(self._store.supersede, digest=name, before_issue=issue.id, now=now)
            if superseded:
                log.info(
                    "digest %s: issue %d replaces %d queued messages of earlier issues",
                    name,
                    issue.id,
                    superseded,
                )
        subscribers = await self._db(self._store.list_subscribers, status="active", digest=name)
        windows = await self._db(self._store.last_windows, name, [s.id for s in subscribers])
        contents: dict[tuple[tuple[str, ...], datetime, bool], DigestContent] = {}
        items: list[NewDelivery] = []
        nothing_new = 0
        preview: tuple[Subscriber, DigestContent] | None = None
        for subscriber in subscribers:
            last_end = windows.get(subscriber.id)
            first = last_end is None
            start, end = select.window(last_end=last_end, now=when, period=spec.period)
            key = (tuple(sorted(subscriber.categories)), start, first)
            content = contents.get(key)
            if content is None:
                content = contents[key] = await self._content(
                    spec, subscriber.categories, start, end, first=first
                )
            if content.count == 0 and spec.skip_empty:
                nothing_new += 1
                continue
            if preview is None:
                preview = (subscriber, content)
            items.append(
                NewDelivery(
                    subscriber_id=subscriber.id,
                    address=subscriber.address,
                    organisation=subscriber.organisation,
                    message_id=message_id(issue.id if issue else 0, subscriber.address, self._domain),
                    window_start=start,
                    window_end=end,
                    first_window=first,
                )
            )
        added = 0
        if issue is not None:
            if items:
                added = await self._db(self._store.add_deliveries, issue.id, items, now=now)
            await self._db(self._store.mark_planned, issue.id, now=self._clock())
        return Plan(issue=issue, added=added, recipients=len(items), nothing_new=nothing_new, preview=preview)

    # --- sending --------------------------------------------------------------------

    async def send(
        self,
        issue: DigestIssue | None,
        *,
        on_progress: Callable[[int], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> SendSummary:
        """Send every delivery that is due, of ``issue`` or (None) of every issue; retries
        that are not due yet stay queued.

        When ``stop`` is set, no new message starts: what is claimed and not yet tried
        is given back (due again at once, for this or another worker), and the SMTP
        transactions in flight finish.
        """
        summary = SendSummary()
        issues: dict[int, DigestIssue] = {issue.id: issue} if issue is not None else {}
        transport: Transport | None = None
        try:
            while stop is None or not stop.is_set():
                now = self._clock()
                batch = await self._db(
                    self._store.claim_deliveries,
                    issue_id=issue.id if issue is not None else None,
                    limit=CLAIM_BATCH,
                    lease=self._settings.mail.lease,
                    owner=self._owner,
                    now=now,
                )
                if not batch:
                    break
                if transport is None:
                    transport = self._transport_factory()
                by_issue: dict[int, list[Delivery]] = {}
                for delivery in batch:
                    by_issue.setdefault(delivery.issue_id, []).append(delivery)
                for issue_id, deliveries in by_issue.items():
                    found = issues.get(issue_id) or await self._db(self._store.get_issue, issue_id)
                    if found is None:  # pragma: no cover - deliveries are deleted with their issue
                        continue
                    issues[issue_id] = found
                    spec = self._settings.digest(found.digest)
                    if spec is None:
                        # The digest left the configuration: its queued messages are not sent.
                        await self._fail_all(deliveries, f"digest {found.digest} is no longer configured")
                        summary.failed += len(deliveries)
                        continue
                    renewing = asyncio.create_task(self._keep_leases([d.id for d in deliveries]))
                    try:
                        await self._send_batch(spec, found, deliveries, transport, summary, on_progress, stop)
                    finally:
                        renewing.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await renewing
        finally:
            if transport is not None:
                await transport.aclose()
        return summary

    async def _keep_leases(self, ids: list[int]) -> None:
        """While a batch is being sent, renew its leases every third of ``mail.lease``: a
        slow server or a low rate limit must not let another worker take rows this one is
        still sending (it would send them twice)."""
        lease = self._settings.mail.lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self._db(
                    self._store.renew_delivery_leases, ids, owner=self._owner, until=self._clock() + lease
                )
            except SyndicationError as exc:
                log.warning("could not renew delivery leases: %s", exc)

    async def _fail_all(self, deliveries: Sequence[Delivery], reason: str) -> None:
        for delivery in deliveries:
            await self._db(
                self._store.mark_failed, delivery.id, owner=self._owner, error=reason, now=self._clock()
            )

    async def _send_batch(
        self,
        spec: DigestSpec,
        issue: DigestIssue,
        batch: Sequence[Delivery],
        transport: Transport,
        summary: SendSummary,
        on_progress: Callable[[int], None] | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        subscribers = {
            s.id: s
            for s in await self._db(
                self._store.subscribers_by_ids,
                [d.subscriber_id for d in batch if d.subscriber_id is not None],
            )
        }
        rendered: dict[
            tuple[tuple[str, ...], datetime | None, datetime | None, bool], tuple[Rendered, str]
        ] = {}
        messages: list[tuple[Delivery, bytes | None]] = []
        for delivery in batch:
            subscriber = (
                subscribers.get(delivery.subscriber_id) if delivery.subscriber_id is not None else None
            )
            if subscriber is None or subscriber.status != "active" or delivery.window_start is None:
                messages.append((delivery, None))  # unsubscribed since planning: nothing to send
                continue
            key = (
                tuple(sorted(subscriber.categories)),
                delivery.window_start,
                delivery.window_end,
                delivery.first_window,
            )
            if key not in rendered:
                content = await self._content(
                    spec,
                    subscriber.categories,
                    delivery.window_start,
                    delivery.window_end or issue.scheduled_for,
                    first=delivery.first_window,
                )
                content_key = select.content_key(content)
                archive = self.archive_url(issue.id, content_key)
                rendered[key] = (self.renderer.render(content, archive_url=archive), archive)
                html = self._archive_html(rendered[key][0])
                await self._db(self._store.save_archive, issue.id, content_key, html, now=self._clock())
            messages.append((delivery, self._message(spec, issue, delivery, subscriber, rendered[key][0])))
        limit = asyncio.Semaphore(max(1, self._settings.mail.pool * 2))
        broken: list[str] = []
        released: list[int] = []
        sender = self._settings.mail.from_address

        async def deliver(delivery: Delivery, data: bytes | None) -> None:
            if stop is not None and stop.is_set():
                released.append(delivery.id)  # stopping: not tried, given back below
                return
            if data is None:
                await self._db(
                    self._store.mark_failed,
                    delivery.id,
                    owner=self._owner,
                    error="unsubscribed before sending",
                    now=self._clock(),
                )
                return
            took: float | None = None  # seconds the transport took, when it was asked
            if broken:
                outcome = SendOutcome(ok=False, error=f"not sent: {broken[0]}")
            else:
                async with limit:
                    if stop is not None and stop.is_set():
                        released.append(delivery.id)
                        return
                    try:
                        began = time.perf_counter()
                        outcome = await transport.send(sender=sender, recipient=delivery.address, data=data)
                        took = time.perf_counter() - began
                    except TransportError as exc:
                        # Nothing can be sent until the configuration or server is fixed: this
                        # is nobody's bounce. Keep every message queued and stop the run.
                        broken.append(str(exc))
                        outcome = SendOutcome(ok=False, error=f"not sent: {exc}")
            now = self._clock()
            result = "sent" if outcome.ok else "retry"
            if outcome.ok:
                await self._sent.add(delivery.id)
                summary.sent += 1
            elif not broken and (outcome.permanent or delivery.attempts >= self._settings.mail.max_attempts):
                result = "failed"
                await self._db(
                    self._store.mark_failed,
                    delivery.id,
                    owner=self._owner,
                    error=outcome.error or "failed",
                    now=now,
                )
                summary.failed += 1
                if outcome.permanent and delivery.subscriber_id is not None:
                    bounced = await self._db(
                        self._store.record_bounce,
                        delivery.subscriber_id,
                        threshold=self._settings.mail.bounce_threshold,
                        now=now,
                    )
                    if bounced:
                        summary.bounced.append(delivery.address)
            else:
                delay = _retry_delay(
                    delivery.attempts, self._settings.mail.retry_base, self._settings.mail.retry_max
                )
                await self._db(
                    self._store.mark_retry,
                    delivery.id,
                    owner=self._owner,
                    error=outcome.error or "temporary failure",
                    next_attempt=now + delay,
                    now=now,
                )
                summary.retrying += 1
            if took is not None and self._on_send is not None:
                self._on_send(result, took)
            if on_progress is not None:
                on_progress(1)

        await asyncio.gather(*(deliver(d, data) for d, data in messages))
        if released:
            await self._db(self._store.release_deliveries, released, owner=self._owner, now=self._clock())
            log.info("stopping: %d claimed messages given back to the outbox", len(released))
        if broken:
            raise TransportError(broken[0])

    def _message(
        self,
        spec: DigestSpec,
        issue: DigestIssue,
        delivery: Delivery,
        subscriber: Subscriber,
        rendered: Rendered,
    ) -> bytes:
        mail = self._settings.mail
        unsubscribe = self.unsubscribe_url(subscriber.token)
        html_values, text_values = self.renderer.personal_values(
            display_name=subscriber.display_name,
            preferences_url=self.preferences_url(subscriber.token),
            unsubscribe_url=unsubscribe,
        )
        html_body, text_body = self._body_templates(rendered)
        data = build(
            OutgoingMessage(
                from_address=mail.from_address,
                from_name=mail.from_name or self._settings.site.title,
                to_address=subscriber.address,
                to_name=subscriber.display_name,
                subject=rendered.subject,
                message_id=delivery.message_id,
                date=self._clock(),
                list_id=f"{spec.title or spec.name} <{spec.name}.{self._domain}>",
                unsubscribe_url=unsubscribe,
                unsubscribe_mailto=f"mailto:{mail.unsubscribe_mailto}?subject=unsubscribe"
                if mail.unsubscribe_mailto
                else None,
                html=html_body.fill(html_values),
                text=text_body.fill(text_values),
                reply_to=mail.reply_to,
            )
        )
        return self._dkim.sign(data) if self._dkim is not None else data

    def _body_templates(self, rendered: Rendered) -> tuple[BodyTemplate, BodyTemplate]:
        """The HTML and text of ``rendered`` with their shared parts transfer-encoded once:
        each message then encodes only its name and links. The last few are kept."""
        templates = self._templates.get(rendered)
        if templates is None:
            if len(self._templates) >= BODY_TEMPLATES_KEPT:
                del self._templates[next(iter(self._templates))]
            templates = (BodyTemplate(rendered.html_parts), BodyTemplate(rendered.text_parts))
            self._templates[rendered] = templates
        return templates

    async def send_confirmation(self, subscriber: Subscriber) -> None:
        """The double opt-in e-mail with the confirmation link."""
        digest = self._settings.digest(subscriber.digest)
        # The name came from a public form: it is not repeated in a mail to an address
        # its writer may not own, so the form cannot put words in our mouth.
        rendered = self.renderer.render_confirmation(
            display_name="",
            confirm_url=self.confirm_url(subscriber.token),
            digest_title=digest.title if digest else subscriber.digest,
        )
        mail = self._settings.mail
        data = build(
            OutgoingMessage(
                from_address=mail.from_address,
                from_name=mail.from_name or self._settings.site.title,
                to_address=subscriber.address,
                to_name="",
                subject=rendered.subject,
                message_id=message_id(0, f"confirm:{subscriber.token}", self._domain),
                date=self._clock(),
                list_id=f"{self._settings.site.title} <confirm.{self._domain}>",
                unsubscribe_url=self.unsubscribe_url(subscriber.token),
                unsubscribe_mailto=None,
                html=rendered.html,
                text=rendered.text,
                reply_to=mail.reply_to,
            )
        )
        transport = self._transport_factory()
        try:
            outcome = await transport.send(sender=mail.from_address, recipient=subscriber.address, data=data)
        finally:
            await transport.aclose()
        if not outcome.ok:
            raise SyndicationError(f"could not send the confirmation e-mail: {outcome.error}")


def _retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff: base, 2x base, 4x base... capped."""
    exponent = min(max(attempts, 1) - 1, 20)
    delay: timedelta = base * (2**exponent)
    return min(delay, cap)

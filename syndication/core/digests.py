"""Digests: plan one issue of a digest into the outbox, and make the message of each
delivery the outbox sends (``outbox``).

The outbox (``deliveries`` in the store) is the truth: planning writes one row per
subscriber with something new, and the same (digest, scheduled time) is one issue
however often it is planned. Sending (claims, leases, marks) is ``outbox.Outbox``'s.

Rendering is shared: subscribers with the same categories and window get the same
content, rendered (and CSS-inlined) and transfer-encoded once; only the name and
personal links are encoded and filled in per message, and the MIME is assembled
directly.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from syndication import addresses
from syndication.config import Settings
from syndication.core.feeds import DbRunner
from syndication.core.outbox import Outbox, Outgoing
from syndication.digest import select
from syndication.digest.render import DigestRenderer, Rendered
from syndication.errors import AddressError, SyndicationError
from syndication.mail.body import BodyTemplate
from syndication.mail.message import DkimSigner, OutgoingMessage, build, message_id
from syndication.mail.send import MaildirTransport, SmtpTransport, Transport
from syndication.store import NewDelivery, Store
from syndication.types import Clock, Delivery, DigestContent, DigestIssue, DigestSpec, Subscriber

log = logging.getLogger(__name__)

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
        self._templates: dict[Rendered, tuple[BodyTemplate, BodyTemplate]] = {}
        self.outbox = Outbox(
            settings,
            store=store,
            db=db,
            clock=clock,
            owner=owner or f"{socket.gethostname()}:{os.getpid()}",
            transport_factory=self._transport_factory,
            prepare=self._prepare,
            on_send=on_send,
        )
        # Sending is the outbox's: every due delivery (of an issue, or of all), and the
        # deliveries other senders hold.
        self.send = self.outbox.send
        self.held_claims = self.outbox.held_claims

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
        self,
        spec: DigestSpec,
        categories: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        first: bool,
        catch_up: bool = False,
    ) -> DigestContent:
        """The content of one window; ``first``: the subscriber's first digest (see
        ``select.takes``: the store query and the re-check apply the same rule). A
        ``catch_up`` bounds neither a first digest nor new sources by date."""
        articles = await self._db(
            self._store.digest_articles,
            categories=list(categories),
            seen_after=start,
            seen_until=end,
            limit=spec.max_items * 4,
            recent_after=None if catch_up else end - spec.period,
            first=first and not catch_up,
        )
        states = (
            {}
            if catch_up
            else await self._db(self._store.source_states, sorted({a.source_id for a in articles}))
        )
        return select.content(
            digest=spec,
            categories=categories,
            articles=articles,
            category_titles=self._category_titles,
            start=start,
            end=end,
            first=first and not catch_up,
            sources_started={id: state.started for id, state in states.items()},
        )

    async def plan(
        self,
        name: str,
        *,
        scheduled_for: datetime | None = None,
        dry_run: bool = False,
        catch_up: bool = False,
    ) -> Plan:
        """Create (or find) the issue for ``scheduled_for`` (default now) and write its outbox.
        A new ``catch_up`` issue is not bounded by date (``DigestIssue.catch_up``)."""
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
            found, created = await self._db(self._store.create_issue, name, when, now=now, catch_up=catch_up)
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
                    spec,
                    subscriber.categories,
                    start,
                    end,
                    first=first,
                    catch_up=issue.catch_up if issue is not None else catch_up,
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

    async def _prepare(
        self, spec: DigestSpec, issue: DigestIssue, batch: Sequence[Delivery]
    ) -> list[Outgoing]:
        """Each delivery's message, or why it gets none. Rendering is shared by content;
        one message that cannot be built (an unusable address, a bug) fails alone."""
        subscribers = {
            s.id: s
            for s in await self._db(
                self._store.subscribers_by_ids,
                [d.subscriber_id for d in batch if d.subscriber_id is not None],
            )
        }
        rendered: dict[tuple[tuple[str, ...], datetime | None, datetime | None, bool], Rendered | str] = {}
        outgoing: list[Outgoing] = []
        for delivery in batch:
            subscriber = (
                subscribers.get(delivery.subscriber_id) if delivery.subscriber_id is not None else None
            )
            if subscriber is None or subscriber.status != "active" or delivery.window_start is None:
                # Unsubscribed since planning: nothing to send.
                outgoing.append(Outgoing(delivery, problem="unsubscribed before sending", refused=False))
                continue
            try:
                # Checked again here: an address stored before a rule existed is not trusted.
                recipient = addresses.for_sending(delivery.address)
            except AddressError as exc:
                outgoing.append(Outgoing(delivery, problem=f"not sent: unusable address ({exc.reason})"))
                continue
            key = (
                tuple(sorted(subscriber.categories)),
                delivery.window_start,
                delivery.window_end,
                delivery.first_window,
            )
            if key not in rendered:
                rendered[key] = await self._render(spec, issue, subscriber, delivery)
            content = rendered[key]
            if isinstance(content, str):
                outgoing.append(Outgoing(delivery, problem=content))
                continue
            try:
                data = self._message(spec, issue, delivery, subscriber, content, recipient)
            except Exception as exc:  # one message that cannot be built fails alone
                if not isinstance(exc, ValueError):
                    log.exception("the message of delivery %d could not be built", delivery.id)
                problem = f"not sent: the message could not be built ({exc})"
                outgoing.append(Outgoing(delivery, problem=problem))
                continue
            outgoing.append(Outgoing(delivery, recipient=recipient, data=data))
        return outgoing

    async def _render(
        self, spec: DigestSpec, issue: DigestIssue, subscriber: Subscriber, delivery: Delivery
    ) -> Rendered | str:
        """The content of ``delivery``, rendered and archived; or, when rendering fails
        (a bug: logged), why its messages are not sent."""
        assert delivery.window_start is not None
        content = await self._content(
            spec,
            subscriber.categories,
            delivery.window_start,
            delivery.window_end or issue.scheduled_for,
            first=delivery.first_window,
            catch_up=issue.catch_up,
        )
        content_key = select.content_key(content)
        try:
            rendered = self.renderer.render(content, archive_url=self.archive_url(issue.id, content_key))
            html = self._archive_html(rendered)
        except Exception as exc:
            log.exception("digest %s: issue %d could not be rendered", spec.name, issue.id)
            return f"not sent: the digest could not be rendered ({exc})"
        await self._db(self._store.save_archive, issue.id, content_key, html, now=self._clock())
        return rendered

    def _message(
        self,
        spec: DigestSpec,
        issue: DigestIssue,
        delivery: Delivery,
        subscriber: Subscriber,
        rendered: Rendered,
        recipient: str,
    ) -> bytes:
        """The message of one delivery to ``recipient`` (the address on the wire).

        Raises:
            ValueError: a value cannot be written into the message.
        """
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
                to_address=recipient,
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

    async def send_confirmation(self, subscriber: Subscriber, *, name: str = "") -> None:
        """The double opt-in e-mail with the confirmation link, greeting ``name`` ("" for the
        neutral greeting; the caller passes only what ``policy.optin.greeting_name`` allows)."""
        digest = self._settings.digest(subscriber.digest)
        rendered = self.renderer.render_confirmation(
            display_name=name,
            confirm_url=self.confirm_url(subscriber.token),
            digest_title=digest.title if digest else subscriber.digest,
            valid_for=self._settings.subscribe.confirm_expiry,
        )
        mail = self._settings.mail
        recipient = addresses.for_sending(subscriber.address)
        data = build(
            OutgoingMessage(
                from_address=mail.from_address,
                from_name=mail.from_name or self._settings.site.title,
                to_address=recipient,
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
            outcome = await transport.send(sender=mail.from_address, recipient=recipient, data=data)
        finally:
            await transport.aclose()
        if not outcome.ok:
            raise SyndicationError(f"could not send the confirmation e-mail: {outcome.error}")

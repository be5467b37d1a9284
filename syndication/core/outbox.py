"""Sending the outbox: claim due deliveries with a lease, hand each message to the
transport, and mark what became of it.

The outbox (``deliveries`` in the store) is the truth. A crash loses nothing: a row
marked sent is never sent again, and a row left ``sending`` by a process that died is
sent again, with the same Message-ID, once that process is known to be gone (its
heartbeat fell silent, or, on this host, no process has its id: ``claimer_state``)
or its lease ran out, whichever comes first. A stop (``stop``, or cancelling) gives
back at once what was claimed and not tried.

One message that cannot be built or sent (an unusable address, a bug) fails alone,
with its reason; the others go on. Only a transport that cannot work at all
(``TransportError``) stops the run, and then nothing is counted against anyone.

Must not: render or build messages (``digests`` prepares them: ``Prepare``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syndication import addresses
from syndication.config import Settings
from syndication.core.batching import WriteBehind
from syndication.core.feeds import DbRunner
from syndication.core.service import MIN_SILENCE, SILENT_TICKS, ClaimerState, claimer_state, pid_exists
from syndication.errors import SyndicationError, TransportError
from syndication.mail.send import Transport
from syndication.store import Store
from syndication.types import Clock, Delivery, DigestIssue, DigestSpec, SendOutcome

log = logging.getLogger(__name__)

CLAIM_BATCH = 500
MARK_SENT_LINGER = 0.005
"""Seconds accepted messages wait to be marked sent together (``WriteBehind``)."""


@dataclass(slots=True, kw_only=True)
class SendSummary:
    """What one ``Outbox.send`` did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(address, why) of each message failed for good without a word to its server:
    an address we cannot use, a message that could not be built."""
    released: int = 0
    """Claimed messages given back untried because of a stop."""
    taken_over: list[tuple[str, int]] = field(default_factory=list)
    """(sender, messages) whose claims were taken over: that sender is gone (or the
    caller said it stopped: ``take_over_unknown``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldClaim:
    """Deliveries another sender holds, that this one cannot send until it lets go."""

    owner: str
    count: int
    until: datetime
    """When its leases run out (unless it renews them: it is at work)."""
    state: ClaimerState
    """``alive`` (it is sending them), ``unknown`` (no heartbeat: wait for ``until``) or
    ``gone`` (taken over by the next send)."""


@dataclass(slots=True)
class Outgoing:
    """One claimed delivery on its way: the bytes to send, or why nothing is sent."""

    delivery: Delivery
    recipient: str = ""
    """The address on the wire (``addresses.for_sending``)."""
    data: bytes | None = None
    problem: str | None = None
    """Why it fails for good without being sent; None when ``data`` is set."""
    refused: bool = True
    """Whether ``problem`` is ours to report (not "unsubscribed since")."""


Prepare = Callable[[DigestSpec, DigestIssue, Sequence[Delivery]], Awaitable[list[Outgoing]]]
"""Each claimed delivery of a batch of one issue with its message (or why it has none)."""


def unmarked_limit(pool: int) -> int:
    """How many messages may be sent (or in the transport's hands) and not yet marked in
    the store: twice the messages in flight (two per connection). After a crash, at most
    this many go out again, each with its Message-ID. Room enough that marks written in
    batches a few milliseconds apart never hold the sender back."""
    return 4 * max(1, pool)


class Outbox:
    """Sends what is due in the outbox; one per ``DigestService``."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        db: DbRunner,
        clock: Clock,
        owner: str,
        transport_factory: Callable[[], Transport],
        prepare: Prepare,
        on_send: Callable[[str, float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._db = db
        self._clock = clock
        self._owner = owner
        self._transport_factory = transport_factory
        self._prepare = prepare
        # (result, seconds) of each hand-over to the transport: "sent", "retry" or "failed".
        self._on_send = on_send
        # Accepted messages are marked sent together, gathered for a few milliseconds
        # (one write per message would cost more than sending it); each send waits
        # for its mark, so at most the messages in flight or accepted in those last
        # milliseconds at a crash can go out twice (with the same Message-ID).
        self._sent: WriteBehind[int] = WriteBehind(
            lambda ids: self._db(self._store.mark_sent, ids, owner=self._owner, now=self._clock()),
            linger=MARK_SENT_LINGER,
        )

    async def send(
        self,
        issue: DigestIssue | None,
        *,
        on_progress: Callable[[int], None] | None = None,
        stop: asyncio.Event | None = None,
        take_over_unknown: bool = False,
    ) -> SendSummary:
        """Send every delivery that is due, of ``issue`` or (None) of every issue; retries
        that are not due yet stay queued.

        First, the claims of senders that are gone are taken over (``claimer_state``);
        with ``take_over_unknown``, also those of senders that cannot be seen at all
        (no heartbeat): the caller knows they stopped.

        When ``stop`` is set, no new message starts: what is claimed and not yet tried
        is given back (due again at once, for this or another worker), and the SMTP
        transactions in flight finish. Cancelled, it gives back what it had not tried.
        One message that cannot be built or sent (an unusable address, a bug) fails
        alone; the others go on.
        """
        summary = SendSummary()
        issues: dict[int, DigestIssue] = {issue.id: issue} if issue is not None else {}
        transport: Transport | None = None
        await self._take_over(issue, summary, unknown=take_over_unknown)
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

    async def held_claims(self, issue: DigestIssue | None) -> list[HeldClaim]:
        """The deliveries (of ``issue``, or of all) that other senders hold and that are
        not taken over: senders alive, or unknown ones whose leases have not run out."""
        return [claim for claim in await self._claims(issue) if claim.state != "gone"]

    async def _claims(self, issue: DigestIssue | None) -> list[HeldClaim]:
        """The live claims of other senders, with what can be told of each sender."""
        now = self._clock()
        claims = await self._db(
            self._store.delivery_claims, issue_id=issue.id if issue is not None else None, now=now
        )
        claims = [c for c in claims if c.owner != self._owner]
        if not claims:
            return []
        nodes = {node.owner: node for node in await self._db(self._store.list_nodes)}
        silence = max(self._settings.service.tick * SILENT_TICKS, MIN_SILENCE)
        host, pid = socket.gethostname(), os.getpid()
        return [
            HeldClaim(
                owner=claim.owner,
                count=claim.count,
                until=claim.until,
                state=claimer_state(
                    claim.owner,
                    nodes.get(claim.owner),
                    now=now,
                    silence=silence,
                    host=host,
                    pid=pid,
                    pid_exists=pid_exists,
                ),
            )
            for claim in claims
        ]

    async def _take_over(self, issue: DigestIssue | None, summary: SendSummary, *, unknown: bool) -> None:
        """Take over the claims of senders that are gone (and of unknown ones, if told)."""
        for claim in await self._claims(issue):
            if claim.state == "gone" or (unknown and claim.state == "unknown"):
                taken = await self._db(
                    self._store.take_over_deliveries,
                    owner=claim.owner,
                    issue_id=issue.id if issue is not None else None,
                    now=self._clock(),
                )
                if taken:
                    why = "which is gone" if claim.state == "gone" else "as told"
                    log.warning("took over %d messages claimed by %s, %s", taken, claim.owner, why)
                    summary.taken_over.append((claim.owner, taken))

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
        # Claimed and neither handed to the transport nor marked: given back on a stop,
        # or when this is cancelled, so that a re-run need not wait for the leases.
        untried = {delivery.id for delivery in batch}
        try:
            outgoing = await self._prepare(spec, issue, batch)
            broken = await self._deliver_all(outgoing, untried, transport, summary, on_progress, stop)
        except BaseException:
            if untried:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(untried))
            raise
        if untried:
            summary.released += await self._release(untried)
        if broken:
            raise TransportError(broken[0])

    async def _release(self, ids: set[int]) -> int:
        released = await self._db(
            self._store.release_deliveries, sorted(ids), owner=self._owner, now=self._clock()
        )
        log.info("stopping: %d claimed messages given back to the outbox", released)
        return released

    async def _deliver_all(
        self,
        outgoing: Sequence[Outgoing],
        untried: set[int],
        transport: Transport,
        summary: SendSummary,
        on_progress: Callable[[int], None] | None,
        stop: asyncio.Event | None,
    ) -> list[str]:
        """Hand each message to the transport (at most two per connection at once) and
        mark what became of it; the reasons the transport stopped working, if it did.

        At most ``unmarked_limit`` messages are sent or being sent and not yet marked in
        the store: that bounds what a crash can send twice (with the same Message-ID),
        also when the store is slow to write, where an unbounded sender would run ahead
        of its marks by hundreds of messages."""
        slots = max(1, self._settings.mail.pool * 2)
        limit = asyncio.Semaphore(slots)
        unmarked = asyncio.Semaphore(unmarked_limit(self._settings.mail.pool))
        broken: list[str] = []
        sender = self._settings.mail.from_address

        async def deliver(item: Outgoing) -> None:
            delivery = item.delivery
            if stop is not None and stop.is_set():
                return  # stopping: not tried, given back by the caller
            if item.data is None:
                untried.discard(delivery.id)
                await self._db(
                    self._store.mark_failed,
                    delivery.id,
                    owner=self._owner,
                    error=item.problem or "not sent",
                    now=self._clock(),
                )
                if item.refused:
                    log.warning(
                        "delivery %d to %s: %s", delivery.id, addresses.show(delivery.address), item.problem
                    )
                    summary.failed += 1
                    summary.refused.append((delivery.address, item.problem or "not sent"))
                if on_progress is not None:
                    on_progress(1)
                return
            took: float | None = None  # seconds the transport took, when it was asked
            if broken:
                untried.discard(delivery.id)
                outcome = SendOutcome(ok=False, error=f"not sent: {broken[0]}")
                await self._record(delivery, outcome, took, summary, broken=True)
                if on_progress is not None:
                    on_progress(1)
                return
            async with unmarked:  # held until the outcome is in the store
                async with limit:
                    if stop is not None and stop.is_set():
                        return
                    untried.discard(delivery.id)
                    try:
                        began = time.perf_counter()
                        outcome = await transport.send(
                            sender=sender, recipient=item.recipient, data=item.data
                        )
                        took = time.perf_counter() - began
                    except TransportError as exc:
                        # Nothing can be sent until the configuration or server is fixed: this
                        # is nobody's bounce. Keep every message queued and stop the run.
                        broken.append(str(exc))
                        outcome = SendOutcome(ok=False, error=f"not sent: {exc}")
                    except Exception as exc:  # a bug, for this message only: it fails alone
                        log.exception("delivery %d: the transport failed", delivery.id)
                        error = f"not sent: the transport failed ({type(exc).__name__}: {exc})"
                        outcome = SendOutcome(ok=False, permanent=True, bounce=False, error=error)
                await self._record(delivery, outcome, took, summary, broken=bool(broken))
            if on_progress is not None:
                on_progress(1)

        await asyncio.gather(*(deliver(item) for item in outgoing))
        return broken

    async def _record(
        self,
        delivery: Delivery,
        outcome: SendOutcome,
        took: float | None,
        summary: SendSummary,
        *,
        broken: bool,
    ) -> None:
        """Mark what the transport said about one message: sent, retry later, or failed
        (and a bounce, when the recipient's server refused it for good)."""
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
            if not outcome.bounce:
                summary.refused.append((delivery.address, outcome.error or "failed"))
            elif outcome.permanent and delivery.subscriber_id is not None:
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


def _retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff: base, 2x base, 4x base... capped."""
    exponent = min(max(attempts, 1) - 1, 20)
    delay: timedelta = base * (2**exponent)
    return min(delay, cap)

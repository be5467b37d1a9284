"""The subscriber lifecycle: from an address's status and an event, what happens next.

One rule is behind all of it: consent is the person's.

- ``subscribe`` (the public form) can be used by anyone for any address, so it never
  makes an address active. It opens an *opt-in request* (a new token, a confirmation
  mail) beside the status the address has: a new address is stored ``pending``, one
  that unsubscribed stays ``unsubscribed``. Active addresses have nothing to confirm
  and bounced mailboxes get no mail: both are left alone.
- ``confirm``: only the person, pressing the button behind the confirmation link while
  the request is open, makes the address active (from pending or unsubscribed).
- ``import`` (a row of the publisher's directory) and ``add`` (``subscribers add``, a
  row that is always active) decide for addresses that never said no: a pending or
  active address takes the row's status. An address that unsubscribed or bounced keeps
  its status whatever the row says, and the import reports it as kept.
- ``unsubscribe`` works from any status and closes any open request.
- ``bounce`` (the threshold of permanent failures reached) stops a pending or active
  address; an unsubscribed one stays unsubscribed (the person's word is the stronger).

An opt-in request is open for a configured time after it was made (``request_open``);
the daily clean-up then deletes a pending address that was never confirmed (it only
ever was a request) and closes the request of any other (``stale_request``).

Pure: no I/O, no clock (``now`` is an argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from syndication.types import ConfirmationState, SubscriberStatus

__all__ = [
    "EVENTS",
    "Event",
    "RequestChange",
    "Step",
    "confirmation_state",
    "request_open",
    "stale_request",
    "step",
]

Event = Literal["subscribe", "confirm", "import", "add", "unsubscribe", "bounce"]
EVENTS: Final[tuple[Event, ...]] = ("subscribe", "confirm", "import", "add", "unsubscribe", "bounce")

RequestChange = Literal["keep", "open", "close"]
"""What an event does to the address's opt-in request: leaves it as it is, opens a new one
(a new token: earlier links stop working; a confirmation mail goes out), or closes it."""

_FINAL: Final = frozenset({"unsubscribed", "bounced"})
"""Statuses the publisher never changes: the person said no, or the mailbox is gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What an event does to one address."""

    status: SubscriberStatus
    """The status after the event (the same one when nothing changes)."""
    request: RequestChange = "keep"
    kept: bool = False
    """The publisher's row asked for another status; the address's own (unsubscribed or
    bounced) stands, and the import reports it."""
    refused: bool = False
    """The event does nothing for this address: a confirmation without an open request."""


def step(
    current: SubscriberStatus | None,
    event: Event,
    *,
    wanted: SubscriberStatus = "active",
    request_open: bool = False,
) -> Step:
    """What ``event`` does to an address whose status is ``current`` (None: not stored yet).

    ``wanted`` is the status a directory row gives (``import``; ``add`` always wants
    active); ``request_open`` whether the address has an opt-in request that has not
    expired (``confirm``).

    Raises:
        ValueError: ``confirm``, ``unsubscribe`` or ``bounce`` of an address not stored.
    """
    if event == "add":
        wanted = "active"
    if current is None:
        if event == "subscribe":
            return Step(status="pending", request="open")
        if event in ("import", "add"):
            return Step(status=wanted)
        raise ValueError(f"{event} needs a stored subscriber")
    if event == "subscribe":
        if current in ("pending", "unsubscribed"):
            return Step(status=current, request="open")
        return Step(status=current)
    if event == "confirm":
        if current == "active":
            return Step(status="active")  # pressed twice, or the directory vouched meanwhile
        if current in ("pending", "unsubscribed") and request_open:
            return Step(status="active", request="close")
        return Step(status=current, refused=True)
    if event in ("import", "add"):
        if current in _FINAL:
            return Step(status=current, kept=wanted != current)
        # The publisher vouches for an address that never said no; a request left open
        # is moot once it is active, unsubscribed or bounced.
        return Step(status=wanted, request="keep" if wanted == "pending" else "close")
    if event == "unsubscribe":
        return Step(status="unsubscribed", request="close")
    if current in ("pending", "active"):  # bounce
        return Step(status="bounced", request="close")
    return Step(status=current)


def request_open(requested: datetime | None, *, now: datetime, expiry: timedelta) -> bool:
    """Whether an opt-in request made at ``requested`` (None: there is none) is open at ``now``:
    for ``expiry`` after it was made, that moment included."""
    return requested is not None and now - requested <= expiry


def confirmation_state(
    status: SubscriberStatus, requested: datetime | None, *, now: datetime, expiry: timedelta
) -> ConfirmationState | None:
    """Where a confirmation link of an address stands; None when it leads nowhere.

    ``confirmed``: the address is active (the button was pressed, or the publisher
    vouched for it). ``open``: a request is open, the button confirms. ``expired``: the
    request is older than ``expiry``; the person may subscribe again. A bounced
    address, or one with no request, has no confirmation to give.
    """
    if status == "active":
        return "confirmed"
    if status not in ("pending", "unsubscribed") or requested is None:
        return None
    return "open" if request_open(requested, now=now, expiry=expiry) else "expired"


def stale_request(status: SubscriberStatus, *, ever_confirmed: bool) -> Literal["delete", "close"]:
    """What the clean-up does to an address whose opt-in request expired: a pending address
    that was never confirmed was only ever a request and is deleted; any other address
    (one that unsubscribed, or one the publisher listed) keeps its row and loses the request."""
    return "delete" if status == "pending" and not ever_confirmed else "close"

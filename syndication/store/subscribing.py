"""The store's methods behind the subscription pages (``Store`` inherits them): the public
form's opt-in requests and their limits, confirmation, preferences, unsubscribing.

Kept apart from ``store/__init__.py`` only to keep modules short; the same rules
apply: one transaction per call, the write lock for writes, errors become
``StoreError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from syndication.types import Confirmation, RateLimit, Subscriber, SubscriberData

from . import limits as _limits
from . import subscribers as _subscribers
from .engine import Database


class SubscribingStore:
    """Mixed into ``Store``."""

    _db: Database

    def take_rate_limits(
        self, limits: Sequence[RateLimit], *, now: datetime
    ) -> tuple[RateLimit, timedelta] | None:
        """Count one hit at ``now`` under each of ``limits`` (sliding windows shared by every
        process on this store), or, when one of them is reached, count none and return that
        limit and how long until it allows one more (at least a second).

        Raises:
            StoreError: the database failed.
            ValueError: a limit below 1, or an empty key or one longer than 100 characters.
        """
        with self._db.transaction("count a rate limit", write=True) as connection:
            return _limits.take(connection, limits, now=now)

    def subscribe_pending(self, row: SubscriberData, *, now: datetime) -> tuple[Subscriber, bool]:
        """Open an opt-in request from the public form: ``(subscriber, needs_confirmation)``.

        By ``policy.lifecycle``: a new address is stored pending; a pending one, or one
        that unsubscribed (which stays unsubscribed), gets a new request: a new token
        (earlier links stop working), ``opt_in_requested`` = ``now``, and the form's
        categories, digest and, when given, display name and organisation (a field the
        form changes is no longer marked as the person's choice until they confirm).
        An active or bounced address is returned unchanged and needs no message: the
        form cannot change the preferences of someone else's address.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("subscribe", write=True) as connection:
            return _subscribers.subscribe_pending(connection, row, now=now)

    def confirmation(self, token: str, *, expiry: timedelta, now: datetime) -> Confirmation | None:
        """Where the confirmation link of ``token`` stands at ``now``, when requests stay open
        for ``expiry``: ``open``, ``confirmed`` or ``expired``; None for an unknown token, a
        bounced address or one without a request. Changes nothing.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read a confirmation") as connection:
            return _subscribers.confirmation(connection, token, expiry=expiry, now=now)

    def confirm(self, token: str, *, expiry: timedelta, now: datetime) -> Confirmation | None:
        """Press the confirmation button: an open request (made at most ``expiry`` before
        ``now``) makes its address active, pending or unsubscribed, and its categories and
        digest the person's choice; the answer is then ``confirmed``. An active address is
        ``confirmed`` as it is, an expired request ``expired`` (nothing changes); None as
        for ``confirmation``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("confirm a subscription", write=True) as connection:
            return _subscribers.confirm(connection, token, expiry=expiry, now=now)

    def set_preferences(
        self, token: str, *, categories: Sequence[str], digest: str, now: datetime
    ) -> Subscriber | None:
        """Change the categories (empty: all) and digest of the token's subscriber, whatever
        its status (which stays); each field that changes becomes the person's choice at
        ``now``, which directory imports keep. None for an unknown token.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("save preferences", write=True) as connection:
            return _subscribers.set_preferences(
                connection, token, categories=categories, digest=digest, now=now
            )

    def unsubscribe(self, token: str, *, now: datetime) -> Subscriber | None:
        """Unsubscribe the token's subscriber, from any status, closing any opt-in request;
        again changes nothing. None for an unknown token.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("unsubscribe", write=True) as connection:
            return _subscribers.unsubscribe(connection, token, now=now)

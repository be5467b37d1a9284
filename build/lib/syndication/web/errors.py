"""The one mapping from our error types to HTTP statuses, used by every route of the web app.

Anything that is not a ``SyndicationError`` is a bug: it is not mapped, so the
server logs its traceback and answers 500.
"""

from __future__ import annotations

from syndication.errors import StoreError, SyndicationError

__all__ = ["error_status"]

RETRY_AFTER_SECONDS = 30
"""Sent with a 503, so that pollers come back soon but not at once."""


def error_status(exc: SyndicationError) -> int:
    """The HTTP status that tells a client what went wrong on our side."""
    if isinstance(exc, StoreError):
        return 503  # the database is down or being migrated: try again later
    return 500

"""The one exception tree of syndication.

Every failure we expect and report is a ``SyndicationError``; anything else is a
bug and keeps its traceback. Third-party exceptions are translated once, at the
I/O edge that raised them (``ingest.fetch``, ``store``), with ``raise ... from``.

    SyndicationError
     ├── ConfigError(path, key)          bad configuration file or value
     ├── StoreError                      the database failed or is out of date
     ├── TransportError                  mail cannot be sent at all (credentials, TLS, Maildir)
     ├── AddressError(address, problem)  an e-mail address we cannot use (also a ValueError)
     └── SourceError(source_id)          something about one source
          ├── FetchError(url, status, retry_after)
          │    └── BlockedAddressError   refused: internal address
          └── ParseError(url)            content we could not read at all
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


class SyndicationError(Exception):
    """Root of every error syndication reports to a user.

    Every one survives pickling with all its fields: parse workers send them to the
    main process. ``Exception`` pickles as ``cls(*args)`` plus ``__dict__``, which breaks
    on any subclass whose constructor takes more than the message (a keyword-only
    ``url``): unpickling raised ``TypeError`` in the pool's result thread and broke the
    pool for good. So every subclass is rebuilt without calling its constructor, from its
    ``args`` and its fields, whatever the constructor's signature.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[SyndicationError], args: tuple[Any, ...], fields: dict[str, Any]) -> SyndicationError:
    """The error ``cls`` with ``args`` and ``fields``, made without calling ``cls.__init__``."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(fields)
    return error


class ConfigError(SyndicationError):
    """One or more problems in a configuration file.

    ``problems`` holds one line per problem, each naming the file and the key.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class StoreError(SyndicationError):
    """The store could not be read or written."""


class TransportError(SyndicationError):
    """The mail transport cannot send anything until its configuration or the server is
    fixed: credentials refused, TLS unavailable or untrusted, an unwritable Maildir.
    Not a failure of one message: deliveries stay queued for a later attempt."""


class AddressError(SyndicationError, ValueError):
    """An e-mail address we cannot use (``addresses.parse``): ``problem`` says which rule
    it broke (``"syntax"``, ``"control"``, ``"encoded-word"``, ``"smtputf8"``) and
    ``reason`` says why, for people. A ``ValueError`` too, as invalid input is."""

    def __init__(self, address: str, problem: str, reason: str) -> None:
        self.address = address
        self.problem = problem
        self.reason = reason
        super().__init__(
            f"{json.dumps(address, ensure_ascii=False)} is not a usable e-mail address: {reason}"
        )


class SourceError(SyndicationError):
    """A failure that belongs to one source (or one URL of it)."""

    def __init__(self, message: str, *, source_id: str | None = None) -> None:
        self.source_id = source_id
        super().__init__(message)


class FetchError(SourceError):
    """A URL could not be fetched: network, HTTP status, size or redirect limits.

    ``retry_after`` is the earliest time the server asked us to come back
    (from a ``Retry-After`` header on a 429 or 503), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: datetime | None = None,
        source_id: str | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, source_id=source_id)


class BlockedAddressError(FetchError):
    """The URL resolves to an internal address and the source does not allow it."""


class ParseError(SourceError):
    """The content could not be read as the expected format at all."""

    def __init__(self, message: str, *, url: str, source_id: str | None = None) -> None:
        self.url = url
        super().__init__(message, source_id=source_id)

"""Queries about published documents: when each one's bytes last changed, and which
changes the WebSub hub has yet to hear of.

A document is one page of one feed in one format (or the OPML list), named by
``(name, format, page)``. Every process that builds one (``serve``, ``run``,
``feeds build``) records its entity-tag here; the first process to record a new
tag sets ``modified``, the document's ``Last-Modified``, and the others read the
same time back. So a restart moves nothing, and every process answers alike.

``modified`` has the resolution of an HTTP date (whole seconds) and only grows: a
change is dated at least one second after the previous one, so a client holding
the previous ``Last-Modified`` always sees the new one as later, even for two
changes within a second or a clock set back.

Functions take a ``Connection`` already inside a transaction (``Store`` opens it,
holds the write lock and translates errors); they neither commit nor catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from .schema import feed_documents
from .util import chunks

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentTag:
    """A built document and its entity-tag."""

    name: str
    format: str
    page: int
    etag: str


def record(
    connection: Connection, built: Sequence[DocumentTag], *, now: datetime
) -> dict[DocumentTag, datetime]:
    """Record the tags of documents just built; when each one's bytes last changed.

    A document seen for the first time is dated ``now``; one whose tag changed is dated
    ``now`` too, but never earlier than a second after its previous date, and (page 1)
    becomes due for a WebSub ping. An unchanged one keeps its date.
    """
    stamp = now.replace(microsecond=0)
    wanted = {(d.name, d.format, d.page): d for d in built}
    stored: dict[tuple[str, str, int], tuple[str, datetime]] = {}
    for names in chunks(sorted({d.name for d in built})):
        query = select(
            feed_documents.c.name,
            feed_documents.c.format,
            feed_documents.c.page,
            feed_documents.c.etag,
            feed_documents.c.modified,
        ).where(feed_documents.c.name.in_(names))
        for name, format_, page, etag, modified in connection.execute(query):
            if (name, format_, page) in wanted:
                stored[(name, format_, page)] = (etag, modified)
    dates: dict[DocumentTag, datetime] = {}
    new: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    for key, document in wanted.items():
        previous = stored.get(key)
        if previous is None:
            # Not due for a ping: nobody can have subscribed to what was never published.
            dates[document] = stamp
            new.append(
                {"name": key[0], "format": key[1], "page": key[2], "etag": document.etag, "modified": stamp}
            )
        elif previous[0] == document.etag:
            dates[document] = previous[1]
        else:
            dates[document] = max(stamp, previous[1] + _SECOND)
            changed.append(
                {
                    "b_name": key[0],
                    "b_format": key[1],
                    "b_page": key[2],
                    "etag": document.etag,
                    "modified": dates[document],
                    "ping_pending": key[2] == 1,
                }
            )
    if new:
        connection.execute(insert(feed_documents), new)
    if changed:
        connection.execute(
            update(feed_documents).where(
                feed_documents.c.name == bindparam("b_name"),
                feed_documents.c.format == bindparam("b_format"),
                feed_documents.c.page == bindparam("b_page"),
            ),
            changed,
        )
    return dates


def pending_pings(connection: Connection) -> list[DocumentTag]:
    """Page-1 documents whose last change the WebSub hub has not heard of, by name and format."""
    query = (
        select(feed_documents.c.name, feed_documents.c.format, feed_documents.c.etag)
        .where(feed_documents.c.page == 1, feed_documents.c.ping_pending)
        .order_by(feed_documents.c.name, feed_documents.c.format)
    )
    return [DocumentTag(name=n, format=f, page=1, etag=e) for n, f, e in connection.execute(query)]


def mark_pinged(connection: Connection, documents: Sequence[DocumentTag]) -> None:
    """The hub heard of these documents as tagged; a newer change stays due."""
    if not documents:
        return
    connection.execute(
        update(feed_documents)
        .where(
            and_(
                feed_documents.c.name == bindparam("b_name"),
                feed_documents.c.format == bindparam("b_format"),
                feed_documents.c.page == bindparam("b_page"),
                feed_documents.c.etag == bindparam("b_etag"),
            )
        )
        .values(ping_pending=False),
        [{"b_name": d.name, "b_format": d.format, "b_page": d.page, "b_etag": d.etag} for d in documents],
    )

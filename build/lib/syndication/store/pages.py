"""Queries about portal article pages: the HTTP validators of pages already read.

An html source lists links on a page; each linked article page is fetched with
the validators kept here, so a page that has not changed costs a 304.

Functions take a ``Connection`` already inside a transaction; they neither
commit nor catch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from .schema import page_validators
from .util import chunks

Validators = tuple[str | None, str | None]
"""``(etag, last_modified)`` as the server sent them."""


def get_validators(connection: Connection, urls: Sequence[str]) -> dict[str, Validators]:
    """The stored validators of the given URLs; URLs never saved are absent."""
    found: dict[str, Validators] = {}
    for part in chunks(list(dict.fromkeys(urls))):
        query = select(page_validators.c.url, page_validators.c.etag, page_validators.c.last_modified).where(
            page_validators.c.url.in_(part)
        )
        found.update((row.url, (row.etag, row.last_modified)) for row in connection.execute(query))
    return found


def save_validators(
    connection: Connection, items: Iterable[tuple[str, str | None, str | None]], *, now: datetime
) -> None:
    """Insert or replace the validators of each URL (the last item of a URL wins)."""
    latest = {url: (etag, last_modified) for url, etag, last_modified in items}
    if not latest:
        return
    urls = list(latest)
    stored: set[str] = set()
    for part in chunks(urls):
        stored.update(
            connection.scalars(select(page_validators.c.url).where(page_validators.c.url.in_(part)))
        )
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for url, (etag, last_modified) in latest.items():
        if url in stored:
            changed.append({"b_url": url, "etag": etag, "last_modified": last_modified, "checked": now})
        else:
            new.append({"url": url, "etag": etag, "last_modified": last_modified, "checked": now})
    if new:
        connection.execute(insert(page_validators), new)
    if changed:
        connection.execute(
            update(page_validators).where(page_validators.c.url == bindparam("b_url")), changed
        )

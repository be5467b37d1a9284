"""Queries about change tracking: which published feeds changed, as versions of scopes.

A scope names what one feed lists: ``"all"``, ``"category:<slug>"`` or
``"source:<id>"``. The store keeps one counter: a save that changes what some
feed shows takes ``max(version) + 1`` and gives that version to every scope of
every article it changed (``touch``). Writes are serialised (the store's write
lock, ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so versions
are handed out and committed in order: a reader that sees version ``v`` sees
every change up to ``v``, and anything committed later gets a larger version.
(On PostgreSQL this needs READ COMMITTED, the default: ``max(version)`` is read
after the advisory lock is taken, so it sees the previous writer's commit.)

Reading is one query on a table of one row per category and source, by index.

Functions take a ``Connection`` already inside a transaction; they neither
commit nor catch.
"""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy import Connection, Text, cast, func, insert, null, select, union_all, update

from .schema import article_categories, article_sources, feed_scopes
from .util import chunks

ALL = "all"
"""The scope of the feed of every article."""


def category_scope(category: str) -> str:
    """The scope of one category's feed."""
    return f"category:{category}"


def source_scope(source_id: str) -> str:
    """The scope of one source's feed."""
    return f"source:{source_id}"


def touch(connection: Connection, article_ids: Set[int]) -> int | None:
    """Mark changed, at a new version, every feed that lists one of ``article_ids``: "all",
    each of their categories and each source that listed them; the new version, or None
    when ``article_ids`` is empty (nothing changes).

    The caller passes only articles feeds show (not duplicates), after writing their
    categories and sources, and must hold the write lock.
    """
    if not article_ids:
        return None
    scopes = {ALL}
    for part in chunks(sorted(article_ids)):
        categories = (
            select(article_categories.c.category).where(article_categories.c.article_id.in_(part)).distinct()
        )
        scopes.update(category_scope(category) for category in connection.scalars(categories))
        sources = select(article_sources.c.source_id).where(article_sources.c.article_id.in_(part)).distinct()
        scopes.update(source_scope(source_id) for source_id in connection.scalars(sources))
    version = _current(connection) + 1
    wanted = sorted(scopes)
    existing: set[str] = set()
    for names in chunks(wanted):
        existing.update(connection.scalars(select(feed_scopes.c.scope).where(feed_scopes.c.scope.in_(names))))
    for names in chunks(sorted(existing)):
        connection.execute(update(feed_scopes).where(feed_scopes.c.scope.in_(names)).values(version=version))
    missing = [{"scope": scope, "version": version} for scope in wanted if scope not in existing]
    if missing:
        connection.execute(insert(feed_scopes), missing)
    return version


def _current(connection: Connection) -> int:
    return int(connection.scalar(select(func.coalesce(func.max(feed_scopes.c.version), 0))) or 0)


def content_version(connection: Connection) -> int:
    """The newest version; 0 when nothing was ever saved."""
    return _current(connection)


def changed_scopes(connection: Connection, *, since: int) -> tuple[int, frozenset[str]]:
    """The newest version and the scopes changed after ``since``, read in one statement."""
    newest = select(
        cast(null(), Text).label("scope"),
        func.coalesce(func.max(feed_scopes.c.version), 0).label("version"),
    )
    changed = select(feed_scopes.c.scope, feed_scopes.c.version).where(feed_scopes.c.version > since)
    current = 0
    scopes: set[str] = set()
    for scope, version in connection.execute(union_all(newest, changed)):
        if scope is None:
            current = int(version)
        else:
            scopes.add(scope)
    return current, frozenset(scopes)

"""The durable store: sources and their poll state, articles, page validators,
versions of published feeds; migrations.

``Store`` is the one interface the rest of syndication uses. Its methods are
split by domain into query modules (``sources``, ``pages``, ``articles``,
``scopes``) that take a connection; ``Store`` opens one transaction per call, holds the write
lock for writes, and is the edge where database errors become ``StoreError``
(``engine.wrap_errors``). The schema lives in ``schema``; the database is
created and changed only by the Alembic migrations in ``migrations/``.

Synchronous on purpose: this is SQLAlchemy Core on a plain engine, and ``core``
calls it off the event loop in a worker thread (``asyncio.to_thread``, or an
executor of its own). Why: SQLite has no asynchronous driver that is more than a
thread around ``sqlite3`` anyway; a save is one short batched transaction, not
many small awaits; and writes are serialised in any case. So a thread per call is
the simplest correct choice, costs nothing we can measure, and is fine for
PostgreSQL too. Every method is thread-safe.

SQLite is the default (a file; its directory is created if missing);
PostgreSQL works by changing the URL to ``postgresql+psycopg://...``.

Change tracking, for publishing feeds without database work per request: every
save that changes what a feed shows gives a new, larger version to the scopes of
the feeds it changed (``"all"``, ``"category:<slug>"``, ``"source:<id>"``), in the
same transaction. ``content_version()`` and ``changed_scopes(since=...)`` are one
cheap query each, and see saves made by other processes as soon as they commit.
Every datetime going in must be timezone-aware, and every one coming out is
aware UTC.

Must not: import other components, read the settings object or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

from syndication.types import Article, KeyedArticle, PollRecord, SaveCounts, SourceSpec, SourceState

from . import articles as _articles
from . import migrate as _migrate
from . import pages as _pages
from . import scopes as _scopes
from . import sources as _sources
from .engine import Database

__all__ = ["Store"]


class Store:
    """The store behind one database URL.

    Usable as a context manager, which closes it. Every method is one
    transaction: it either happens entirely or not at all.
    """

    def __init__(self, url: str) -> None:
        """Open the database at ``url`` (SQLAlchemy form, e.g. ``sqlite:///var/syndication.db``).

        This does not create or upgrade tables: call ``upgrade()``.

        Raises:
            StoreError: the URL is invalid or the database cannot be opened.
        """
        self._db = Database(url)

    @property
    def url(self) -> str:
        """The database URL with its password hidden: safe to show."""
        return self._db.name

    def close(self) -> None:
        """Close every connection. The store cannot be used afterwards."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- migrations ---------------------------------------------------------------

    def upgrade(self) -> None:
        """Create or migrate the tables to the newest revision; does nothing when up to date.

        Raises:
            StoreError: the database failed, or it was upgraded by a newer version of syndication.
        """
        with self._db.schema_transaction("upgrade the database") as connection:
            _migrate.upgrade(connection)

    def revision(self) -> str | None:
        """The database's schema revision; None before the first ``upgrade()``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the schema revision") as connection:
            current = _migrate.current_revisions(connection)
        return ",".join(sorted(current)) or None

    def needs_upgrade(self) -> bool:
        """Whether ``upgrade()`` has migrations to run.

        Raises:
            StoreError: the database failed, or it was upgraded by a newer version of syndication.
        """
        with self._db.transaction("read the schema revision") as connection:
            current = _migrate.current_revisions(connection)
        _migrate.check_known(current)
        return current != _migrate.head_revisions()

    # --- sources ------------------------------------------------------------------

    def sync_sources(self, specs: Sequence[SourceSpec]) -> None:
        """Make the stored sources match the configured ones: insert new ids, update URL and kind.

        A source whose URL changed forgets its etag and last_modified. Sources no
        longer configured are kept, with their articles.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("save sources", write=True) as connection:
            _sources.sync_sources(connection, specs)

    def source_states(self, ids: Sequence[str] | None = None) -> dict[str, SourceState]:
        """What the store remembers of the given sources (all when ``ids`` is None), by id.

        Unknown ids are absent from the result. ``article_count`` counts every
        article the source has listed, including ones first seen elsewhere.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read sources") as connection:
            return _sources.source_states(connection, ids)

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        """Persist the outcome of polls, in one transaction.

        Sets last_attempt, next_attempt, error_count and last_error (cleared when
        ok), last_success when ok, and the etag and last_modified unless
        ``keep_validators``. Records of unknown sources are ignored.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("record polls", write=True) as connection:
            _sources.record_polls(connection, records)

    # --- pages --------------------------------------------------------------------

    def page_validators(self, urls: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """The stored ``(etag, last_modified)`` of portal article pages, by URL; unknown URLs are absent.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read page validators") as connection:
            return _pages.get_validators(connection, urls)

    def save_page_validators(
        self, items: Sequence[tuple[str, str | None, str | None]], *, now: datetime
    ) -> None:
        """Store ``(url, etag, last_modified)`` of portal article pages, checked at ``now``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("save page validators", write=True) as connection:
            _pages.save_validators(connection, items, now=now)

    # --- articles -----------------------------------------------------------------

    def save_articles(
        self,
        *,
        source_id: str,
        categories: Sequence[str],
        articles: Sequence[KeyedArticle],
        now: datetime,
    ) -> SaveCounts:
        """Save the articles of one poll of ``source_id`` into ``categories``, in one transaction.

        - An article is identified by ``keys.identity``; the same identity twice
          in the batch is merged (the later occurrence updates the earlier).
        - Known identity: the source's categories and the source are added to it.
          If ``keys.content_hash`` differs, its fields are updated in place and
          ``updated`` becomes ``data.updated`` or ``now`` (counted as updated when
          something a reader sees changed, else as unchanged); an empty field never
          replaces a stored non-empty one.
        - New identity: inserted with ``published`` = ``data.published`` or ``now``,
          ``updated`` = ``data.updated`` or ``published``, ``first_seen`` = ``now``.
          If an earlier article (stored, or earlier in this batch) has the same
          ``keys.title_key`` and a body with ``text.similarity`` at least
          ``text.NEAR_DUPLICATE_THRESHOLD`` (or both bodies are very short and they
          were published within ``articles.SHORT_BODY_WINDOW``), it becomes a
          duplicate of that article's root, which also gets the categories.
        - Nothing is ever deleted.
        - Feeds changed (see ``changed_scopes``) when something a feed shows did:
          an article that is not a duplicate was inserted, changed visibly (as
          counted in ``updated``), got a category or was listed by a source for the
          first time. Then one new version is given to "all" and to every category
          and source scope of every such article (all its categories and sources,
          old and new). Duplicates are hidden from feeds and change none, except
          that a root getting a duplicate's category is a change of the root. A batch
          that changes nothing a feed shows leaves every version as it was.

        Raises:
            StoreError: the source is unknown, or the database failed (nothing was saved).
        """
        with self._db.transaction(f"save articles of source {source_id!r}", write=True) as connection:
            return _articles.save_articles(
                connection, source_id=source_id, categories=categories, items=articles, now=now
            )

    def list_articles(
        self,
        *,
        category: str | None = None,
        search: str | None = None,
        source_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
        include_duplicates: bool = False,
    ) -> list[Article]:
        """Up to ``limit`` articles, newest first (published, then id, descending), skipping ``offset``.

        ``category``: only articles in it. ``source_id``: only articles that source
        listed. ``search``: a string already folded with ``text.search_key``; it must
        appear in the article's search text as a phrase starting at a word. Duplicates are left
        out unless ``include_duplicates``. The order is total, so pages taken with
        ``offset`` neither skip nor repeat articles while nothing is saved between them
        (use ``changed_scopes`` to know when something was). A negative limit or
        offset counts as 0.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("list articles") as connection:
            return _articles.list_articles(
                connection,
                category=category,
                search=search,
                source_id=source_id,
                limit=limit,
                offset=offset,
                include_duplicates=include_duplicates,
            )

    def get_article(self, id: int) -> Article | None:
        """The article with this id (duplicate or not), or None.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read an article") as connection:
            return _articles.get_article(connection, id)

    def count_articles(
        self,
        *,
        category: str | None = None,
        source_id: str | None = None,
        include_duplicates: bool = True,
    ) -> int:
        """How many articles ``list_articles`` with the same arguments lists without a limit.

        ``category`` and ``source_id`` filter as in ``list_articles``. Unlike there,
        duplicates are counted unless ``include_duplicates=False``: with no arguments
        this is every stored article, as it always was. To count the articles of a
        feed (to number its pages), pass ``include_duplicates=False``.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("count articles") as connection:
            return _articles.count_articles(
                connection, category=category, source_id=source_id, include_duplicates=include_duplicates
            )

    # --- feed versions ------------------------------------------------------------

    def content_version(self) -> int:
        """The version of the newest save that changed a feed; 0 when none ever did.

        Versions only grow (1, 2, 3...), committed in order: a reader that saw
        version ``v`` has seen every change up to ``v``. Read the version before
        the articles, so a save committed in between is seen again next time.
        One query.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read the content version") as connection:
            return _scopes.content_version(connection)

    def changed_scopes(self, *, since: int) -> tuple[int, frozenset[str]]:
        """``(content_version(), scopes changed after version since)``, read together in one query.

        Scopes name feeds: ``"all"``, ``"category:<slug>"``, ``"source:<id>"``.
        Since 0: every scope that ever had an article. A ``since`` newer than the
        current version (the database was replaced or restored) gives no scopes:
        a reader seeing the version go down should rebuild everything.

        Raises:
            StoreError: the database failed.
        """
        with self._db.transaction("read changed feeds") as connection:
            return _scopes.changed_scopes(connection, since=since)

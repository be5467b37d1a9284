"""Queries about articles: saving the batch of one source poll, listing, counting, reading one.

Saving is batched for speed: a poll's articles are looked up with a few
``IN (...)`` queries and written with ``executemany``; nothing is done per
article in a round trip of its own. The rules (identity, updates that never
wipe stored data, near-duplicates) are documented on ``save_articles``. A save
that changes what a feed shows marks the feeds changed in the same transaction
(``scopes.touch``).

Functions take a ``Connection`` already inside a transaction (``Store`` opens
it, holds the write lock and translates errors); they neither commit nor catch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from syndication import text
from syndication.errors import StoreError
from syndication.types import Article, KeyedArticle, SaveCounts

from . import scopes
from .schema import article_categories, article_sources, articles, sources
from .util import chunks

SHORT_BODY_WORDS = 30
"""Bodies with fewer words than this are too short for ``text.similarity`` to mean anything."""
SHORT_BODY_WINDOW = timedelta(days=3)
"""Two articles with equal titles and short bodies are the same story only if published this close.
(Without it every "Bản tin 18h" with an empty body would be a duplicate of the first one.)"""

_TEXT_FIELDS = ("guid", "url", "title", "summary", "content_html", "author", "image_url")
_SHOWN = (*_TEXT_FIELDS, "published")
"""What a reader sees: an update that changes none of these is not counted as one."""
_KEYS = ("title_key", "body_key", "search_text", "content_hash")
_STORED = (*_SHOWN, "updated", "dated", *_KEYS)

Row = dict[str, Any]


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _row(item: KeyedArticle) -> Row:
    data, keys = item.data, item.keys
    return {
        "identity": keys.identity,
        "guid": data.guid,
        "url": data.url,
        "title": data.title,
        "summary": data.summary,
        "content_html": data.content_html,
        "author": data.author,
        "image_url": data.image_url,
        "published": data.published,
        "updated": data.updated,
        # The publisher's own date (the poller already dropped one in the future).
        "dated": data.published is not None,
        "title_key": keys.title_key,
        "body_key": keys.body_key,
        "search_text": keys.search_text,
        "content_hash": keys.content_hash,
    }


def _merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> Row:
    """``new`` over ``old``, except that an empty field of ``new`` never replaces a filled one.

    The keys derived from a kept field are kept with it, and the words of kept
    fields stay searchable.
    """
    merged = dict(new)
    kept_words: list[str] = []
    for field in _TEXT_FIELDS:
        if _is_empty(new[field]) and not _is_empty(old[field]):
            merged[field] = old[field]
            if field == "title":
                merged["title_key"] = old["title_key"]
                kept_words.append(text.search_key(old["title"]))
            elif field in ("summary", "author"):
                kept_words.append(text.search_key(old[field]))
            elif field == "content_html":
                merged["body_key"] = old["body_key"]
                kept_words.append(old["body_key"])
    for field in ("published", "updated"):
        if new[field] is None:
            merged[field] = old[field]
    if new["published"] is None:
        merged["dated"] = old["dated"]
    if kept_words:
        merged["search_text"] = " ".join(words for words in (new["search_text"], *kept_words) if words)
    return merged


def _collapse(items: Iterable[KeyedArticle]) -> dict[str, Row]:
    """One row per identity: a later occurrence in the batch updates an earlier one."""
    batch: dict[str, Row] = {}
    for item in items:
        row = _row(item)
        earlier = batch.get(item.keys.identity)
        batch[item.keys.identity] = row if earlier is None else _merge(earlier, row)
    return batch


@dataclass(slots=True)
class _Candidate:
    """An article a new one may duplicate, and where its duplicate chain is rooted."""

    body_key: str
    published: datetime
    stored_root: int | None = None
    """The root's id, when the root is already stored."""
    batch_root: int | None = None
    """The root's index among the new rows, when the root is being inserted by this batch."""


def _is_short(body_key: str) -> bool:
    return len(body_key.split()) < SHORT_BODY_WORDS


def _same_story(candidate: _Candidate, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` (same title key as ``candidate``) tells the same story."""
    short, other_short = _is_short(candidate.body_key), _is_short(row["body_key"])
    if short and other_short:
        return bool(abs(candidate.published - row["published"]) <= SHORT_BODY_WINDOW)
    if short or other_short:
        return False
    return text.similarity(candidate.body_key, row["body_key"]) >= text.NEAR_DUPLICATE_THRESHOLD


def _find_duplicates(connection: Connection, new_rows: list[Row]) -> list[_Candidate | None]:
    """For each new row (in order), the candidate it duplicates, or None.

    Candidates are stored articles with the same title key, oldest first, then
    the rows before it in this batch: the first article seen stays canonical.
    """
    by_title: dict[str, list[_Candidate]] = {}
    title_keys = list({row["title_key"] for row in new_rows if row["title_key"]})
    for part in chunks(title_keys):
        query = (
            select(
                articles.c.id,
                articles.c.duplicate_of,
                articles.c.title_key,
                articles.c.body_key,
                articles.c.published,
            )
            .where(articles.c.title_key.in_(part))
            .order_by(articles.c.id)
        )
        for stored in connection.execute(query):
            by_title.setdefault(stored.title_key, []).append(
                _Candidate(
                    body_key=stored.body_key,
                    published=stored.published,
                    stored_root=stored.duplicate_of or stored.id,
                )
            )
    matches: list[_Candidate | None] = []
    for index, row in enumerate(new_rows):
        match = None
        if row["title_key"]:
            candidates = by_title.setdefault(row["title_key"], [])
            match = next((c for c in candidates if _same_story(c, row)), None)
            mine = _Candidate(body_key=row["body_key"], published=row["published"])
            if match is None:
                mine.batch_root = index
            else:
                mine.stored_root, mine.batch_root = match.stored_root, match.batch_root
            candidates.append(mine)
        matches.append(match)
    return matches


def _insert(connection: Connection, rows: list[Row]) -> dict[str, int]:
    """Insert rows (all with the same keys); their ids by identity."""
    if not rows:
        return {}
    result = connection.execute(insert(articles).returning(articles.c.id, articles.c.identity), rows)
    return {identity: article_id for article_id, identity in result}


def _insert_new(connection: Connection, new_rows: list[Row]) -> tuple[dict[str, int], set[int]]:
    """Insert new articles, marking near-duplicates; their ids, and the stored roots they duplicate."""
    matches = _find_duplicates(connection, new_rows)
    first: list[Row] = []
    second: list[tuple[Row, int]] = []
    stored_roots: set[int] = set()
    for row, match in zip(new_rows, matches, strict=True):
        if match is None or match.stored_root is not None:
            row["duplicate_of"] = None if match is None else match.stored_root
            first.append(row)
            if match is not None and match.stored_root is not None:
                stored_roots.add(match.stored_root)
        else:
            assert match.batch_root is not None
            second.append((row, match.batch_root))
    ids = _insert(connection, first)
    # Roots inside the batch are always in the first insert: they duplicate nothing new.
    for row, root in second:
        row["duplicate_of"] = ids[new_rows[root]["identity"]]
    ids.update(_insert(connection, [row for row, _ in second]))
    return ids, stored_roots


def _update_existing(
    connection: Connection, batch: Mapping[str, Row], ids: Mapping[str, int], now: datetime
) -> set[int]:
    """Apply the batch's rows to the stored articles ``ids`` (by identity) whose content hash differs;
    the ids of those that changed in a way a reader sees."""
    changed = {ids[identity]: batch[identity] for identity in ids}
    if not changed:
        return set()
    visible: list[Row] = []
    quiet: list[Row] = []
    columns = [articles.c.id, *(articles.c[name] for name in _STORED)]
    for part in chunks(list(changed)):
        for mapping in connection.execute(select(*columns).where(articles.c.id.in_(part))).mappings():
            stored = dict(mapping)
            new = changed[stored["id"]]
            merged = _merge(stored, new)
            merged["updated"] = new["updated"] or now
            if all(merged[name] == stored[name] for name in _SHOWN):
                quiet.append({"b_id": stored["id"], **{name: merged[name] for name in _KEYS}})
            else:
                visible.append({"b_id": stored["id"], **{name: merged[name] for name in _STORED}})
    statement = update(articles).where(articles.c.id == bindparam("b_id"))
    for params in (visible, quiet):
        if params:
            connection.execute(statement, params)
    return {params["b_id"] for params in visible}


def _add_missing(
    connection: Connection, table: Table, column: str, pairs: set[tuple[int, str]], *, known_ids: set[int]
) -> set[int]:
    """Insert the ``(article_id, <column>)`` pairs not yet in ``table``; only ``known_ids`` can have some.

    Returns the ids of the articles that got a pair.
    """
    article_id, value = table.c.article_id, table.c[column]
    values = sorted({pair[1] for pair in pairs})
    for part in chunks(sorted(known_ids & {pair[0] for pair in pairs})):
        query = select(article_id, value).where(article_id.in_(part), value.in_(values))
        pairs -= {(row[0], row[1]) for row in connection.execute(query)}
    if pairs:
        connection.execute(insert(table), [{"article_id": i, column: v} for i, v in sorted(pairs)])
    return {pair[0] for pair in pairs}


def save_articles(
    connection: Connection,
    *,
    source_id: str,
    categories: Sequence[str],
    items: Sequence[KeyedArticle],
    now: datetime,
) -> SaveCounts:
    """Save the articles of one poll of one source; see ``Store.save_articles`` for the rules.

    Raises:
        StoreError: the source is unknown.
    """
    found = connection.execute(select(sources.c.started).where(sources.c.id == source_id)).first()
    if found is None:
        raise StoreError(f"cannot save articles of source {source_id!r}: unknown source (sync sources first)")
    batch = _collapse(items)
    if not batch:
        return SaveCounts()
    if found.started is None:
        # The source's first articles: what it lists now is its backlog (digests bound it).
        connection.execute(update(sources).where(sources.c.id == source_id).values(started=now))

    stored: dict[str, tuple[int, str, int | None]] = {}
    for part in chunks(list(batch)):
        query = select(articles.c.identity, articles.c.id, articles.c.content_hash, articles.c.duplicate_of)
        for found in connection.execute(query.where(articles.c.identity.in_(part))):
            stored[found.identity] = (found.id, found.content_hash, found.duplicate_of)
    changed = {
        identity: article_id
        for identity, (article_id, content_hash, _) in stored.items()
        if content_hash != batch[identity]["content_hash"]
    }
    visible = _update_existing(connection, batch, changed, now)

    new_rows = [row for identity, row in batch.items() if identity not in stored]
    for row in new_rows:
        row["published"] = row["published"] or now
        row["updated"] = row["updated"] or row["published"]
        row["first_seen"] = now
        row["source_id"] = source_id
    new_ids, roots = _insert_new(connection, new_rows)

    # Categories go to the article and to the root of its duplicate chain, so that a
    # category's listing (which hides duplicates) still shows the story.
    old_ids = {article_id for article_id, _, _ in stored.values()}
    roots |= {root for _, _, root in stored.values() if root is not None}
    listed = old_ids | set(new_ids.values())
    wanted = list(dict.fromkeys(categories))
    recategorised = _add_missing(
        connection,
        article_categories,
        "category",
        {(article_id, category) for article_id in listed | roots for category in wanted},
        known_ids=old_ids | roots,
    )
    relisted = _add_missing(
        connection,
        article_sources,
        "source_id",
        {(article_id, source_id) for article_id in listed},
        known_ids=old_ids,
    )

    # Feeds hide duplicates, so a duplicate changes none by itself; its root (never a
    # duplicate) changes feeds when it got one of the duplicate's categories.
    hidden = {article_id for article_id, _, root in stored.values() if root is not None}
    hidden |= {new_ids[row["identity"]] for row in new_rows if row["duplicate_of"] is not None}
    scopes.touch(connection, (set(new_ids.values()) | visible | recategorised | relisted) - hidden)
    return SaveCounts(new=len(new_rows), updated=len(visible), unchanged=len(stored) - len(visible))


_ARTICLE_COLUMNS = (
    articles.c.id,
    articles.c.identity,
    articles.c.guid,
    articles.c.url,
    articles.c.title,
    articles.c.summary,
    articles.c.content_html,
    articles.c.author,
    articles.c.published,
    articles.c.updated,
    articles.c.first_seen,
    articles.c.image_url,
    articles.c.source_id,
    articles.c.duplicate_of,
    articles.c.dated,
)


def _read(connection: Connection, query: Select[Any]) -> list[Article]:
    rows = connection.execute(query).all()
    categories: dict[int, list[str]] = {}
    listed_by: dict[int, list[str]] = {}
    for part in chunks([row.id for row in rows]):
        pairs = select(article_categories.c.article_id, article_categories.c.category).where(
            article_categories.c.article_id.in_(part)
        )
        for article_id, category in connection.execute(pairs):
            categories.setdefault(article_id, []).append(category)
        listings = select(article_sources.c.article_id, article_sources.c.source_id).where(
            article_sources.c.article_id.in_(part)
        )
        for article_id, source_id in connection.execute(listings):
            listed_by.setdefault(article_id, []).append(source_id)
    return [
        Article(
            id=row.id,
            identity=row.identity,
            guid=row.guid,
            url=row.url,
            title=row.title,
            summary=row.summary,
            content_html=row.content_html,
            author=row.author,
            published=row.published,
            updated=row.updated,
            first_seen=row.first_seen,
            image_url=row.image_url,
            source_id=row.source_id,
            categories=tuple(sorted(categories.get(row.id, ()))),
            duplicate_of=row.duplicate_of,
            sources=tuple(sorted(listed_by.get(row.id, ()))),
            dated=row.dated,
        )
        for row in rows
    ]


def _filter(
    query: Select[Any],
    *,
    category: str | None,
    source_id: str | None,
    include_duplicates: bool,
    search: str | None,
) -> Select[Any]:
    """``query`` (over ``articles``) restricted as ``Store.list_articles`` describes."""
    if category is not None:
        query = query.where(
            exists().where(
                article_categories.c.article_id == articles.c.id, article_categories.c.category == category
            )
        )
    if source_id is not None:
        query = query.where(
            exists().where(
                article_sources.c.article_id == articles.c.id, article_sources.c.source_id == source_id
            )
        )
    # The search is a phrase that must start at a word: a Vietnamese word is several
    # syllables ("uỷ ban" is one word, "committee"), so matching the syllables anywhere
    # and in any order would find nearly every article. "d" finds "đảng"; "ban" does
    # not find "quban".
    phrase = " ".join((search or "").split())
    if phrase:
        spaced = literal(" ").concat(articles.c.search_text)
        query = query.where(spaced.contains(" " + phrase, autoescape=True))
    if not include_duplicates:
        query = query.where(articles.c.duplicate_of.is_(None))
    return query


def list_articles(
    connection: Connection,
    *,
    category: str | None,
    search: str | None,
    source_id: str | None,
    limit: int,
    offset: int,
    include_duplicates: bool,
) -> list[Article]:
    """Articles newest first; see ``Store.list_articles``."""
    query = _filter(
        select(*_ARTICLE_COLUMNS),
        category=category,
        source_id=source_id,
        include_duplicates=include_duplicates,
        search=search,
    )
    # The id makes the order total, so pages by offset neither skip nor repeat an article.
    query = query.order_by(articles.c.published.desc(), articles.c.id.desc())
    return _read(connection, query.limit(max(limit, 0)).offset(max(offset, 0)))


def get_article(connection: Connection, article_id: int) -> Article | None:
    """One article by id, duplicate or not."""
    found = _read(connection, select(*_ARTICLE_COLUMNS).where(articles.c.id == article_id))
    return found[0] if found else None


def count_articles(
    connection: Connection, *, category: str | None, source_id: str | None, include_duplicates: bool
) -> int:
    """How many articles ``list_articles`` would list without a limit; see ``Store.count_articles``."""
    query = _filter(
        select(func.count()).select_from(articles),
        category=category,
        source_id=source_id,
        include_duplicates=include_duplicates,
        search=None,
    )
    return int(connection.scalar(query) or 0)


def digest_articles(
    connection: Connection,
    *,
    categories: Sequence[str],
    seen_after: datetime,
    seen_until: datetime,
    limit: int,
    recent_after: datetime | None = None,
    first: bool = False,
) -> list[Article]:
    """Articles for a digest window; see ``Store.digest_articles`` (the SQL form of
    ``digest.select.takes``)."""
    query = select(*_ARTICLE_COLUMNS).where(
        articles.c.duplicate_of.is_(None),
        articles.c.first_seen > seen_after,
        articles.c.first_seen <= seen_until,
    )
    if recent_after is not None:
        reference = case((articles.c.dated, articles.c.published), else_=articles.c.first_seen)
        recent = reference > recent_after
        if first:
            query = query.where(recent)
        else:
            started = select(sources.c.started).where(sources.c.id == articles.c.source_id).scalar_subquery()
            query = query.where(or_(started.is_(None), started <= seen_after, recent))
    wanted = sorted(set(categories))
    if wanted:
        query = query.where(
            exists().where(
                article_categories.c.article_id == articles.c.id, article_categories.c.category.in_(wanted)
            )
        )
    query = query.order_by(articles.c.published.desc(), articles.c.id.desc())
    return _read(connection, query.limit(max(limit, 0)))

"""What each subscriber's digest holds: the window it covers and the articles in it.

Pure: no I/O, no clock (``now`` is an argument), no store. The store hands over the
articles of a window; this module decides, for one subscriber, which of them go in,
in what order and under which heading:

- The window is ``(start, end]`` over ``Article.first_seen``: the time *we* first saw an
  article, not the date its publisher printed, so a story published (or back-dated)
  before the last digest but found after it still reaches everyone once, and only once.
- It starts where the subscriber's previous *delivered* digest ended, so a subscriber
  whose deliveries failed for a week gets that week, not "since the last run". A new
  subscriber's first digest reaches back one digest period, never the whole archive.
- A catch-up is bounded by publication date (``takes``): in a subscriber's first digest,
  and for a source that started (brought its first articles) inside the window — every
  source of a new install, a source added to the configuration or given a new address —
  only articles dated within one ``period`` before the window's end go in, not the weeks
  of archive a source lists when it is first polled. The date is the publisher's when it
  is trustworthy (``Article.dated``: the source gave one, and it is not in the future;
  an old date is still a date), else the time we first saw the article.
- Articles are newest first, grouped by category in the configured order; an article in
  several of the subscriber's categories appears once, under the first of them.

``content_key`` says when two subscribers receive exactly the same content, so the
renderer runs once per distinct key rather than once per address.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from syndication.types import Article, DigestContent, DigestSection, DigestSpec

__all__ = ["content", "content_key", "reference_date", "takes", "window"]


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def window(*, last_end: datetime | None, now: datetime, period: timedelta) -> tuple[datetime, datetime]:
    """The ``(start, end]`` a subscriber's next digest covers.

    ``last_end`` is the end of the window of the subscriber's previous digest that was
    actually delivered (``None`` for a subscriber who never received one). However long
    ago that was, the window starts there; only a first digest is limited to ``period``.
    A ``last_end`` in the future (a clock set back) gives an empty window, not a negative one.

    Raises:
        ValueError: a naive datetime, or a period that is not positive.
    """
    _require_aware("now", now)
    if period <= timedelta(0):
        raise ValueError("the digest period must be positive")
    if last_end is None:
        return now - period, now
    _require_aware("last_end", last_end)
    return min(last_end, now), now


def reference_date(article: Article) -> datetime:
    """The date a catch-up is bounded by: the publisher's date when it is trustworthy
    (``Article.dated``), else when we first saw the article."""
    return article.published if article.dated else article.first_seen


def takes(
    article: Article,
    *,
    start: datetime,
    end: datetime,
    period: timedelta,
    first: bool,
    source_started: datetime | None,
) -> bool:
    """Whether ``article`` belongs in a digest window ``(start, end]``.

    It must have been first seen in the window. When the window is a subscriber's
    ``first``, or the article's source started inside it (``source_started`` after
    ``start``: its first articles are a backlog), it must also be dated (see
    ``reference_date``) after ``end - period``. A source not known to have started
    (``None``) is not bounded.
    """
    if not start < article.first_seen <= end:
        return False
    if first or (source_started is not None and source_started > start):
        return reference_date(article) > end - period
    return True


def _newest_first(article: Article) -> tuple[datetime, int]:
    # The store's own order (``published`` then ``id``, both descending), total and stable.
    return article.published, article.id


def content(
    *,
    digest: DigestSpec,
    categories: Sequence[str],
    articles: Sequence[Article],
    category_titles: Mapping[str, str],
    start: datetime,
    end: datetime,
    first: bool = False,
    sources_started: Mapping[str, datetime | None] | None = None,
) -> DigestContent:
    """The digest one subscriber following ``categories`` receives for the window ``(start, end]``.

    ``category_titles`` is every configured category (slug -> title) in configured order;
    an empty ``categories`` means all of them, and a followed slug that is no longer
    configured is ignored. ``articles`` should already be the window's articles; they are
    filtered again here (``takes``, with ``first`` and each source's start from
    ``sources_started``; categories, republished duplicates, repeated ids) so a wider
    query can never leak into a digest. At most
    ``digest.max_items`` articles are kept, the newest overall; sections without articles
    are left out, so a window with nothing new gives no sections at all.

    Raises:
        ValueError: ``start`` or ``end`` is naive.
    """
    _require_aware("start", start)
    _require_aware("end", end)
    followed = set(categories)
    order = [slug for slug in category_titles if not followed or slug in followed]
    rank = {slug: index for index, slug in enumerate(order)}

    started = sources_started or {}
    chosen: dict[int, tuple[Article, str]] = {}
    for article in articles:
        if article.id in chosen or article.duplicate_of is not None:
            continue
        if not takes(
            article,
            start=start,
            end=end,
            period=digest.period,
            first=first,
            source_started=started.get(article.source_id),
        ):
            continue
        ranks = [rank[slug] for slug in article.categories if slug in rank]
        if ranks:
            chosen[article.id] = (article, order[min(ranks)])

    newest = sorted(chosen.values(), key=lambda pair: _newest_first(pair[0]), reverse=True)
    kept = newest[: max(digest.max_items, 0)]
    grouped: dict[str, list[Article]] = {slug: [] for slug in order}
    for article, slug in kept:
        grouped[slug].append(article)
    sections = tuple(
        DigestSection(category=slug, title=category_titles[slug], articles=tuple(items))
        for slug, items in grouped.items()
        if items
    )
    return DigestContent(digest=digest, sections=sections, window_start=start, window_end=end)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _instant(moment: datetime) -> int:
    # Exact, independent of the offset the datetime is written in, and cheaper than isoformat.
    return (moment - _EPOCH) // _MICROSECOND


def content_key(digest_content: DigestContent) -> str:
    """A stable key (hex sha256) of everything rendering depends on.

    Equal keys mean byte-identical rendered content: the digest (name, title, subject),
    the window, and each section's category and title with its article ids and
    ``updated`` times (a changed article has a new ``updated``).
    """
    spec = digest_content.digest
    payload = [
        spec.name,
        spec.title,
        spec.subject,
        _instant(digest_content.window_start),
        _instant(digest_content.window_end),
        [
            [
                section.category,
                section.title,
                [[article.id, _instant(article.updated)] for article in section.articles],
            ]
            for section in digest_content.sections
        ],
    ]
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()

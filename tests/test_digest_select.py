"""Tests for ``syndication.digest.select``: the window, what goes in a digest, the content key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndication.digest.select import content, content_key, reference_date, takes, window
from syndication.types import Article, DigestContent, DigestSpec

NOW = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)

CATEGORIES = {
    "xay-dung-dang": "Xây dựng Đảng",
    "thoi-su": "Thời sự",
    "van-hoa": "Văn hoá",
}
"""Configured order: Xây dựng Đảng, Thời sự, Văn hoá."""

DAILY = DigestSpec(
    name="daily",
    schedule="0 6 * * *",
    subject="{digest} {date}",
    max_items=50,
    period=DAY,
    title="Bản tin hằng ngày",
)


def article(
    id: int,
    *categories: str,
    seen: datetime | None = None,
    published: datetime | None = None,
    **changes: object,
) -> Article:
    seen = seen if seen is not None else NOW - timedelta(hours=id)
    made = Article(
        id=id,
        identity=f"url:https://tin.example.vn/{id}",
        guid=None,
        url=f"https://tin.example.vn/{id}.html",
        title=f"Tin số {id}",
        summary="",
        content_html="",
        author="",
        published=published if published is not None else seen,
        updated=seen,
        first_seen=seen,
        image_url=None,
        source_id="nguon",
        categories=categories or ("thoi-su",),
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def select(
    articles: list[Article],
    *,
    categories: tuple[str, ...] = (),
    digest: DigestSpec = DAILY,
    start: datetime = NOW - DAY,
    end: datetime = NOW,
) -> DigestContent:
    return content(
        digest=digest,
        categories=categories,
        articles=articles,
        category_titles=CATEGORIES,
        start=start,
        end=end,
    )


def layout(selected: DigestContent) -> list[tuple[str, list[int]]]:
    return [(section.category, [a.id for a in section.articles]) for section in selected.sections]


# --- window ---------------------------------------------------------------------------


def test_window_of_a_new_subscriber_reaches_back_one_period() -> None:
    assert window(last_end=None, now=NOW, period=DAY) == (NOW - DAY, NOW)
    assert window(last_end=None, now=NOW, period=7 * DAY) == (NOW - 7 * DAY, NOW)


def test_window_of_a_returning_subscriber_starts_at_their_last_delivery() -> None:
    last = NOW - timedelta(hours=20)
    assert window(last_end=last, now=NOW, period=DAY) == (last, NOW)


def test_window_of_a_long_silent_subscriber_is_not_cut_to_one_period() -> None:
    """Deliveries failed for a month: the next digest covers the whole month."""
    last = NOW - 30 * DAY
    start, end = window(last_end=last, now=NOW, period=DAY)
    assert (start, end) == (last, NOW)
    month_old = article(1, seen=NOW - 20 * DAY)
    assert layout(select([month_old], start=start, end=end)) == [("thoi-su", [1])]
    # A new subscriber's window does not reach that far.
    new_start, new_end = window(last_end=None, now=NOW, period=DAY)
    assert select([month_old], start=new_start, end=new_end).sections == ()


def test_window_after_a_clock_set_back_is_empty_not_negative() -> None:
    start, end = window(last_end=NOW + DAY, now=NOW, period=DAY)
    assert start == end == NOW


def test_window_rejects_naive_datetimes_and_empty_periods() -> None:
    with pytest.raises(ValueError, match="aware"):
        window(last_end=None, now=datetime(2026, 11, 27), period=DAY)
    with pytest.raises(ValueError, match="aware"):
        window(last_end=datetime(2026, 11, 26), now=NOW, period=DAY)
    with pytest.raises(ValueError, match="positive"):
        window(last_end=None, now=NOW, period=timedelta(0))


def test_consecutive_windows_neither_overlap_nor_leave_gaps() -> None:
    """An article first seen exactly at a window's end is in that digest, not the next."""
    first = window(last_end=None, now=NOW, period=DAY)
    second = window(last_end=first[1], now=NOW + DAY, period=DAY)
    on_the_edge = article(1, seen=NOW)
    assert layout(select([on_the_edge], start=first[0], end=first[1])) == [("thoi-su", [1])]
    assert select([on_the_edge], start=second[0], end=second[1]).sections == ()


# --- content --------------------------------------------------------------------------


def test_groups_by_category_in_configured_order_newest_first() -> None:
    articles = [
        article(5, "van-hoa"),
        article(1, "thoi-su"),
        article(4, "xay-dung-dang"),
        article(2, "van-hoa"),
        article(3, "thoi-su"),
    ]
    selected = select(articles)
    assert layout(selected) == [("xay-dung-dang", [4]), ("thoi-su", [1, 3]), ("van-hoa", [2, 5])]
    assert [s.title for s in selected.sections] == ["Xây dựng Đảng", "Thời sự", "Văn hoá"]
    assert selected.count == 5
    assert (selected.window_start, selected.window_end) == (NOW - DAY, NOW)
    assert selected.digest is DAILY


def test_newest_is_by_published_date_then_id() -> None:
    """The order the store and the feeds use: ``published`` descending, ties by id."""
    same = NOW - timedelta(hours=3)
    articles = [
        article(1, published=NOW - timedelta(hours=10)),
        article(2, published=same),
        article(3, published=same),
        article(4, published=NOW - timedelta(hours=1)),
    ]
    assert layout(select(articles)) == [("thoi-su", [4, 3, 2, 1])]


def test_an_article_in_several_categories_appears_once_under_the_first_followed() -> None:
    both = article(1, "van-hoa", "thoi-su")
    everything = select([both])
    assert layout(everything) == [("thoi-su", [1])]
    only_culture = select([both], categories=("van-hoa",))
    assert layout(only_culture) == [("van-hoa", [1])]
    # The subscriber's own order does not matter: the configured order does.
    assert layout(select([both], categories=("van-hoa", "thoi-su"))) == [("thoi-su", [1])]


def test_subscriber_categories_filter_the_articles() -> None:
    articles = [article(1, "thoi-su"), article(2, "van-hoa"), article(3, "xay-dung-dang")]
    assert layout(select(articles, categories=("van-hoa",))) == [("van-hoa", [2])]
    assert layout(select(articles, categories=("xay-dung-dang", "van-hoa"))) == [
        ("xay-dung-dang", [3]),
        ("van-hoa", [2]),
    ]


def test_a_followed_category_no_longer_configured_is_ignored() -> None:
    articles = [article(1, "thoi-su"), article(2, "da-bo")]
    assert layout(select(articles, categories=("da-bo", "thoi-su"))) == [("thoi-su", [1])]
    assert select(articles, categories=("da-bo",)).sections == ()
    # "All categories" means the configured ones: an article only in an unknown one stays out.
    assert layout(select(articles)) == [("thoi-su", [1])]


def test_max_items_keeps_the_newest_overall() -> None:
    articles = [
        article(1, "van-hoa"),
        article(2, "thoi-su"),
        article(3, "xay-dung-dang"),
        article(4, "van-hoa"),
        article(5, "thoi-su"),
    ]
    three = replace(DAILY, max_items=3)
    selected = select(articles, digest=three)
    assert layout(selected) == [("xay-dung-dang", [3]), ("thoi-su", [2]), ("van-hoa", [1])]
    assert selected.count == 3
    # Counted after dedup: an article in two categories is one item.
    assert select([article(1, "thoi-su", "van-hoa"), article(2, "van-hoa")], digest=three).count == 2


def test_articles_outside_the_window_are_left_out_even_if_the_store_sent_them() -> None:
    articles = [
        article(1, seen=NOW - DAY),  # exactly at the start: belongs to the previous digest
        article(2, seen=NOW - DAY + timedelta(seconds=1)),
        article(3, seen=NOW),
        article(4, seen=NOW + timedelta(seconds=1)),  # after the end
    ]
    assert layout(select(articles)) == [("thoi-su", [3, 2])]


def test_window_is_by_first_seen_not_published() -> None:
    """A story dated last week but found today is new to the subscriber."""
    backdated = article(1, seen=NOW - timedelta(hours=2), published=NOW - 7 * DAY)
    future_dated = article(2, seen=NOW - 3 * DAY, published=NOW - timedelta(hours=1))
    assert layout(select([backdated, future_dated])) == [("thoi-su", [1])]


def test_republished_duplicates_and_repeated_rows_are_left_out() -> None:
    original = article(1)
    republished = article(2, duplicate_of=1)
    assert layout(select([original, republished, original])) == [("thoi-su", [1])]


def test_no_articles_gives_no_sections() -> None:
    selected = select([])
    assert selected.sections == ()
    assert selected.count == 0
    assert select([article(1, seen=NOW - 2 * DAY)]).sections == ()


def test_content_rejects_naive_window() -> None:
    with pytest.raises(ValueError, match="aware"):
        select([], start=datetime(2026, 11, 26))


# --- content key ------------------------------------------------------------------------


def test_content_key_is_equal_for_equal_content() -> None:
    articles = [article(1, "thoi-su", "van-hoa"), article(2, "van-hoa")]
    # Two subscribers who follow the same categories in a different order, and one who
    # follows all of them (the same here): one rendering serves them all.
    keys = {
        content_key(select(articles, categories=("thoi-su", "van-hoa"))),
        content_key(select(articles, categories=("van-hoa", "thoi-su"))),
        content_key(select(list(reversed(articles)))),
    }
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) == 64
    assert int(key, 16) >= 0
    # The same instants written in another offset are the same window.
    plus7 = timezone(timedelta(hours=7))
    shifted = select(articles, start=(NOW - DAY).astimezone(plus7), end=NOW.astimezone(plus7))
    assert content_key(shifted) == key


def test_content_key_differs_when_anything_rendered_differs() -> None:
    articles = [article(1, "thoi-su", "van-hoa"), article(2, "van-hoa")]
    base = content_key(select(articles))
    different = [
        # Grouped differently: the shared article under another heading.
        select(articles, categories=("van-hoa",)),
        # Another window.
        select(articles, start=NOW - 2 * DAY),
        select(articles, end=NOW + timedelta(seconds=1)),
        # An article changed since.
        select([replace(articles[0], updated=NOW), articles[1]]),
        # Fewer articles.
        select(articles[:1]),
        # Another digest.
        select(articles, digest=replace(DAILY, name="weekly")),
        select(articles, digest=replace(DAILY, title="Bản tin tuần")),
        select(articles, digest=replace(DAILY, subject="{count} tin")),
    ]
    keys = [content_key(selected) for selected in different]
    assert base not in keys
    assert len(set(keys)) == len(keys)


# --- every input ------------------------------------------------------------------------

_SLUGS = [*CATEGORIES, "da-bo"]


@st.composite
def _articles(draw: st.DrawFn) -> list[Article]:
    count = draw(st.integers(min_value=0, max_value=25))
    made = []
    for id in range(1, count + 1):
        cats = tuple(draw(st.lists(st.sampled_from(_SLUGS), min_size=1, max_size=3, unique=True)))
        seen = NOW - timedelta(minutes=draw(st.integers(min_value=-120, max_value=3 * 24 * 60)))
        published = NOW - timedelta(minutes=draw(st.integers(min_value=0, max_value=50)))
        duplicate = draw(st.sampled_from([None, None, None, 1]))
        made.append(article(id, *cats, seen=seen, published=published, duplicate_of=duplicate))
    return made


@settings(max_examples=200, deadline=None)
@given(
    articles=_articles(),
    followed=st.lists(st.sampled_from(_SLUGS), max_size=4, unique=True),
    max_items=st.integers(min_value=0, max_value=30),
)
def test_selection_rules_hold_for_every_input(
    articles: list[Article], followed: list[str], max_items: int
) -> None:
    digest = replace(DAILY, max_items=max_items)
    selected = select(articles, categories=tuple(followed), digest=digest)
    start, end = selected.window_start, selected.window_end
    wanted = set(followed) & set(CATEGORIES) if followed else set(CATEGORIES)
    eligible = [
        a
        for a in articles
        if a.duplicate_of is None and start < a.first_seen <= end and wanted & set(a.categories)
    ]
    newest = sorted(eligible, key=lambda a: (a.published, a.id), reverse=True)[:max_items]

    chosen = [a for section in selected.sections for a in section.articles]
    ids = [a.id for a in chosen]
    assert len(ids) == len(set(ids)), "an article appears once"
    assert set(ids) == {a.id for a in newest}, "the newest max_items eligible articles"
    order = list(CATEGORIES)
    assert [s.category for s in selected.sections] == sorted(
        (s.category for s in selected.sections), key=order.index
    )
    for section in selected.sections:
        assert section.articles, "no empty sections"
        assert section.title == CATEGORIES[section.category]
        keys = [(a.published, a.id) for a in section.articles]
        assert keys == sorted(keys, reverse=True)
        for a in section.articles:
            first = min((c for c in a.categories if c in wanted), key=order.index)
            assert section.category == first


HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("case", "seen", "published", "dated", "first", "started", "taken"),
    [
        # An ordinary window: what we first saw in it, whatever its date.
        ("found in the window", NOW - HOUR, NOW - HOUR, True, False, None, True),
        ("found late, dated last week", NOW - HOUR, NOW - WEEK, True, False, NOW - 30 * DAY, True),
        ("found before the window", NOW - DAY - HOUR, NOW - DAY - HOUR, True, False, None, False),
        ("found after the window's end", NOW + HOUR, NOW, True, False, None, False),
        # A first digest: published within the period before the end.
        ("first: published today", NOW - HOUR, NOW - 2 * HOUR, True, True, None, True),
        ("first: published a week ago", NOW - HOUR, NOW - WEEK, True, True, None, False),
        ("first: published exactly a period ago", NOW - HOUR, NOW - DAY, True, True, None, False),
        ("first: no trustworthy date, seen today", NOW - HOUR, NOW - HOUR, False, True, None, True),
        ("first: published yesterday evening", NOW - HOUR, NOW - DAY + HOUR, True, True, None, True),
        # A source that started inside the window: its backlog is bounded the same way.
        ("new source: backlog", NOW - HOUR, NOW - 3 * WEEK, True, False, NOW - HOUR, False),
        ("new source: recent", NOW - HOUR, NOW - 3 * HOUR, True, False, NOW - HOUR, True),
        ("new source: undated", NOW - HOUR, NOW - HOUR, False, False, NOW - HOUR, True),
        ("source started at the window's start", NOW - HOUR, NOW - WEEK, True, False, NOW - DAY, True),
        ("source started before the window", NOW - HOUR, NOW - WEEK, True, False, NOW - 2 * DAY, True),
    ],
)
def test_what_a_window_takes(
    case: str,
    seen: datetime,
    published: datetime,
    dated: bool,
    first: bool,
    started: datetime | None,
    taken: bool,
) -> None:
    made = article(1, seen=seen, published=published, dated=dated)
    assert takes(made, start=NOW - DAY, end=NOW, period=DAY, first=first, source_started=started) is taken, (
        case
    )
    # content() applies the same rule.
    chosen = content(
        digest=DAILY,
        categories=(),
        articles=[made],
        category_titles=CATEGORIES,
        start=NOW - DAY,
        end=NOW,
        first=first,
        sources_started={"nguon": started},
    )
    assert (chosen.count == 1) is taken, case


def test_the_reference_date_is_the_publishers_only_when_trustworthy() -> None:
    dated = article(1, seen=NOW, published=NOW - WEEK)
    assert reference_date(dated) == NOW - WEEK
    assert reference_date(replace(dated, dated=False)) == NOW


def test_a_weekly_first_digest_reaches_back_a_week() -> None:
    weekly = replace(DAILY, name="weekly", period=WEEK)
    made = [article(n, seen=NOW - HOUR, published=NOW - n * DAY - HOUR) for n in range(1, 10)]
    chosen = content(
        digest=weekly,
        categories=(),
        articles=made,
        category_titles=CATEGORIES,
        start=NOW - WEEK,
        end=NOW,
        first=True,
    )
    assert sorted(a.id for s in chosen.sections for a in s.articles) == [1, 2, 3, 4, 5, 6]

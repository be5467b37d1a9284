"""What publishing feeds needs from the store: pages by offset, counts, and versions of what changed."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import StatementError

from syndication.store import Store
from syndication.types import SaveCounts
from tests.test_store_articles import BODY, NOW, add_sources, keyed


def scopes(*names: str) -> frozenset[str]:
    return frozenset(names)


def save_ubnd_story_three_times(store: Store) -> tuple[int, int, int]:
    """One story from tuoitre (thoi-su), republished by thanhnien (kinh-te) and nld (thoi-su);
    the ids of the root and of the two duplicates."""
    add_sources(store, "tuoitre", "thanhnien", "nld")
    title = "Uỷ ban nhân dân TP.HCM họp báo kinh tế xã hội tháng 11"
    copies = [
        ("tuoitre", "thoi-su", keyed(title, BODY, url="https://tuoitre.vn/ubnd.htm", published=NOW)),
        (
            "thanhnien",
            "kinh-te",
            keyed(title, BODY + " (Theo Tuổi Trẻ)", url="https://thanhnien.vn/ubnd.htm"),
        ),
        ("nld", "thoi-su", keyed(title, BODY + " Xem thêm.", url="https://nld.com.vn/ubnd.htm")),
    ]
    for source_id, category, article in copies:
        store.save_articles(source_id=source_id, categories=[category], articles=[article], now=NOW)
    by_url = {a.url: a for a in store.list_articles(include_duplicates=True)}
    root = by_url["https://tuoitre.vn/ubnd.htm"]
    assert by_url["https://thanhnien.vn/ubnd.htm"].duplicate_of == root.id
    assert by_url["https://nld.com.vn/ubnd.htm"].duplicate_of == root.id
    return root.id, by_url["https://thanhnien.vn/ubnd.htm"].id, by_url["https://nld.com.vn/ubnd.htm"].id


# --- pages and counts ---------------------------------------------------------------


def test_offset_pages_through_without_gaps_or_overlaps(store: Store) -> None:
    add_sources(store, "vnexpress", "tuoitre")
    # Many articles share a published time: only the id tells them apart.
    vn = [
        keyed(f"Tin số {n}", url=f"https://vnexpress.net/{n}", published=NOW + timedelta(hours=n % 3))
        for n in range(11)
    ]
    store.save_articles(source_id="vnexpress", categories=["thoi-su"], articles=vn, now=NOW)
    tt = [keyed(f"Tin Tuổi Trẻ {n}", url=f"https://tuoitre.vn/{n}", published=NOW) for n in range(4)]
    store.save_articles(source_id="tuoitre", categories=["thoi-su", "the-thao"], articles=tt, now=NOW)
    save_ubnd_story_three_times(store)

    filters = [(None, None), ("thoi-su", None), ("the-thao", None), (None, "tuoitre"), ("thoi-su", "nld")]
    for category, source_id in filters:
        for include_duplicates in (False, True):
            where = {"category": category, "source_id": source_id, "include_duplicates": include_duplicates}
            whole = store.list_articles(
                category=category, source_id=source_id, limit=1000, include_duplicates=include_duplicates
            )
            count = store.count_articles(
                category=category, source_id=source_id, include_duplicates=include_duplicates
            )
            assert count == len(whole), where
            for size in range(1, 6):
                pages = []
                for offset in range(0, len(whole) + size, size):
                    page = store.list_articles(
                        category=category,
                        source_id=source_id,
                        limit=size,
                        offset=offset,
                        include_duplicates=include_duplicates,
                    )
                    assert len(page) <= size
                    pages.extend(page)
                assert [a.id for a in pages] == [a.id for a in whole], (where, size)
    assert store.list_articles(limit=5, offset=10_000) == []
    assert store.list_articles(limit=3, offset=-4) == store.list_articles(limit=3)


def test_counts_per_category_and_source(store: Store) -> None:
    assert store.count_articles() == 0
    assert store.count_articles(category="thoi-su", include_duplicates=False) == 0
    add_sources(store, "vnexpress")
    vn = [keyed(f"Tin số {n}", url=f"https://vnexpress.net/{n}") for n in range(3)]
    store.save_articles(source_id="vnexpress", categories=["the-thao"], articles=vn, now=NOW)
    root, _, _ = save_ubnd_story_three_times(store)

    # Backward compatible: no arguments counts every stored article, duplicates included.
    assert store.count_articles() == 6
    assert store.count_articles(include_duplicates=False) == 4
    assert store.count_articles(category="thoi-su") == 2  # the root and nld's copy
    assert store.count_articles(category="thoi-su", include_duplicates=False) == 1
    assert store.count_articles(category="kinh-te") == 2  # thanhnien's copy, and the root got its category
    assert store.count_articles(category="kinh-te", include_duplicates=False) == 1
    assert store.count_articles(category="the-thao") == 3
    assert store.count_articles(source_id="nld") == 1
    assert store.count_articles(source_id="nld", include_duplicates=False) == 0  # only a duplicate
    assert store.count_articles(source_id="tuoitre", include_duplicates=False) == 1
    assert store.count_articles(category="thoi-su", source_id="vnexpress") == 0
    assert store.count_articles(category="the-thao", source_id="vnexpress") == 3
    assert store.count_articles(category="khong-co") == store.count_articles(source_id="khong-co") == 0
    assert [a.id for a in store.list_articles(category="kinh-te")] == [root]


# --- versions -----------------------------------------------------------------------


def test_an_empty_store_is_at_version_zero(store: Store) -> None:
    assert store.content_version() == 0
    assert store.changed_scopes(since=0) == (0, frozenset())
    add_sources(store, "vnexpress")
    assert store.save_articles(source_id="vnexpress", categories=["a"], articles=[], now=NOW) == SaveCounts()
    assert store.content_version() == 0


def test_new_articles_bump_all_and_their_categories_and_source(store: Store) -> None:
    add_sources(store, "vnexpress", "tuoitre")
    article = keyed("Giá vàng tăng", url="https://vnexpress.net/1")
    store.save_articles(source_id="vnexpress", categories=["kinh-te", "thoi-su"], articles=[article], now=NOW)
    assert store.content_version() == 1
    first = scopes("all", "category:kinh-te", "category:thoi-su", "source:vnexpress")
    assert store.changed_scopes(since=0) == (1, first)
    assert store.changed_scopes(since=1) == (1, frozenset())

    batch = [keyed(f"Bóng đá {n}", url=f"https://tuoitre.vn/{n}") for n in range(3)]
    store.save_articles(source_id="tuoitre", categories=["the-thao"], articles=batch, now=NOW)
    second = scopes("all", "category:the-thao", "source:tuoitre")
    assert store.changed_scopes(since=1) == (2, second)  # one version per save, not per article
    assert store.changed_scopes(since=0) == (2, first | second)


def test_unchanged_saves_bump_nothing(store: Store) -> None:
    add_sources(store, "dantri")
    full = keyed(
        "Khai mạc kỳ họp",
        "Quốc hội khai mạc kỳ họp tại Hà Nội",
        url="https://dantri.com.vn/khai-mac.htm",
        author="Thành Đạt",
        published=NOW,
    )
    other = keyed("Tin khác", url="https://dantri.com.vn/khac.htm", published=NOW)
    store.save_articles(source_id="dantri", categories=["thoi-su"], articles=[full, other], now=NOW)
    assert store.content_version() == 1
    later = NOW + timedelta(hours=1)
    assert store.save_articles(
        source_id="dantri", categories=["thoi-su"], articles=[other, full], now=later
    ) == SaveCounts(unchanged=2)
    # Another content hash, but nothing a reader sees changes: empty fields never overwrite.
    garbage = keyed("", "", url="https://dantri.com.vn/khai-mac.htm")
    assert store.save_articles(
        source_id="dantri", categories=["thoi-su"], articles=[garbage], now=later
    ) == SaveCounts(unchanged=1)
    assert store.changed_scopes(since=0) == (1, scopes("all", "category:thoi-su", "source:dantri"))


def test_an_update_bumps_every_scope_of_the_article(store: Store) -> None:
    add_sources(store, "vnexpress", "tuoitre", "dantri")
    story = keyed("Bão số 15", "Bão mạnh", url="https://vnexpress.net/bao", published=NOW)
    store.save_articles(source_id="vnexpress", categories=["thoi-su"], articles=[story], now=NOW)
    store.save_articles(source_id="tuoitre", categories=["xa-hoi"], articles=[story], now=NOW)
    store.save_articles(
        source_id="dantri",
        categories=["the-thao"],
        articles=[keyed("Bóng đá", url="https://dantri.com.vn/1")],
        now=NOW,
    )
    before = store.content_version()
    assert before == 3

    changed = keyed("Bão số 15 đổ bộ", "Bão mạnh", url="https://vnexpress.net/bao", published=NOW)
    counts = store.save_articles(source_id="vnexpress", categories=["thoi-su"], articles=[changed], now=NOW)
    assert counts == SaveCounts(updated=1)
    # Every feed the article is in, whichever source brought the update.
    assert store.changed_scopes(since=before) == (
        4,
        scopes("all", "category:thoi-su", "category:xa-hoi", "source:vnexpress", "source:tuoitre"),
    )


def test_a_known_article_in_a_new_category_or_source_bumps(store: Store) -> None:
    add_sources(store, "vnexpress-thoi-su", "vnexpress-kinh-te")
    story = keyed("Giá vàng hôm nay", BODY, guid="https://vnexpress.net/gia-vang-4821.html")
    store.save_articles(source_id="vnexpress-thoi-su", categories=["thoi-su"], articles=[story], now=NOW)
    # Counted as unchanged (its content is), but two feeds now list it and the others show a new category.
    counts = store.save_articles(
        source_id="vnexpress-kinh-te", categories=["kinh-te", "thoi-su"], articles=[story], now=NOW
    )
    assert counts == SaveCounts(unchanged=1)
    assert store.changed_scopes(since=1) == (
        2,
        scopes(
            "all",
            "category:kinh-te",
            "category:thoi-su",
            "source:vnexpress-thoi-su",
            "source:vnexpress-kinh-te",
        ),
    )
    # A category it already has: nothing changes.
    store.save_articles(source_id="vnexpress-thoi-su", categories=["kinh-te"], articles=[story], now=NOW)
    assert store.content_version() == 2


def test_duplicates_change_feeds_only_through_their_root(store: Store) -> None:
    add_sources(store, "tuoitre", "thanhnien", "nld", "baomoi")
    title = "Uỷ ban nhân dân TP.HCM họp báo kinh tế xã hội tháng 11"
    root = keyed(title, BODY, url="https://tuoitre.vn/ubnd.htm", published=NOW)
    store.save_articles(source_id="tuoitre", categories=["thoi-su"], articles=[root], now=NOW)
    assert store.content_version() == 1

    # Republished into a category the root already has: the story is new to no feed.
    same_category = keyed(title, BODY + " (Theo Tuổi Trẻ)", url="https://thanhnien.vn/ubnd.htm")
    counts = store.save_articles(
        source_id="thanhnien", categories=["thoi-su"], articles=[same_category], now=NOW
    )
    assert counts == SaveCounts(new=1)
    assert store.content_version() == 1

    # Republished into another category: the root joins it, so its feeds change, but not the
    # duplicate's source (its feed hides duplicates and does not list the root).
    other_category = keyed(title, BODY + " Xem thêm.", url="https://nld.com.vn/ubnd.htm")
    store.save_articles(source_id="nld", categories=["xa-hoi"], articles=[other_category], now=NOW)
    assert store.changed_scopes(since=1) == (
        2,
        scopes("all", "category:thoi-su", "category:xa-hoi", "source:tuoitre"),
    )
    assert store.list_articles(source_id="nld") == []

    # A duplicate updated in place, or listed by a new source into the root's categories: hidden, no change.
    edited = keyed(title + " (cập nhật)", BODY + " Xem thêm.", url="https://nld.com.vn/ubnd.htm")
    assert store.save_articles(
        source_id="nld", categories=["xa-hoi"], articles=[edited], now=NOW
    ) == SaveCounts(updated=1)
    store.save_articles(source_id="baomoi", categories=["thoi-su"], articles=[edited], now=NOW)
    assert store.content_version() == 2
    # ... unless it brings a category the root lacks.
    store.save_articles(source_id="baomoi", categories=["kinh-te"], articles=[edited], now=NOW)
    assert store.changed_scopes(since=2) == (
        3,
        scopes("all", "category:thoi-su", "category:xa-hoi", "category:kinh-te", "source:tuoitre"),
    )


def test_a_story_and_its_duplicate_in_one_batch(store: Store) -> None:
    add_sources(store, "baomoi")
    batch = [
        keyed("Hoà Bình khánh thành cầu mới", BODY, url="https://baomoi.com/a.epi", published=NOW),
        keyed("Hòa Bình khánh thành cầu mới", BODY, url="https://baomoi.com/b.epi", published=NOW),
    ]
    assert store.save_articles(
        source_id="baomoi", categories=["thoi-su"], articles=batch, now=NOW
    ) == SaveCounts(new=2)
    assert store.changed_scopes(since=0) == (1, scopes("all", "category:thoi-su", "source:baomoi"))


def test_changed_scopes_since_each_version(store: Store) -> None:
    add_sources(store, "vnexpress", "tuoitre", "dantri")
    saves: list[tuple[str, list[str], str, frozenset[str]]] = [
        (
            "vnexpress",
            ["thoi-su"],
            "https://vnexpress.net/1",
            scopes("all", "category:thoi-su", "source:vnexpress"),
        ),
        (
            "tuoitre",
            ["the-thao"],
            "https://tuoitre.vn/1",
            scopes("all", "category:the-thao", "source:tuoitre"),
        ),
        (
            "dantri",
            ["kinh-te"],
            "https://dantri.com.vn/1",
            scopes("all", "category:kinh-te", "source:dantri"),
        ),
        # The vnexpress article again, from tuoitre into a new category.
        (
            "tuoitre",
            ["xa-hoi"],
            "https://vnexpress.net/1",
            scopes("all", "category:thoi-su", "category:xa-hoi", "source:vnexpress", "source:tuoitre"),
        ),
        (
            "dantri",
            ["kinh-te"],
            "https://dantri.com.vn/2",
            scopes("all", "category:kinh-te", "source:dantri"),
        ),
    ]
    versions = [store.content_version()]
    for source_id, categories, url, _ in saves:
        article = keyed(f"Tin {url}", url=url, published=NOW)
        store.save_articles(source_id=source_id, categories=categories, articles=[article], now=NOW)
        versions.append(store.content_version())
    assert versions == list(range(len(saves) + 1))
    for index, since in enumerate(versions):
        expected = frozenset().union(*(touched for *_, touched in saves[index:]))
        assert store.changed_scopes(since=since) == (versions[-1], expected)
    # A reader ahead of the store (the database was replaced) gets the lower version and no scopes.
    assert store.changed_scopes(since=99) == (versions[-1], frozenset())


def test_a_failed_save_bumps_nothing(store: Store) -> None:
    add_sources(store, "vnexpress")
    store.save_articles(
        source_id="vnexpress", categories=["a"], articles=[keyed("Cũ", url="https://v/1")], now=NOW
    )
    naive = datetime(2026, 11, 27, 8, 0)
    batch = [keyed("Mới", url="https://v/2"), keyed("Tin khác", url="https://v/3", published=naive)]
    with pytest.raises(StatementError, match="naive datetime"):
        store.save_articles(source_id="vnexpress", categories=["b"], articles=batch, now=NOW)
    assert store.changed_scopes(since=0) == (1, scopes("all", "category:a", "source:vnexpress"))


def test_another_process_sees_versions_and_none_is_lost(store: Store, store_url: str) -> None:
    # Two Store objects on one database behave like two processes: each save that changes
    # something must get a version of its own, whichever process and thread made it.
    sources = [f"nguon-{n}" for n in range(6)]
    add_sources(store, *sources)
    rounds = 4
    errors: list[BaseException] = []

    with Store(store_url) as web:
        assert web.content_version() == 0

        def poll(index: int, source_id: str) -> None:
            target = store if index % 2 else web
            try:
                for round_ in range(rounds):
                    batch = [
                        keyed(
                            f"Bài {n} của {source_id} vòng {round_}",
                            url=f"https://{source_id}.vn/{round_}/{n}",
                        )
                        for n in range(5)
                    ]
                    target.save_articles(source_id=source_id, categories=[source_id], articles=batch, now=NOW)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=poll, args=pair) for pair in enumerate(sources)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        version, changed = web.changed_scopes(since=0)
    assert version == store.content_version() == len(sources) * rounds
    assert changed == scopes("all", *(f"category:{s}" for s in sources), *(f"source:{s}" for s in sources))
    # The newest version belongs to one save of one source.
    _, newest = store.changed_scopes(since=version - 1)
    assert len(newest) == 3
    assert "all" in newest

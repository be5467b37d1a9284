"""The store's database: migrations, backend settings, and errors at the edge."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.pool import NullPool

from syndication.errors import StoreError
from syndication.store import NO_ORGANISATION, DocumentTag, Store, migrate
from syndication.store.migrate import MIGRATIONS, head_revisions
from syndication.store.schema import article_categories, article_sources, articles, metadata
from syndication.types import ArticleData, ArticleKeys, KeyedArticle, SourceSpec

TABLES = {
    "sources",
    "articles",
    "article_categories",
    "article_sources",
    "page_validators",
    "feed_scopes",
    "organisations",
    "subscribers",
    "digest_issues",
    "deliveries",
    "digest_archive",
    "nodes",
    "issue_totals",
    "rate_hits",
    "alembic_version",
}


def raw_engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(url, poolclass=NullPool)


def test_upgrade_from_empty_to_head_and_again(store_url: str) -> None:
    (head,) = head_revisions()
    with Store(store_url) as store:
        assert store.revision() is None
        assert store.needs_upgrade()
        store.upgrade()
        assert store.revision() == head
        assert not store.needs_upgrade()
        store.upgrade()
        assert store.revision() == head
        assert store.count_articles() == 0
    engine = raw_engine(store_url)
    try:
        assert set(sqlalchemy.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_migrations_match_schema(store: Store, store_url: str) -> None:
    engine = raw_engine(store_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_every_autoincrement_table_keeps_it_through_every_migration(tmp_path: Path) -> None:
    """SQLite rebuilds a table for many ALTERs; a rebuild that forgets AUTOINCREMENT lets the
    ids of deleted rows (deliveries, articles) be handed out again."""
    url = f"sqlite:///{tmp_path / 'syndication.db'}"
    with Store(url) as store:
        store.upgrade()
    wanted = {t.name for t in metadata.sorted_tables if t.dialect_kwargs.get("sqlite_autoincrement")}
    assert wanted >= {"articles", "deliveries"}
    with sqlite3.connect(tmp_path / "syndication.db") as connection:
        sql = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert sorted(name for name in wanted if "AUTOINCREMENT" not in sql[name].upper()) == []


def test_migrations_are_python_files_the_wheel_ships() -> None:
    # pyproject ships store/migrations/*.py and store/migrations/versions/*.py, nothing else.
    assert (MIGRATIONS / "env.py").is_file()
    scripts = sorted(p.name for p in (MIGRATIONS / "versions").iterdir() if p.suffix == ".py")
    assert scripts[0] == "0001_initial.py"


def source(id: str) -> SourceSpec:
    return SourceSpec(
        id=id, url=f"https://{id}.vn/rss", kind="feed", categories=(), interval=timedelta(hours=1)
    )


def test_upgrade_0001_to_0002_keeps_data_and_marks_every_feed_changed(store_url: str) -> None:
    published = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    # As syndication wrote them at 0001: articles 2 and 4 duplicate 1, which got their categories.
    first_sources = {1: "a", 2: "b", 3: "c", 4: "d"}
    roots = {2: 1, 4: 1}
    categories = [(1, "x"), (1, "y"), (2, "y"), (3, "z"), (4, "x")]
    listed = [(1, "a"), (2, "b"), (3, "c"), (3, "a"), (4, "d")]
    rows = [
        {
            "id": id,
            "identity": f"url:https://a.vn/{id}",
            "url": f"https://a.vn/{id}",
            "title": f"Tin {id}",
            "title_key": f"tin {id}",
            "published": published + timedelta(hours=id),
            "updated": published + timedelta(hours=id),
            "first_seen": published,
            "source_id": source_id,
            "content_hash": str(id),
            "duplicate_of": roots.get(id),
        }
        for id, source_id in first_sources.items()
    ]

    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0001") as connection:
            migrate.upgrade(connection, "0001")
        assert store.revision() == "0001"
        store.sync_sources([source(s) for s in "abcd"])
        engine = raw_engine(store_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.insert(articles), sorted(rows, key=lambda row: row["id"] in roots)
                )
                connection.execute(
                    sqlalchemy.insert(article_categories),
                    [{"article_id": i, "category": c} for i, c in categories],
                )
                connection.execute(
                    sqlalchemy.insert(article_sources), [{"article_id": i, "source_id": s} for i, s in listed]
                )
        finally:
            engine.dispose()
        # Read as 0001 has them (the store's queries know the newest columns only).
        shown = (
            "id",
            "identity",
            "url",
            "title",
            "published",
            "updated",
            "first_seen",
            "source_id",
            "duplicate_of",
        )
        engine = raw_engine(store_url)
        try:
            with engine.connect() as connection:
                query = sqlalchemy.select(*(articles.c[name] for name in shown)).order_by(articles.c.id)
                before = [tuple(row) for row in connection.execute(query)]
        finally:
            engine.dispose()
        assert len(before) == 4

        assert store.needs_upgrade()
        store.upgrade()  # through 0002 to the newest revision
        assert store.revision() in head_revisions()
        after = sorted(store.list_articles(include_duplicates=True), key=lambda a: a.id)
        assert [tuple(getattr(a, name) for name in shown) for a in after] == before
        assert {a.id: a.categories for a in after} == {1: ("x", "y"), 2: ("y",), 3: ("z",), 4: ("x",)}
        # Version 1 for every feed with an article to show; sources b and d list only duplicates.
        assert store.content_version() == 1
        assert store.changed_scopes(since=0) == (
            1,
            frozenset({"all", "category:x", "category:y", "category:z", "source:a", "source:c"}),
        )

        # Saving goes on from there: article 3, listed by a new source into a new category.
        (stored,) = store.list_articles(category="z")
        store.sync_sources([source("e")])
        again = KeyedArticle(
            data=ArticleData(guid=None, url=stored.url, title=stored.title, published=stored.published),
            keys=ArticleKeys(
                identity=stored.identity,
                title_key="tin 3",
                body_key="",
                search_text="tin 3",
                content_hash="3",
            ),
        )
        store.save_articles(source_id="e", categories=["w"], articles=[again], now=published)
        assert store.changed_scopes(since=1) == (
            2,
            frozenset({"all", "category:w", "category:z", "source:a", "source:c", "source:e"}),
        )


def test_upgrade_0005_to_0009_keeps_sources_and_adds_no_warning(store_url: str) -> None:
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0005") as connection:
            migrate.upgrade(connection, "0005")
        store.sync_sources([source(s) for s in "ab"])
        engine = raw_engine(store_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.text(
                        "UPDATE sources SET last_error = 'HTTP 404', error_count = 2, etag = 'v1' "
                        "WHERE id = 'a'"
                    )
                )
        finally:
            engine.dispose()

        store.upgrade()

        assert store.revision() in head_revisions()
        states = store.source_states()
        assert set(states) == {"a", "b"}
        assert (states["a"].last_error, states["a"].error_count, states["a"].etag) == ("HTTP 404", 2, "v1")
        assert states["a"].last_warning is None
        assert states["b"].last_warning is None


def test_upgrading_an_empty_0001_database_starts_at_version_zero(store_url: str) -> None:
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0001") as connection:
            migrate.upgrade(connection, "0001")
        store.upgrade()
        assert store.changed_scopes(since=0) == (0, frozenset())


def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "syndication.db"
    with Store(f"sqlite:///{path}") as store:
        store.upgrade()
        assert path.is_file()
        with store._db.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar_one() >= 1000
    with sqlite3.connect(path) as raw:  # WAL is a property of the file
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_unopenable_database_is_a_readable_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        Store(f"sqlite:///{tmp_path}")  # a directory
    assert str(caught.value) == f"cannot open database sqlite:///{tmp_path}: unable to open database file"


def test_password_never_appears_in_errors() -> None:
    url = "postgresql+psycopg://syndication:s3cr3t-pw@127.0.0.1:1/nothing?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        Store(url)
    message = str(caught.value)
    assert message.startswith("cannot open database postgresql+psycopg://syndication:***@127.0.0.1:1/nothing")
    assert "s3cr3t-pw" not in message


def test_invalid_or_unsupported_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="invalid database URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="unsupported database"):
        Store("mysql://u:pw@localhost/db")


def test_tables_missing_before_upgrade(store_url: str) -> None:
    with (
        Store(store_url) as store,
        pytest.raises(StoreError, match=r"cannot list articles.*needs an upgrade"),
    ):
        store.list_articles()


def test_database_from_a_newer_version_is_refused(store: Store, store_url: str) -> None:
    engine = raw_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    finally:
        engine.dispose()
    assert store.revision() == "9999_future"
    with pytest.raises(StoreError, match="newer version"):
        store.needs_upgrade()
    with pytest.raises(StoreError, match="newer version"):
        store.upgrade()


def test_closed_store_refuses_work(store_url: str) -> None:
    store = Store(store_url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count_articles()


@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_url_selects_the_test_schema(store: Store, store_url: str) -> None:
    schema = store_url.rsplit("search_path%3D", 1)[1]
    engine = raw_engine(store_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT current_schema()").scalar() == schema
            tables = connection.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %(s)s", {"s": schema}
            ).scalars()
            assert set(tables) >= TABLES
    finally:
        engine.dispose()


def test_upgrade_0005_to_0007_gives_superseded_deliveries_their_own_status(store_url: str) -> None:
    when = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0005") as connection:
            migrate.upgrade(connection, "0005")
        engine = raw_engine(store_url)
        try:
            with engine.begin() as connection:
                stamp = {"t": when.replace(tzinfo=None) if connection.dialect.name == "sqlite" else when}
                connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO digest_issues (id, digest, scheduled_for, created, planned) "
                        "VALUES (1, 'daily', :t, :t, :t), (2, 'daily', :t2, :t, :t)"
                    ),
                    {**stamp, "t2": stamp["t"] + timedelta(days=1)},
                )
                rows = [
                    (1, "a@example.vn", "sent", None),
                    (2, "b@example.vn", "failed", "superseded by issue 2"),
                    (3, "c@example.vn", "failed", "RCPT TO: 550 5.1.1 No such user here"),
                    (4, "d@example.vn", "pending", None),
                ]
                for id, address, status, error in rows:
                    connection.execute(
                        sqlalchemy.text(
                            "INSERT INTO deliveries (id, issue_id, address, organisation, status, "
                            "message_id, attempts, window_start, window_end, last_error, created, updated) "
                            "VALUES "
                            "(:id, 1, :address, 'Chi bộ Văn phòng', :status, :mid, 1, :t, :t, :error, :t, :t)"
                        ),
                        {
                            "id": id,
                            "address": address,
                            "status": status,
                            "mid": f"<{id}@x.vn>",
                            "error": error,
                        }
                        | stamp,
                    )
                connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO issue_totals (issue_id, organisation, sent, failed, other) "
                        "VALUES (2, '', 3, 2, 0)"
                    )
                )
        finally:
            engine.dispose()

        store.upgrade()

        assert store.revision() in head_revisions()
        assert [(d.address, d.status, d.last_error) for d in store.get_deliveries(1)] == [
            ("a@example.vn", "sent", None),
            ("b@example.vn", "superseded", "superseded by issue 2"),
            ("c@example.vn", "failed", "RCPT TO: 550 5.1.1 No such user here"),
            ("d@example.vn", "pending", None),
        ]
        assert store.issue_report(1) == [("Chi bộ Văn phòng", 1, 1, 1, 1)]
        # Totals kept before the revision stay as they were.
        assert store.issue_report(2) == [(NO_ORGANISATION, 3, 2, 0, 0)]
    engine = raw_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DELETE FROM deliveries WHERE id = 4"))
        with engine.begin() as connection:
            insert = (
                "INSERT INTO deliveries (issue_id, address, status, message_id, attempts, window_start, "
                "window_end, created, updated) VALUES (1, :a, :s, :m, 0, :t, :t, :t, :t)"
            )
            sqlite = connection.dialect.name == "sqlite"
            stamp = {"t": when.replace(tzinfo=None) if sqlite else when}
            if sqlite:  # (PostgreSQL's sequence did not see the ids written above)
                new_id = connection.execute(
                    sqlalchemy.text(insert + " RETURNING id"),
                    {"a": "e@example.vn", "s": "superseded", "m": "<5@x.vn>"} | stamp,
                ).scalar_one()
                assert new_id == 5  # never a reused id: AUTOINCREMENT survived the table's rebuild
        with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(insert), {"a": "f@example.vn", "s": "bogus", "m": "<6@x.vn>"} | stamp
            )
        indexes = {i["name"] for i in sqlalchemy.inspect(engine).get_indexes("deliveries")}
        assert {"ix_deliveries_status_id", "ix_deliveries_subscriber_id"} <= indexes
    finally:
        engine.dispose()


def test_upgrade_0005_to_0008_keeps_data_and_infers_dates_and_starts(store_url: str) -> None:
    seen = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    rows = [
        # (id, source, published, first_seen): article 2 had no date of its own (0005 put in first_seen).
        (1, "a", seen - timedelta(days=3), seen),
        (2, "a", seen + timedelta(hours=1), seen + timedelta(hours=1)),
        (3, "b", seen - timedelta(hours=2), seen + timedelta(days=2)),
    ]
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0005") as connection:
            migrate.upgrade(connection, "0005")
        store.sync_sources([source(s) for s in "abc"])
        engine = raw_engine(store_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.insert(articles),
                    [
                        {
                            "id": id,
                            "identity": f"url:https://a.vn/{id}",
                            "url": f"https://a.vn/{id}",
                            "title": f"Tin {id}",
                            "title_key": f"tin {id}",
                            "published": published,
                            "updated": published,
                            "first_seen": first_seen,
                            "source_id": source_id,
                            "content_hash": str(id),
                        }
                        for id, source_id, published, first_seen in rows
                    ],
                )
                connection.execute(
                    sqlalchemy.insert(article_sources),
                    [{"article_id": id, "source_id": s} for id, s, _, _ in rows],
                )
                connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO digest_issues (id, digest, scheduled_for, created, planned) "
                        "VALUES (1, 'daily', :t, :t, :t)"
                    ),
                    {"t": seen},
                )
                connection.execute(
                    sqlalchemy.text(
                        "INSERT INTO deliveries (issue_id, address, status, message_id, attempts, "
                        "window_start, window_end, created, updated) "
                        "VALUES (1, 'a@example.org', 'sent', '<1@x>', 1, :s, :t, :t, :t)"
                    ),
                    {"s": seen - timedelta(days=1), "t": seen},
                )
        finally:
            engine.dispose()

        store.upgrade()
        assert store.revision() in head_revisions()
        stored = {a.id: a for a in store.list_articles(include_duplicates=True)}
        assert {id: a.dated for id, a in stored.items()} == {1: True, 2: False, 3: True}
        assert {id: (a.published, a.first_seen) for id, a in stored.items()} == {
            id: (published, first_seen) for id, _, published, first_seen in rows
        }
        started = {id: state.started for id, state in store.source_states().items()}
        assert started == {"a": seen, "b": seen + timedelta(days=2), "c": None}
        (delivery,) = store.get_deliveries(1)
        assert (delivery.first_window, delivery.window_end) == (False, seen)
        # The new table works.
        tag = DocumentTag(name="all", format="rss", page=1, etag='"x"')
        assert store.record_documents([tag], now=seen) == {tag: seen}

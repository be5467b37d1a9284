"""The store's database: migrations, backend settings, and errors at the edge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.pool import NullPool

from syndication.errors import StoreError
from syndication.store import Store
from syndication.store.migrate import MIGRATIONS, head_revisions
from syndication.store.schema import metadata

TABLES = {
    "sources",
    "articles",
    "article_categories",
    "article_sources",
    "page_validators",
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


def test_migrations_are_python_files_the_wheel_ships() -> None:
    # pyproject ships store/migrations/*.py and store/migrations/versions/*.py, nothing else.
    assert (MIGRATIONS / "env.py").is_file()
    scripts = sorted(p.name for p in (MIGRATIONS / "versions").iterdir() if p.suffix == ".py")
    assert scripts[0] == "0001_initial.py"


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

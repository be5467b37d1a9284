"""Shared fixtures: a database URL for each backend, and an upgraded ``Store`` on it.

``store_url`` runs a test on a real SQLite file and, when
``SYNDICATION_TEST_DATABASE_URL`` names a PostgreSQL database (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), on PostgreSQL too. Each
PostgreSQL test gets a schema of its own, created before and dropped after:
the URL handed out selects it with libpq's ``options=-csearch_path=...``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from syndication.store import Store

POSTGRES_URL_ENV = "SYNDICATION_TEST_DATABASE_URL"


def _postgres_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{secrets.token_hex(8)}"
    admin = sqlalchemy.create_engine(base, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file in ``tmp_path``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'syndication.db'}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    yield from _postgres_schema_url(base)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A ``Store`` on ``store_url``, upgraded to the newest schema; closed after the test."""
    with Store(store_url) as opened:
        opened.upgrade()
        yield opened


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema's URL, for tests that only mean something on PostgreSQL
    (several processes sharing work); skipped when ``SYNDICATION_TEST_DATABASE_URL`` is unset."""
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    yield from _postgres_schema_url(base)

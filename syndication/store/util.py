"""Small helpers shared by the query modules. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from syndication import text

CHUNK = 500
"""Most values in one ``IN (...)``: well under SQLite's and PostgreSQL's parameter limits."""

MAX_ID = 2**31 - 1
"""The largest id an ``Integer`` primary key can hold on every backend (PostgreSQL's
``integer`` is 32 bits): a larger number, from a URL or the command line, names no row."""

_T = TypeVar("_T")


def is_id(value: int) -> bool:
    """Whether ``value`` could be the id of a row (1 to ``MAX_ID``); ask the database only then:
    a larger number makes it fail (integer out of range) instead of finding nothing."""
    return 0 < value <= MAX_ID


def chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignoring_conflicts(connection: Connection, table: Table, columns: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (columns) DO NOTHING`` for the connection's backend.

    Rows that would repeat the unique key ``columns`` are skipped, even when another
    transaction inserted them concurrently; any other conflict still raises.
    """
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(columns))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(columns))


def name_order(name: str) -> tuple[str, str]:
    """Sort key for names shown to people, equal on every backend: Vietnamese letters
    next to their base letter ("Đảng" among the d), then exact text."""
    return text.search_key(name), name

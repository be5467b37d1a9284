"""The store's I/O edge: engine setup per backend, transactions, and error translation.

Every database call of the store runs inside ``Database.transaction``, which is
where SQLAlchemy and DBAPI exceptions become ``StoreError`` (once, here, with
``raise ... from``). Messages name the database by its URL as ``display_url``
renders it (the one place that does), and never include a password, given in the
URL's user part or as ``?password=``.

SQLite: WAL journal, foreign keys on, a busy timeout, ``synchronous=NORMAL``.
The ``sqlite3`` driver's own transaction handling is switched off and
SQLAlchemy emits ``BEGIN`` itself, so DDL is transactional and write
transactions start with ``BEGIN IMMEDIATE`` (a deferred transaction that reads
and then writes fails at once with "database is locked" when another writer
got in between, whatever the busy timeout).

Writes are serialised: within the process by a lock (cheaper than SQLite's busy
polling when many threads write), across processes by ``BEGIN IMMEDIATE`` on
SQLite and a transaction-level advisory lock on PostgreSQL. A save is a few
milliseconds, so this costs nothing we can measure, and it makes the
read-then-write batches of ``articles`` race-free on both backends.

No SQL about the domain here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from syndication.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 15_000
POSTGRES_WRITE_LOCK = 0x53594E44
"""Key of the advisory lock that serialises the store's write transactions on PostgreSQL."""
_WRITE_OPTION = "syndication_write"
_SUPPORTED = ("sqlite", "postgresql")
_UNDEFINED_TABLE = "42P01"


_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})
"""libpq's parameters that hold a secret: ``?password=`` also logs in, ``sslpassword`` unlocks a key."""


def display_url(url: URL | str) -> str:
    """The database URL as shown to people (messages, logs, the CLI): the password as
    ``***``, and ``password=`` and ``sslpassword=`` left out of the query. A URL that
    cannot be read is shown by its scheme only: any part of it might be the password.
    """
    if isinstance(url, str):
        text = url
        try:
            url = make_url(text)
        except (exc.ArgumentError, ValueError):
            scheme = text.partition("://")[0] if "://" in text else ""
            if re.fullmatch(r"[a-z][a-z0-9+]{0,30}", scheme):
                return f"{scheme}://… (not a valid URL)"
            return "(not a valid URL)"
    hidden = [key for key in url.query if key.lower() in _SECRET_QUERY_KEYS]
    return url.difference_update_query(hidden).render_as_string(hide_password=True)


def _secrets(url: URL) -> list[str]:
    """Every secret ``url`` carries, as given and percent-encoded, longest first."""
    values = [url.password or ""]
    for key, value in url.query.items():
        if key.lower() in _SECRET_QUERY_KEYS:
            values.extend([value] if isinstance(value, str) else value)
    found = {form for v in values if v for form in (str(v), quote(str(v), safe=""))}
    return sorted(found, key=len, reverse=True)


def _reason(error: BaseException, url: URL | None) -> str:
    original = getattr(error, "orig", None) or error
    # psycopg appends the statement's context ("LINE 2: FROM articles ^"); keep its primary message.
    primary = getattr(getattr(original, "diag", None), "message_primary", None)
    reason = " ".join(str(primary or original).split()) or type(original).__name__
    for secret in _secrets(url) if url is not None else ():
        reason = reason.replace(secret, "***")
    if getattr(original, "sqlstate", None) == _UNDEFINED_TABLE or "no such table" in reason:
        reason += " (the database needs an upgrade)"
    return reason


@contextmanager
def wrap_errors(message: str, url: URL | None = None) -> Iterator[None]:
    """Turn database errors raised inside into ``StoreError("<message>: <reason>")``.

    Only failures of the database are translated; anything else (a naive
    datetime, a misuse of SQLAlchemy) is a bug and keeps its type.
    """
    try:
        yield
    except (exc.DBAPIError, exc.TimeoutError, OSError) as error:
        raise StoreError(f"{message}: {_reason(error, url)}") from error


def _is_memory(url: URL) -> bool:
    return (url.database or "") in ("", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_engine(url: URL) -> Engine:
    options: dict[str, Any] = {}
    if _is_memory(url):
        # One connection shared by every thread; Database serialises all access to it.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif url.database and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: URL) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # psycopg prepares statements it has run five times, and PostgreSQL may then keep
        # a generic plan made while the tables were empty (a sequential scan) long after
        # they have grown. Plan each execution for its parameters instead.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()

    return engine


class Database:
    """An engine plus the rules for using it: transactions, locks, error messages."""

    def __init__(self, url: str) -> None:
        """Create the engine and open one connection to check the database answers.

        Raises:
            StoreError: the URL is invalid or the database cannot be opened.
        """
        try:
            self.url = make_url(url)
        except (exc.ArgumentError, ValueError) as error:  # ValueError: a port that is no number
            raise StoreError(f"invalid database URL {display_url(url)}") from error
        self.name = display_url(self.url)
        backend = self.url.get_backend_name()
        if backend not in _SUPPORTED:
            raise StoreError(f"unsupported database {self.name}: use sqlite or postgresql")
        self.dialect = backend
        self._write_lock = threading.Lock()
        self._memory = backend == "sqlite" and _is_memory(self.url)
        with wrap_errors(f"cannot open database {self.name}", self.url):
            try:
                if backend == "sqlite":
                    self.engine = _sqlite_engine(self.url)
                else:
                    self.engine = _postgres_engine(self.url)
            except exc.ArgumentError as error:  # e.g. a driver that is not installed
                raise StoreError(f"cannot open database {self.name}: {error}") from error
            with self.engine.connect():
                pass
        self._closed = False

    def close(self) -> None:
        """Close every pooled connection."""
        self._closed = True
        self.engine.dispose()

    @contextmanager
    def connect(self, doing: str) -> Iterator[Connection]:
        """A connection outside any transaction, errors translated (for Alembic's inspection)."""
        if self._closed:
            raise StoreError(f"cannot {doing}: the store is closed")
        with wrap_errors(f"cannot open database {self.name}", self.url):
            connection = self.engine.connect()
        with connection, wrap_errors(f"cannot {doing} in {self.name}", self.url):
            yield connection

    @contextmanager
    def transaction(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        """One transaction, committed when the block ends and rolled back if it raises.

        ``doing`` completes the error message: "cannot <doing> in <database>: <reason>".

        Raises:
            StoreError: the database failed; nothing of the transaction was kept.
        """
        lock: AbstractContextManager[Any] = self._write_lock if write or self._memory else nullcontext()
        with lock, self.connect(doing) as connection, self._begin(connection, write=write):
            yield connection

    @contextmanager
    def schema_transaction(self, doing: str) -> Iterator[Connection]:
        """A write transaction for migrations.

        On SQLite, foreign keys are off while it runs (rebuilding a referenced table
        in batch mode would otherwise delete or refuse its referencing rows, and the
        pragma cannot change inside a transaction) and checked before it commits.

        Raises:
            StoreError: the database failed, or the migration left broken references.
        """
        with self._write_lock, self.connect(doing) as connection:
            if self.dialect != "sqlite":
                with self._begin(connection, write=True):
                    yield connection
                return
            # Outside any transaction: straight to the driver, which is in autocommit mode.
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA foreign_keys = OFF")
            try:
                with self._begin(connection, write=True):
                    yield connection
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise StoreError(f"cannot {doing} in {self.name}: broken references in {broken[:5]}")
            finally:
                if not connection.invalidated:
                    driver.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _begin(self, connection: Connection, *, write: bool) -> Iterator[None]:
        if write:
            connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            if write and self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_WRITE_LOCK})
            yield

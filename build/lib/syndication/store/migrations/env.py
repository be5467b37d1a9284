"""Alembic environment of the store.

The store runs migrations itself (``Store.upgrade``), inside its own
transaction: the connection arrives in ``config.attributes["connection"]``.
There is no ``alembic.ini``; offline SQL generation (``--sql``) reads the URL
from the ``sqlalchemy.url`` option when a developer sets one.

SQLite cannot alter most of a table, so migrations are rendered in batch mode
there (copy, drop, rename); constraint names come from the naming convention
in ``schema.py`` so batch mode can find them. Write a schema change with
``op.batch_alter_table`` (a plain ``op.create_table`` is fine as it is).

A new revision is a new file in ``versions/``: ``NNNN_what.py`` with
``revision = "NNNN"`` and ``down_revision`` the previous one, stating its
tables itself (never importing ``schema.py``). Change ``schema.py`` to match;
``tests/test_store_migrations.py`` compares the two on every backend.
"""

from __future__ import annotations

from alembic import context

from syndication.store.schema import metadata

config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through syndication.store.Store.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # The store has already begun the transaction; this joins it.
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

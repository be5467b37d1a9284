"""Alembic, driven from code: no ``alembic.ini``, the scripts ship inside the package.

The migrations run on a connection the store opened, inside the store's own
write transaction (passed to ``migrations/env.py`` as
``config.attributes["connection"]``), so an upgrade is all or nothing on both
backends and two processes upgrading at once take turns.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from syndication.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> frozenset[str]:
    """The revisions the shipped migrations lead to (one, unless someone branched)."""
    return frozenset(ScriptDirectory.from_config(_config()).get_heads())


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revisions recorded in the database; empty for a database never upgraded."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def check_known(current: frozenset[str]) -> None:
    """Refuse a database written by a newer version of syndication.

    Raises:
        StoreError: a recorded revision is not among the shipped migrations.
    """
    script = ScriptDirectory.from_config(_config())
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:
        raise StoreError(
            f"the database is at revision {', '.join(unknown)}, which this version of syndication "
            "does not know: it was upgraded by a newer version"
        )


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (the newest by default) on ``connection``
    (already in a transaction).

    Raises:
        StoreError: Alembic refused (for example an unknown revision).
    """
    check_known(current_revisions(connection))
    try:
        command.upgrade(_config(connection), revision)
    except CommandError as error:
        raise StoreError(f"cannot upgrade the database: {error}") from error

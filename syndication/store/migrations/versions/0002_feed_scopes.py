"""Change tracking for published feeds: the version at which each feed scope last changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

A database that already holds articles starts at version 1, every scope with a
visible article marked changed then, so ``content_version()`` is 0 only on an
empty store and a reader asking what changed since 0 rebuilds every feed.

Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feed_scopes",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_feed_scopes"),
    )
    op.create_index("ix_feed_scopes_version", "feed_scopes", ["version"])
    # Plain SQL that both SQLite and PostgreSQL run; duplicates are hidden from feeds.
    op.execute(
        """
        INSERT INTO feed_scopes (scope, version)
        SELECT 'all', 1 WHERE EXISTS (SELECT 1 FROM articles WHERE duplicate_of IS NULL)
        UNION
        SELECT 'category:' || c.category, 1
        FROM article_categories AS c JOIN articles AS a ON a.id = c.article_id
        WHERE a.duplicate_of IS NULL
        UNION
        SELECT 'source:' || s.source_id, 1
        FROM article_sources AS s JOIN articles AS a ON a.id = s.article_id
        WHERE a.duplicate_of IS NULL
        """
    )


def downgrade() -> None:
    op.drop_index("ix_feed_scopes_version", table_name="feed_scopes")
    op.drop_table("feed_scopes")

"""What a digest window needs to bound a catch-up, and the published documents' history.

- ``articles.dated``: whether ``published`` is the publisher's own date (false when the
  store put in the time it first saw the article: no date, or one in the future);
- ``sources.started``: when a source first brought articles (its backlog arrived then);
- ``deliveries.first_window``: the message is its subscriber's first of that digest;
- ``feed_documents``: each published document's entity-tag, when its bytes last changed
  (its ``Last-Modified``), and whether the WebSub hub still has to hear of the change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Only adds. Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


_AUTOINCREMENT = {"sqlite_autoincrement": True}
"""Kept by SQLite's table rebuild of a batch: without it, ids of deleted rows come back."""


def upgrade() -> None:
    with op.batch_alter_table("articles", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("dated", sa.Boolean(), nullable=False, server_default=sa.true()))
    # Before this revision an article without a date of its own got first_seen as its date.
    op.execute("UPDATE articles SET dated = false WHERE published = first_seen")
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("started", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE sources SET started = "
        "(SELECT min(articles.first_seen) FROM articles WHERE articles.source_id = sources.id)"
    )
    with op.batch_alter_table("deliveries", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("first_window", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("digest_issues", table_kwargs=_AUTOINCREMENT) as batch:
        batch.add_column(sa.Column("catch_up", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "feed_documents",
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(200), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ping_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("name", "format", "page", name="pk_feed_documents"),
    )


def downgrade() -> None:
    op.drop_table("feed_documents")
    with op.batch_alter_table("digest_issues", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("catch_up")
    with op.batch_alter_table("deliveries", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("first_window")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("started")
    with op.batch_alter_table("articles", table_kwargs=_AUTOINCREMENT) as batch:
        batch.drop_column("dated")

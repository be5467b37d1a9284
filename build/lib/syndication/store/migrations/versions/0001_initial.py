"""Initial schema: sources, articles with their categories and sources, page validators.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Frozen: this file states the schema of revision 0001 by itself and must not
import ``schema.py``, which moves on with later revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("guid", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("title_key", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("content_html", sa.Text(), server_default="", nullable=False),
        sa.Column("author", sa.Text(), server_default="", nullable=False),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("body_key", sa.Text(), server_default="", nullable=False),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_articles"),
        sa.UniqueConstraint("identity", name="uq_articles_identity"),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_articles_source_id_sources"),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["articles.id"], name="fk_articles_duplicate_of_articles", ondelete="SET NULL"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_articles_published_id", "articles", ["published", "id"])
    op.create_index("ix_articles_title_key", "articles", ["title_key"], postgresql_using="hash")
    op.create_index("ix_articles_source_id", "articles", ["source_id"])
    op.create_table(
        "article_categories",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "category", name="pk_article_categories"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_article_categories_article_id_articles",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_article_categories_category_article_id", "article_categories", ["category", "article_id"]
    )
    op.create_table(
        "article_sources",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "source_id", name="pk_article_sources"),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name="fk_article_sources_article_id_articles", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_article_sources_source_id_sources", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_article_sources_source_id", "article_sources", ["source_id"])
    op.create_table(
        "page_validators",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("checked", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url", name="pk_page_validators"),
    )


def downgrade() -> None:
    op.drop_table("page_validators")
    op.drop_index("ix_article_sources_source_id", table_name="article_sources")
    op.drop_table("article_sources")
    op.drop_index("ix_article_categories_category_article_id", table_name="article_categories")
    op.drop_table("article_categories")
    op.drop_index("ix_articles_source_id", table_name="articles")
    op.drop_index("ix_articles_title_key", table_name="articles")
    op.drop_index("ix_articles_published_id", table_name="articles")
    op.drop_table("articles")
    op.drop_table("sources")

"""Subscribers and email digests: organisations, subscribers, digest issues, deliveries (the outbox);
an index on ``articles.first_seen`` for digest windows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Only adds: no existing row changes.

Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

SUBSCRIBER_STATUS = "status IN ('pending', 'active', 'unsubscribed', 'bounced')"
DELIVERY_STATUS = "status IN ('pending', 'sending', 'sent', 'retrying', 'failed')"


def upgrade() -> None:
    op.create_index("ix_articles_first_seen", "articles", ["first_seen"])
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_organisations"),
        sa.UniqueConstraint("name", name="uq_organisations_name"),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organisations.id"],
            name="fk_organisations_parent_id_organisations",
            ondelete="SET NULL",
        ),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("display_name", sa.Text(), server_default="", nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("categories", sa.Text(), server_default="", nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bounces", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.UniqueConstraint("address", name="uq_subscribers_address"),
        sa.UniqueConstraint("token", name="uq_subscribers_token"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_subscribers_organisation_id_organisations",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(SUBSCRIBER_STATUS, name="ck_subscribers_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_subscribers_organisation_id", "subscribers", ["organisation_id"])
    op.create_index("ix_subscribers_digest_status", "subscribers", ["digest", "status"])
    op.create_table(
        "digest_issues",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_digest_issues"),
        sa.UniqueConstraint("digest", "scheduled_for", name="uq_digest_issues_digest_scheduled_for"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(500), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("message_id", name="uq_deliveries_message_id"),
        sa.UniqueConstraint("issue_id", "address", name="uq_deliveries_issue_id_address"),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["digest_issues.id"],
            name="fk_deliveries_issue_id_digest_issues",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_deliveries_subscriber_id_subscribers",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(DELIVERY_STATUS, name="ck_deliveries_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deliveries_status_id", "deliveries", ["status", "id"])
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscriber_id", table_name="deliveries")
    op.drop_index("ix_deliveries_status_id", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("digest_issues")
    op.drop_index("ix_subscribers_digest_status", table_name="subscribers")
    op.drop_index("ix_subscribers_organisation_id", table_name="subscribers")
    op.drop_table("subscribers")
    op.drop_table("organisations")
    op.drop_index("ix_articles_first_seen", table_name="articles")

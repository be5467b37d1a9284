"""The archive of sent digests: the page behind each message's "view in browser" link.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Only adds. Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "digest_archive",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "key", name="pk_digest_archive"),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["digest_issues.id"],
            name="fk_digest_archive_issue_id_digest_issues",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("digest_archive")

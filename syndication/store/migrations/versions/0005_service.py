"""The service: leases on sources (so workers on several machines never poll one
source at once), the processes at work (``nodes``), and per-branch totals that an
issue keeps when retention deletes its deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Only adds. Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("digest_issues") as batch:
        # When the outbox was written in full; NULL while (or if a crash stopped) planning.
        batch.add_column(sa.Column("planned", sa.DateTime(timezone=True), nullable=True))
    # Issues made before this revision were planned in the run that made them.
    op.execute("UPDATE digest_issues SET planned = created")
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
    op.create_table(
        "nodes",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_nodes"),
    )
    op.create_table(
        "issue_totals",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("other", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "organisation", name="pk_issue_totals"),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["digest_issues.id"],
            name="fk_issue_totals_issue_id_digest_issues",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("issue_totals")
    op.drop_table("nodes")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("lease_owner")
        batch.drop_column("lease_until")
    with op.batch_alter_table("digest_issues") as batch:
        batch.drop_column("planned")

"""Consent: the public form's opt-in request beside a subscriber's status, the fields a
person chose themselves, and subscribe limits kept in the store (``rate_hits``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

Adds three nullable columns to ``subscribers`` and the table ``rate_hits``. Existing rows:

- A pending subscriber was sent a confirmation when its status last changed: that is
  when its request was made, so its link keeps working until the request expires.
- A pending subscriber that was confirmed before can only have come back from an
  unsubscribe through the public form (or, rarely, been moved back to pending by the
  directory). Before this revision the form made such an address pending, and the next
  directory import made it active without the person confirming. It becomes
  ``unsubscribed`` again, with its request open: the person's confirmation, and only
  that, makes it active.

Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("opt_in_requested", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("categories_chosen", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("digest_chosen", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE subscribers SET opt_in_requested = status_changed WHERE status = 'pending'")
    op.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE status = 'pending' AND confirmed IS NOT NULL"
    )
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rate_hits"),
    )
    op.create_index("ix_rate_hits_key_at", "rate_hits", ["key", "at"])
    op.create_index("ix_rate_hits_at", "rate_hits", ["at"])


def downgrade() -> None:
    op.drop_index("ix_rate_hits_at", table_name="rate_hits")
    op.drop_index("ix_rate_hits_key_at", table_name="rate_hits")
    op.drop_table("rate_hits")
    with op.batch_alter_table("subscribers", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("digest_chosen")
        batch.drop_column("categories_chosen")
        batch.drop_column("opt_in_requested")

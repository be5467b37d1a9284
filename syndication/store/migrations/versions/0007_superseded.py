"""Superseded deliveries: a status of their own, not "failed".

A delivery that a later issue replaced (it carries the same articles) was marked
failed with ``last_error = "superseded by issue N"``, and reports counted it as a
failure. It gets the status ``superseded``, rows already marked that way are
moved to it, and the totals an issue keeps when retention deletes its deliveries
(``issue_totals``) count it apart. Totals kept before this revision stay as they
were (their superseded rows are among the failed: they can no longer be told apart).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

OLD_STATUS = "status IN ('pending', 'sending', 'sent', 'retrying', 'failed')"
NEW_STATUS = "status IN ('pending', 'sending', 'sent', 'retrying', 'failed', 'superseded')"
# What ``supersede`` wrote as the reason before this revision.
SUPERSEDED = "status = 'failed' AND last_error LIKE 'superseded by issue %'"


def _status_check(condition: str) -> None:
    # SQLite rebuilds the table (batch mode): its ids must still never be reused.
    with op.batch_alter_table("deliveries", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint("ck_deliveries_status", condition)


def upgrade() -> None:
    _status_check(NEW_STATUS)
    op.execute(f"UPDATE deliveries SET status = 'superseded' WHERE {SUPERSEDED}")
    with op.batch_alter_table("issue_totals") as batch:
        batch.add_column(sa.Column("superseded", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("issue_totals") as batch:
        batch.drop_column("superseded")
    op.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'superseded'")
    _status_check(OLD_STATUS)

"""Sources keep the warnings of their last successful poll (a legacy encoding converted, a
wrong charset), so that ``syndication sources`` shows them after the poll is over.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Only adds. Frozen: this file states its tables by itself and must not import ``schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        # One warning a line; NULL when the last poll that read the source had none.
        batch.add_column(sa.Column("last_warning", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("last_warning")

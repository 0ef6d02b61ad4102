"""The parked messages' keys in a partial index: each relay round leaves those keys out, and without
the index that sub-query read every undelivered row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:29:42.114368
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PARKED = sa.text("delivered_at IS NULL AND attempts >= 5")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_parked", ["key"], unique=False, sqlite_where=PARKED, postgresql_where=PARKED
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_parked", sqlite_where=PARKED, postgresql_where=PARKED)

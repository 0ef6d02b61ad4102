"""A delivered message leaves the outbox: the relay deletes it instead of stamping ``delivered_at``.

The delivered rows are deleted, ``delivered_at`` goes, and with it the partial indexes on
undelivered rows: every row now waits. What a relay round needs is the primary key (in seq order),
``ix_outbox_destination`` (destination, seq) and the parked keys (``attempts >= 5``). On SQLite the
table becomes AUTOINCREMENT, so a seq is never handed out again once its row is deleted (a plain
rowid table reuses the largest deleted one); the highest seq so far is carried over.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 11:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNDELIVERED = sa.text("delivered_at IS NULL")
OLD_PARKED = sa.text("delivered_at IS NULL AND attempts >= 5")
PARKED = sa.text("attempts >= 5")


def upgrade() -> None:
    bind = op.get_bind()
    highest = bind.execute(sa.text("SELECT MAX(seq) FROM outbox")).scalar()
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_parked", sqlite_where=OLD_PARKED, postgresql_where=OLD_PARKED)
        batch_op.drop_index("ix_outbox_undelivered_destination")
        batch_op.drop_index("ix_outbox_undelivered")
    op.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL")
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table(
        "outbox", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("delivered_at")
        batch_op.create_index("ix_outbox_destination", ["destination", "seq"], unique=False)
        batch_op.create_index(
            "ix_outbox_parked", ["key"], unique=False, sqlite_where=PARKED, postgresql_where=PARKED
        )
    if sqlite and highest is not None:
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', :seq)"), {"seq": highest}
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "outbox", recreate="always" if sqlite else "auto", table_kwargs={"sqlite_autoincrement": False}
    ) as batch_op:
        batch_op.drop_index("ix_outbox_parked", sqlite_where=PARKED, postgresql_where=PARKED)
        batch_op.drop_index("ix_outbox_destination")
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index(
            "ix_outbox_undelivered", ["seq"], sqlite_where=UNDELIVERED, postgresql_where=UNDELIVERED
        )
        batch_op.create_index(
            "ix_outbox_undelivered_destination",
            ["destination"],
            sqlite_where=UNDELIVERED,
            postgresql_where=UNDELIVERED,
        )
        batch_op.create_index(
            "ix_outbox_parked", ["key"], unique=False, sqlite_where=OLD_PARKED, postgresql_where=OLD_PARKED
        )

"""Each municipality's register version (reg_versions), and reg_households AUTOINCREMENT on SQLite
(ids reserved through sqlite_sequence), for the counters' planned groups on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 01:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reg_versions",
        sa.Column("lg_code", sa.String(length=6), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lg_code", name=op.f("pk_reg_versions")),
    )
    _households_autoincrement(True)


def downgrade() -> None:
    _households_autoincrement(False)
    op.drop_table("reg_versions")


def _households_autoincrement(on: bool) -> None:
    """SQLite adds AUTOINCREMENT only to a new table: reg_households is copied into one (the
    environment turns foreign keys off meanwhile and checks them all before the commit)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "reg_households", recreate="always", table_kwargs={"sqlite_autoincrement": on}
    ) as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), autoincrement=True)

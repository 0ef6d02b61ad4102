"""Audit tables: the entries of every chain, one head row per chain, and append-only triggers.

The triggers guard against accidents and casual edits (an ``UPDATE`` typed into a console, a buggy
job); they are no defence against someone who can drop them. The hash chain is what detects that.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DDL, BigInteger, DateTime, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from jlis.audit.chain import GENESIS
from jlis.db import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntryRow(Base):
    __tablename__ = "audit_entries"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    # Stored in UTC (SQLite keeps no offset); the hash covers the UTC ISO form.
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    # The resident's 住民票コード (or other subject id), for disclosure requests.
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # One index serves both a disclosure within a chain (subject, chain) and across all chains
    # (subject), already in seq order; every extra index would be paid on each append.
    __table_args__ = (Index("ix_audit_entries_subject", "subject", "chain", "seq"),)


class AuditChainHead(Base):
    """Where each chain ends (last entry) and begins (anchor: the last entry removed by retention)."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    anchor_seq: Mapped[int] = mapped_column(BigId, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


def append_only_ddl(
    table: str, name: str, *, purge_setting: str, permit: str, key: str
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(create, drop) statements per dialect that make ``table`` append-only: UPDATE is always
    refused, DELETE only by a purge — on PostgreSQL a transaction that set ``purge_setting`` to 'on'
    (``set_config(..., true)``), on SQLite a row (``key``, up_to_seq) in the ``permit`` table that the
    purge writes and removes in its own transaction. ``name`` prefixes the function and triggers.
    Used by the audit log and by the 情報提供等記録 (``jlis.linkage.exchange.tables``).

    The statements contain no '%' and no ':' so they pass unchanged through DDL(), text() and
    Alembic's op.execute()."""
    create = {
        "postgresql": [
            f"""CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('{purge_setting}', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = '{table} is append-only, ' || TG_OP || ' refused';
END
$$""",
            # Statement level: checked once per statement, so a purge of a million rows costs one
            # call. Row triggers do not fire on TRUNCATE; refuse TRUNCATE by privileges (docs/audit.md).
            f"""CREATE TRIGGER {name}_append_only
BEFORE UPDATE OR DELETE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION {name}_append_only()""",
        ],
        "sqlite": [
            # SQLite has no session variables: the permit row is written, used and removed in the
            # purge's own transaction, so no other connection ever sees it.
            f"""CREATE TABLE IF NOT EXISTS {permit} (
    {key} VARCHAR(64) NOT NULL PRIMARY KEY,
    up_to_seq INTEGER NOT NULL
)""",
            f"""CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {table}
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only, UPDATE refused');
END""",
            f"""CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {table}
WHEN NOT EXISTS (SELECT 1 FROM {permit} WHERE {key} = OLD.{key} AND OLD.seq <= up_to_seq)
BEGIN
    SELECT RAISE(ABORT, '{table} is append-only, DELETE refused');
END""",
        ],
    }
    drop = {
        "postgresql": [
            f"DROP TRIGGER IF EXISTS {name}_append_only ON {table}",
            f"DROP FUNCTION IF EXISTS {name}_append_only()",
        ],
        "sqlite": [
            f"DROP TRIGGER IF EXISTS {name}_no_delete",
            f"DROP TRIGGER IF EXISTS {name}_no_update",
            f"DROP TABLE IF EXISTS {permit}",
        ],
    }
    return create, drop


# APPEND_ONLY_DROP_DDL is for a migration's downgrade.
APPEND_ONLY_DDL, APPEND_ONLY_DROP_DDL = append_only_ddl(
    "audit_entries",
    "audit_entries",
    purge_setting="jlis.audit_purge",
    permit="audit_purge_permit",
    key="chain",
)

for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(AuditEntryRow.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect))

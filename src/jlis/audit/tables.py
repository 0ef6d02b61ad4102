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


# The statements contain no '%' and no ':' so they pass unchanged through DDL(), text() and
# Alembic's op.execute().
APPEND_ONLY_DDL: dict[str, list[str]] = {
    "postgresql": [
        # The purge opens the gate for its own transaction only: set_config('jlis.audit_purge', 'on', true).
        """CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('jlis.audit_purge', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'restrict_violation',
        MESSAGE = 'audit_entries is append-only, ' || TG_OP || ' refused';
END
$$""",
        # Statement level: checked once per statement, so a purge of a million rows costs one call.
        # Row triggers do not fire on TRUNCATE; refuse TRUNCATE by privileges (see docs/audit.md).
        """CREATE TRIGGER audit_entries_append_only
BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()""",
    ],
    "sqlite": [
        # SQLite has no session variables. The purge writes a permit row (chain, up_to_seq), deletes,
        # and removes the row in the same transaction, so no other connection ever sees it.
        """CREATE TABLE IF NOT EXISTS audit_purge_permit (
    chain VARCHAR(64) NOT NULL PRIMARY KEY,
    up_to_seq INTEGER NOT NULL
)""",
        """CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit_entries is append-only, UPDATE refused');
END""",
        """CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permit WHERE chain = OLD.chain AND OLD.seq <= up_to_seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_entries is append-only, DELETE refused');
END""",
    ],
}

# For a migration's downgrade.
APPEND_ONLY_DROP_DDL: dict[str, list[str]] = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries",
        "DROP FUNCTION IF EXISTS audit_entries_append_only()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS audit_entries_no_delete",
        "DROP TRIGGER IF EXISTS audit_entries_no_update",
        "DROP TABLE IF EXISTS audit_purge_permit",
    ],
}

for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(AuditEntryRow.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect))

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

MAX_ATTEMPTS = 5  # a message failing this often is parked rather than retried for ever
# Parked: failed MAX_ATTEMPTS times. The relay's queries spell the condition as this literal text,
# so that SQLite (which cannot see through a bound parameter) uses the partial index below.
PARKED = f"attempts >= {MAX_ATTEMPTS}"


class OutboxRow(Base):
    """A message waiting for delivery. The relay deletes it once delivered (the receiving node
    keeps its record: a history row under the message's id, an inbox row), so the outbox holds
    only what waits, however long the system runs, and no copy of a resident's data outlives
    its delivery here."""

    __tablename__ = "outbox"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        # What waits for a destination after a given message (the relay's forwards' order check).
        Index("ix_outbox_destination", "destination", "seq"),
        # The parked messages' keys, which every relay round leaves out: without it that
        # sub-query read every waiting row (each round slower the longer the queue).
        Index("ix_outbox_parked", "key", sqlite_where=text(PARKED), postgresql_where=text(PARKED)),
        # A seq is never handed out again once its row is deleted (a plain SQLite rowid table
        # reuses the largest deleted one): the seq orders messages for good.
        {"sqlite_autoincrement": True},
    )


class InboxRow(Base):
    """What a node has already applied: the key of idempotence."""

    __tablename__ = "inbox"
    node: Mapped[str] = mapped_column(String(32), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

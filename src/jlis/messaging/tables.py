from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")

MAX_ATTEMPTS = 5  # a message failing this often is parked rather than retried for ever
# Parked: undelivered and failed MAX_ATTEMPTS times. The relay's queries spell the condition as
# this literal text, so that SQLite (which cannot see through a bound parameter) uses the partial
# index below.
PARKED = f"delivered_at IS NULL AND attempts >= {MAX_ATTEMPTS}"


class OutboxRow(Base):
    __tablename__ = "outbox"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        # Only undelivered rows are indexed, so finding work stays cheap however long the outbox grows.
        Index(
            "ix_outbox_undelivered",
            "seq",
            sqlite_where=text("delivered_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL"),
        ),
        Index(
            "ix_outbox_undelivered_destination",
            "destination",
            sqlite_where=text("delivered_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL"),
        ),
        # The parked messages' keys, which every relay round leaves out: without it that
        # sub-query read every undelivered row (each round slower the longer the queue).
        Index("ix_outbox_parked", "key", sqlite_where=text(PARKED), postgresql_where=text(PARKED)),
    )


class InboxRow(Base):
    """What a node has already applied: the key of idempotence."""

    __tablename__ = "inbox"
    node: Mapped[str] = mapped_column(String(32), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

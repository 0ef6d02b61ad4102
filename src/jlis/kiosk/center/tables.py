"""Tables of jlis.kiosk.center: the kiosks registered with the center, the issuance log (what was
asked and what came of it — never the PDF, never personal data), and the center's working state
shared by every worker process: the sessions of authenticated cards and their quotes, payments
and receipts (never the session token itself: its SHA-256)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class KioskRow(Base):
    """A kiosk (a multifunction copier in a store) allowed to call the center, with the SHA-256 of
    its bearer token (the token itself is shown once, when the kiosk is registered)."""

    __tablename__ = "kiosk_center_kiosks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CenterLogRow(Base):
    """One request at the center, issued or refused. ``charged`` is the fee taken (0 on a refusal)."""

    __tablename__ = "kiosk_center_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kiosk_id: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(8))  # issued | refused
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    server: Mapped[str | None] = mapped_column(String(8), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    copies: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fee: Mapped[int | None] = mapped_column(Integer, nullable=True)
    charged: Mapped[int] = mapped_column(Integer)
    certificate_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    document_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signer_serial: Mapped[str | None] = mapped_column(String(40), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (
        Index("ix_kiosk_center_log_finished", "finished_at"),
        Index("ix_kiosk_center_log_request", "request_id"),
    )


QUOTED = "quoted"  # accepted with its fee, not paid
PAID = "paid"  # paid (held): the receipt may be used once to issue
USED = "used"  # the receipt was used (issued or refused; a refusal charged nothing)


class CenterSessionRow(Base):
    """An authenticated card at a kiosk (:class:`jlis.kiosk.center.models.CenterSession`): the
    kiosk holds the token, the center keeps its SHA-256, the residence and the certificate it
    authenticated (CA generation and serial: what the holder look-up is repeated with)."""

    __tablename__ = "kiosk_center_sessions"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kiosk_id: Mapped[str] = mapped_column(String(32))
    lg_code: Mapped[str] = mapped_column(String(6))
    municipality: Mapped[str] = mapped_column(String(100))
    cert_generation: Mapped[int] = mapped_column(Integer)
    cert_serial: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_kiosk_center_sessions_expires", "expires_at"),)


class CenterQuoteRow(Base):
    """A request the center accepted (:class:`~jlis.kiosk.center.models.Quote`) and what became of
    its payment: ``quoted`` → ``paid`` (the :class:`~jlis.kiosk.center.models.Receipt`: amount and
    time) → ``used``. Each step is a conditional UPDATE on the state, so of two processes racing
    for one step exactly one succeeds."""

    __tablename__ = "kiosk_center_quotes"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))  # the session's
    kiosk_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    options: Mapped[str] = mapped_column(Text)  # IssueOptions as JSON
    copies: Mapped[int] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(Integer)
    lg_code: Mapped[str] = mapped_column(String(6))
    server: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(8))
    paid_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (
        CheckConstraint("state IN ('quoted', 'paid', 'used')", name="state_known"),
        Index("ix_kiosk_center_quotes_token", "token_sha256"),
        Index("ix_kiosk_center_quotes_expires", "expires_at"),
    )

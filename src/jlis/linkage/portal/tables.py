"""Tables of jlis.linkage.portal (declared on jlis.db.Base).

The portal is a linkage member (``myna-portal``): it knows a person by **its own** 機関別符号 (the
``portal_code`` columns) and by the authentication certificate they sign in with (CA generation and
serial, which carry no personal data). No table here holds a 個人番号 or a 住民票コード.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

# Move-out request states.
SUBMITTED = "submitted"  # 届出済 (waiting for the municipality)
ACCEPTED = "accepted"  # 受理 (転出 recorded, 転出証明書情報 sent to the destination)
REJECTED = "rejected"  # 不受理
WITHDRAWN = "withdrawn"  # 取下げ


class PortalSessionRow(Base):
    """A signed-in card holder. The token is stored only as its SHA-256."""

    __tablename__ = "portal_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    cert_generation: Mapped[int] = mapped_column(Integer)
    cert_serial: Mapped[str] = mapped_column(String(40))
    portal_code: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_portal_sessions_expires", "expires_at"),)


class PortalNoticeRow(Base):
    """お知らせ: a message a linkage member posted to one person (addressed by the member's own code,
    translated by the hub into the portal's)."""

    __tablename__ = "portal_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    portal_code: Mapped[str] = mapped_column(String(128))
    sender_id: Mapped[str] = mapped_column(String(64))
    sender_name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    posted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (Index("ix_portal_notices_code", "portal_code", "posted_at"),)


class PortalMoveOutRow(Base):
    """An online 転出届 (引越しワンストップ) filed by a card holder, waiting for (or decided by) the
    municipality of their 住民票. The municipality finds the person through J-LIS from the certificate
    the holder signed in with (jlis.jpki.holders), never from this row."""

    __tablename__ = "portal_move_outs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_no: Mapped[str] = mapped_column(String(32), unique=True)
    portal_code: Mapped[str] = mapped_column(String(128))
    cert_generation: Mapped[int] = mapped_column(Integer)
    cert_serial: Mapped[str] = mapped_column(String(40))
    lg_code: Mapped[str] = mapped_column(String(6))  # the municipality the request goes to
    destination: Mapped[str] = mapped_column(String(200))
    destination_lg_code: Mapped[str] = mapped_column(String(6))
    planned_date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    filed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    certificate_no: Mapped[str | None] = mapped_column(String(40), nullable=True)  # 転出証明書情報
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # of a rejection
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'accepted', 'rejected', 'withdrawn')", name="move_out_status_known"
        ),
        Index("ix_portal_move_outs_lg_status", "lg_code", "status"),
        Index("ix_portal_move_outs_code", "portal_code"),
    )


class PortalConsentRow(Base):
    """A consent to the provision of the latest 基本4情報 to a 署名検証者 (本人同意の取得支援, facts
    §3.6), signed on the holder's card with the signing key and kept for the verifier to collect."""

    __tablename__ = "portal_consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    portal_code: Mapped[str] = mapped_column(String(128))
    verifier_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(120))
    certificate_serial: Mapped[str] = mapped_column(String(40))  # the signing certificate named
    nonce: Mapped[str] = mapped_column(String(64))
    document: Mapped[bytes] = mapped_column(LargeBinary)  # CMS SignedData, content attached
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("nonce"),
        Index("ix_portal_consents_code", "portal_code"),
        Index("ix_portal_consents_verifier", "verifier_id"),
    )

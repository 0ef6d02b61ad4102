"""Tables of the card management system (マイナンバーカード管理システム).

An application (申請書ID) becomes at most one card; a card's life is the state machine of
``jlis.card.lifecycle`` and every transition leaves a row in ``card_events``. The chip itself (keys,
files, PIN counters) is stored apart, encrypted, in ``card_chips``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class CardApplicationRow(Base):
    """交付申請: by post, online or at the counter, checked against the 住民票."""

    __tablename__ = "card_applications"
    id: Mapped[str] = mapped_column(String(23), primary_key=True)  # 申請書ID
    resident_code: Mapped[str] = mapped_column(String(11))
    lg_code: Mapped[str] = mapped_column(String(6))
    channel: Mapped[str] = mapped_column(String(16))  # post / online / counter
    express_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)  # 特急発行 case
    reissue_of: Mapped[str | None] = mapped_column(String(32), nullable=True)  # card id replaced
    reissue_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fee_yen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # received / accepted / rejected / in_production / done
    rejection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (Index("ix_card_applications_resident", "resident_code"),)


class CardRow(Base):
    __tablename__ = "card_cards"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # card id (also the chip's EF 0001 id)
    application_id: Mapped[str] = mapped_column(ForeignKey("card_applications.id"))
    resident_code: Mapped[str] = mapped_column(String(11))
    lg_code: Mapped[str] = mapped_column(String(6))  # the municipality that holds and delivers it
    state: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(24))  # jlis.jpki.profile.Algorithm of the chip
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    express: Mapped[bool] = mapped_column(Boolean, default=False)
    target_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # 特急発行: one week
    manufactured_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    notice_sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)  # 交付通知書
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    void_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    security_code: Mapped[str | None] = mapped_column(String(4), nullable=True)  # printed on the face
    endorsements: Mapped[list[Any]] = mapped_column(JSON, default=list)  # 追記欄
    __table_args__ = (
        UniqueConstraint("application_id"),
        Index("ix_card_cards_resident", "resident_code"),
        Index("ix_card_cards_state", "lg_code", "state"),
    )


class CardEventRow(Base):
    """One transition of a card's state machine (or an event that leaves the state, e.g. a PIN reset)."""

    __tablename__ = "card_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_id: Mapped[str] = mapped_column(ForeignKey("card_cards.id"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str | None] = mapped_column(String(120), nullable=True)  # e.g. identity:<message id>
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    __table_args__ = (Index("ix_card_events_card", "card_id", "at"),)


class ChipRow(Base):
    """The virtual chip of a card (or of a phone key store linked to one), encrypted at rest with
    the chip-storage key of the key directory (AES-GCM, the card id as associated data)."""

    __tablename__ = "card_chips"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # card id, or "<card id>-phone"
    card_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # card / phone
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_card_chips_card", "card_id"),)


class ChipPoolRow(Base):
    """Pre-manufactured blank chips (keys generated, nothing personal written) waiting for a card:
    key generation is the slow part of production, so a pool filled ahead keeps delivery fast."""

    __tablename__ = "card_chip_pool"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    algorithm: Mapped[str] = mapped_column(String(24))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

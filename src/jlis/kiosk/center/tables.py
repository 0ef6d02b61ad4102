"""Tables of jlis.kiosk.center: the kiosks registered with the center, and the issuance log (what
was asked and what came of it — never the PDF, never personal data)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, String
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

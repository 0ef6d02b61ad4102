"""Tables of jlis.lgwan (declared on jlis.db.Base): the organisation CA (LGPKI 組織認証局) and the
職責 certificates it issued to municipalities. Private keys are never stored here: ``key_ref`` points
into the key store (``jlis.jpki.keystore``: encrypted files or a PKCS#11 token)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

GOOD = "good"
REVOKED = "revoked"


class OrganisationCaRow(Base):
    """One generation of the organisation CA (a self-signed root). The newest active one issues."""

    __tablename__ = "lgwan_ca_generations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    algorithm: Mapped[str] = mapped_column(String(24))  # jlis.jpki.profile.Algorithm value
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    key_ref: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class RoleCertificateRow(Base):
    """A 職責証明書: the certificate of an office-holder (e.g. 千代田区長) of one municipality, whose
    key signs that municipality's official documents (certificate PDFs)."""

    __tablename__ = "lgwan_role_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_generation_id: Mapped[int] = mapped_column(ForeignKey("lgwan_ca_generations.id"))
    serial: Mapped[str] = mapped_column(String(40))  # lower-case hex, no leading zeros
    lg_code: Mapped[str] = mapped_column(String(6))
    title: Mapped[str] = mapped_column(String(64))  # 職責名, e.g. 東京都千代田区長
    key_ref: Mapped[str] = mapped_column(String(200))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(8))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    __table_args__ = (
        UniqueConstraint("ca_generation_id", "serial"),
        CheckConstraint("status IN ('good', 'revoked')", name="status_known"),
        Index("ix_lgwan_role_certificates_lg", "lg_code", "status"),
    )

"""Tables of jlis.kiosk.pdf (declared on jlis.db.Base): the register of issued certificate PDFs.

No personal data: the register keeps what public verification answers (number, kind, municipality,
issue date, status, the SHA-256 of the signed PDF) and what ties a document to its request (the
request id) and its signer (the 職責証明書 serial). The verification code printed on the document is
kept only as a SHA-256 hash. The PDF itself is not kept (the kiosk prints it and deletes it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

VALID = "valid"
REVOKED = "revoked"


class IssuedDocumentRow(Base):
    __tablename__ = "kiosk_pdf_documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    certificate_number: Mapped[str] = mapped_column(String(32), unique=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    kind: Mapped[str] = mapped_column(String(24))  # jlis.kiosk.content.CertificateKind value
    request_id: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the printed verification code
    sha256: Mapped[str] = mapped_column(String(64))  # of the signed PDF
    size: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer)
    signer_serial: Mapped[str] = mapped_column(String(40))  # the 職責証明書 (jlis.lgwan)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(8))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    __table_args__ = (
        CheckConstraint("status IN ('valid', 'revoked')", name="status_known"),
        Index("ix_kiosk_pdf_documents_sha256", "sha256"),
        Index("ix_kiosk_pdf_documents_request", "request_id"),
    )

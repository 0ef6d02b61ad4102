"""Tables of the public certification service (公的個人認証サービス).

The CA keeps what a real CA keeps: its own generations, every certificate it issued (with the link to
the 住民票コード that J-LIS uses to revoke on a change of 基本4情報), revocations, the registered
verifiers with their agreements, the log of every status query, and consents for 基本4情報 provision.
Serial numbers are stored as lower-case hex text: they are up to 20 octets, beyond any SQL integer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

# CA kinds: the two separate single-tier hierarchies of facts §3.1.
SIGN = "sign"  # 署名用 CA
AUTH = "auth"  # 利用者証明用 CA
# Where the certificate's key lives.
CARD = "card"
PHONE = "phone"  # スマホ用電子証明書 (facts §3.7)
# Certificate status.
GOOD = "good"
HOLD = "hold"  # 一時保留 (certificateHold on the CRL, "revoked" with reason certificateHold in OCSP)
REVOKED = "revoked"


class CaGenerationRow(Base):
    """One generation of one CA: same DN as the others of its kind, its own key (facts §3.1)."""

    __tablename__ = "jpki_ca_generations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_kind: Mapped[str] = mapped_column(String(8))
    generation: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(24))  # jlis.jpki.profile.Algorithm value
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    # Where the private key is: "file:<name>" (encrypted PKCS#8 under the key directory) or
    # "pkcs11:<token label>/<key label>". Never the key itself.
    key_ref: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    active: Mapped[bool] = mapped_column(Boolean)  # the generation that issues new certificates
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)  # on the ARL
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    __table_args__ = (
        UniqueConstraint("ca_kind", "generation"),
        CheckConstraint("ca_kind IN ('sign', 'auth')", name="ca_kind_known"),
    )


class OcspResponderRow(Base):
    """The delegated OCSP responder certificate of one CA generation (RFC 6960 §4.2.2.2)."""

    __tablename__ = "jpki_ocsp_responders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_generation_id: Mapped[int] = mapped_column(ForeignKey("jpki_ca_generations.id"))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    key_ref: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_jpki_ocsp_responders_generation", "ca_generation_id"),)


class CertificateRow(Base):
    """Every end-entity certificate issued. ``lg_code`` is the municipality of the CRL partition
    (the holder's at issue); ``resident_code`` links the certificate to the national change stream."""

    __tablename__ = "jpki_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_kind: Mapped[str] = mapped_column(String(8))
    ca_generation_id: Mapped[int] = mapped_column(ForeignKey("jpki_ca_generations.id"))
    serial: Mapped[str] = mapped_column(String(40))  # lower-case hex, no leading zeros
    holder: Mapped[str] = mapped_column(String(8))  # CARD or PHONE
    card_id: Mapped[str] = mapped_column(String(32))  # the card (or, for PHONE, the card it is linked to)
    resident_code: Mapped[str] = mapped_column(String(11))
    lg_code: Mapped[str] = mapped_column(String(6))
    subject_cn: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(8))  # GOOD, HOLD or REVOKED
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # RFC 5280 CRLReason name (x509.ReasonFlags value), e.g. "affiliationChanged", "certificateHold".
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # What caused the revocation (e.g. "identity:<message id>", "hotline", "holder", "card:<event>"):
    # a repeated event finds the certificate already revoked and changes nothing.
    revocation_cause: Mapped[str | None] = mapped_column(String(120), nullable=True)
    __table_args__ = (
        UniqueConstraint("ca_generation_id", "serial"),
        CheckConstraint("ca_kind IN ('sign', 'auth')", name="ca_kind_known"),
        CheckConstraint("holder IN ('card', 'phone')", name="holder_known"),
        CheckConstraint("status IN ('good', 'hold', 'revoked')", name="status_known"),
        Index("ix_jpki_certificates_resident", "resident_code"),
        Index("ix_jpki_certificates_card", "card_id"),
        Index("ix_jpki_certificates_crl", "ca_generation_id", "status", "lg_code"),
    )


class VerifierRow(Base):
    """A registered 署名検証者 and/or 利用者証明検証者 (facts §3.5) with its agreement record.
    ``principal_id`` is its API credential (an auth principal of kind ``verifier``)."""

    __tablename__ = "jpki_verifiers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    signature_verifier: Mapped[bool] = mapped_column(Boolean)  # 署名検証者 (公的個人認証法 §17)
    user_verifier: Mapped[bool] = mapped_column(Boolean)  # 利用者証明検証者 (§36)
    basis: Mapped[str] = mapped_column(String(200))  # e.g. 主務大臣認定事業者, 地方公共団体
    agreement_no: Mapped[str] = mapped_column(String(64))
    agreement_date: Mapped[dt.date] = mapped_column(Date)
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("auth_principals.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class StatusQueryRow(Base):
    """Every revocation-status query (OCSP or the latest-基本4情報 service): who asked, why, and
    what they were told. Personal data is never stored here: only issuer, serial and status."""

    __tablename__ = "jpki_status_queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    verifier_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: refused unknown
    purpose: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(16))  # "ocsp", "crl", "basic4"
    ca_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(40), nullable=True)
    result: Mapped[str] = mapped_column(String(32))  # good / revoked / unknown / refused:<rule>
    __table_args__ = (Index("ix_jpki_status_queries_verifier_at", "verifier_id", "at"),)


class ConsentRow(Base):
    """A holder's consent, signed with their signing certificate, to give one verifier their latest
    基本4情報 (facts §3.6). ``document`` is the CMS SignedData as received."""

    __tablename__ = "jpki_consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    verifier_id: Mapped[str] = mapped_column(ForeignKey("jpki_verifiers.id"))
    certificate_id: Mapped[int] = mapped_column(ForeignKey("jpki_certificates.id"))
    document: Mapped[bytes] = mapped_column(LargeBinary)
    purpose: Mapped[str] = mapped_column(Text)
    valid_until: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (Index("ix_jpki_consents_verifier", "verifier_id"),)


class LoginNonceRow(Base):
    """The nonce of each card-login challenge once answered (jlis.jpki.rp.server.NonceLedger): a
    second use is a replay. Shared by every worker process; rows are purged after they expire."""

    __tablename__ = "jpki_login_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex of the 32-byte nonce
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_jpki_login_nonces_expires", "expires_at"),)

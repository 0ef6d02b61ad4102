"""Tables of jlis.kiosk.issuer (declared on jlis.db.Base): the municipal data a certificate needs
that the register lacks (印鑑登録, 住民税 assessments, a minimal 戸籍, 本籍地利用登録, DV 支援措置),
and the issuer's own log of issued contents. Every row carries the ``lg_code`` of the municipality
that keeps it; only ``jlis.kiosk.issuer`` reads or writes these tables."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class SealRegistrationRow(Base):
    """印鑑登録原票: one registered seal impression. ``registration_no`` is the 登録番号, printed on
    the 印鑑登録証 (the card) and on every 印鑑登録証明書."""

    __tablename__ = "kiosk_seal_registrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    registration_no: Mapped[str] = mapped_column(String(16))
    resident_code: Mapped[str] = mapped_column(String(11))
    impression_png: Mapped[bytes] = mapped_column(LargeBinary)
    impression_sha256: Mapped[str] = mapped_column(String(64))
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    registered_on: Mapped[dt.date] = mapped_column(Date)
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12))  # active | abolished
    abolished_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    abolish_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    abolished_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        UniqueConstraint("lg_code", "registration_no"),
        Index("ix_kiosk_seal_resident", "lg_code", "resident_code"),
    )


class TaxAssessmentRow(Base):
    """個人住民税の賦課: one resident's assessment for one 年度 by the municipality of 1 January."""

    __tablename__ = "kiosk_tax_assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    fiscal_year: Mapped[int] = mapped_column(Integer)  # 年度 (the income is of the year before)
    resident_code: Mapped[str] = mapped_column(String(11))
    address_on_jan1: Mapped[str] = mapped_column(String(200))
    salary_income: Mapped[int] = mapped_column(Integer)  # 給与収入
    salary_deduction: Mapped[int] = mapped_column(Integer)  # 給与所得控除
    other_income: Mapped[int] = mapped_column(Integer)  # その他の所得 (年金等)
    total_income: Mapped[int] = mapped_column(Integer)  # 合計所得金額
    deductions: Mapped[int] = mapped_column(Integer)  # 所得控除額合計
    dependents: Mapped[int] = mapped_column(Integer)
    taxable_income: Mapped[int] = mapped_column(Integer)  # 課税標準額
    municipal_tax: Mapped[int] = mapped_column(Integer)  # 市区町村民税 (所得割 + 均等割)
    prefectural_tax: Mapped[int] = mapped_column(Integer)  # 道府県民税 (所得割 + 均等割)
    non_taxable: Mapped[bool] = mapped_column(Boolean)
    assessed_on: Mapped[dt.date] = mapped_column(Date)
    __table_args__ = (UniqueConstraint("lg_code", "fiscal_year", "resident_code"),)


class KosekiRow(Base):
    """A 戸籍 kept by its 本籍 municipality: 本籍 and 筆頭者."""

    __tablename__ = "kiosk_koseki"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    honseki: Mapped[str] = mapped_column(String(200))
    head_family_name: Mapped[str] = mapped_column(String(50))
    head_given_name: Mapped[str] = mapped_column(String(50))
    made_on: Mapped[dt.date] = mapped_column(Date)  # 編製日
    made_reason: Mapped[str] = mapped_column(String(40))  # 婚姻, 改製, ...
    __table_args__ = (UniqueConstraint("lg_code", "honseki", "head_family_name", "head_given_name"),)


class KosekiMemberRow(Base):
    """A person entered in a 戸籍. ``resident_code`` is the link the 戸籍の附票 gives (null for a
    person without a 住民票, e.g. one who died before 住基ネット)."""

    __tablename__ = "kiosk_koseki_members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    koseki_id: Mapped[int] = mapped_column(ForeignKey("kiosk_koseki.id"))
    position: Mapped[int] = mapped_column(Integer)
    resident_code: Mapped[str | None] = mapped_column(String(11), nullable=True)
    family_name: Mapped[str] = mapped_column(String(50))
    given_name: Mapped[str] = mapped_column(String(50))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(8))
    father: Mapped[str] = mapped_column(String(100))
    mother: Mapped[str] = mapped_column(String(100))
    relationship: Mapped[str] = mapped_column(String(20))  # 父母との続柄 or 配偶者 (夫/妻)
    events: Mapped[str] = mapped_column(Text)  # JSON: [[date, label, text], ...] (身分事項)
    removed: Mapped[bool] = mapped_column(Boolean)  # 除籍
    removed_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    __table_args__ = (
        UniqueConstraint("koseki_id", "position"),
        Index("ix_kiosk_koseki_member_code", "resident_code"),
    )


class HonsekiUseRow(Base):
    """本籍地利用登録: a person living elsewhere registered with the 本籍 municipality to obtain 戸籍
    certificates at a kiosk."""

    __tablename__ = "kiosk_honseki_use"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))  # the 本籍 municipality
    resident_code: Mapped[str] = mapped_column(String(11))
    koseki_id: Mapped[int] = mapped_column(ForeignKey("kiosk_koseki.id"))
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (Index("ix_kiosk_honseki_use", "lg_code", "resident_code"),)


PENDING = "pending"  # applied for at a kiosk; the 本籍 municipality has not decided yet
APPROVED = "approved"  # checked against the 戸籍: a HonsekiUseRow was made
REJECTED = "rejected"  # refused by the 本籍 municipality (``reason`` says why)


class HonsekiApplicationRow(Base):
    """本籍地利用登録申請: made by the resident at a kiosk (card and PIN), kept by the 本籍
    municipality until its staff approve it (a :class:`HonsekiUseRow` is made) or reject it. At
    most one pending application per person and municipality (a partial unique index)."""

    __tablename__ = "kiosk_honseki_applications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))  # the 本籍 municipality
    resident_code: Mapped[str] = mapped_column(String(11))
    head_family_name: Mapped[str] = mapped_column(String(50))  # 筆頭者の氏, as the applicant typed it
    head_given_name: Mapped[str] = mapped_column(String(50))  # 筆頭者の名
    kiosk_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    applied_by: Mapped[str] = mapped_column(String(64))  # the actor that recorded it (the center)
    state: Mapped[str] = mapped_column(String(8), default=PENDING, server_default=PENDING)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # why rejected
    honseki_use_id: Mapped[int | None] = mapped_column(ForeignKey("kiosk_honseki_use.id"), nullable=True)
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'rejected')", name="state_known"),
        Index("ix_kiosk_honseki_app_state", "lg_code", "state", "applied_at"),
        Index(
            "uq_kiosk_honseki_app_pending",
            "lg_code",
            "resident_code",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )


class DvFlagRow(Base):
    """DV・ストーカー等 支援措置: while in force, no certificate about the person leaves a kiosk."""

    __tablename__ = "kiosk_dv_flags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    resident_code: Mapped[str] = mapped_column(String(11))
    since: Mapped[dt.date] = mapped_column(Date)
    until: Mapped[dt.date] = mapped_column(Date)  # 支援措置 run one year and are renewed
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_kiosk_dv_flags", "lg_code", "resident_code"),)


NUMBERED = "numbered"  # the content and its number were made; no document registered yet
ISSUED = "issued"  # the signed document with this number is in the register (its SHA-256 here)
VOID = "void"  # no document will ever carry this number (``void_reason`` says why)


class IssuanceRow(Base):
    """The issuer's log of issued contents: which request got which certificate number for whom,
    and the hash of the content (never the content). A request id is answered once.

    ``state``: ``numbered`` when the content is made; ``issued`` once the signed document is
    registered (``document_sha256``); ``void`` when the document failed after numbering, or when a
    numbered row had no registered document after a timeout (``sweep_undelivered``): a number is
    never left dangling without saying so."""

    __tablename__ = "kiosk_issuances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    request_id: Mapped[str] = mapped_column(String(64))
    certificate_number: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    resident_code: Mapped[str] = mapped_column(String(11))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(8), default=NUMBERED, server_default=NUMBERED)
    document_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)  # issued or void
    void_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    __table_args__ = (
        UniqueConstraint("lg_code", "request_id"),
        CheckConstraint("state IN ('numbered', 'issued', 'void')", name="state_known"),
        Index("ix_kiosk_issuances_state", "state", "issued_at"),
    )

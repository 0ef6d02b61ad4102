"""Tables of the municipal registers. Every municipality's rows share these tables, keyed by lg_code;
only ``jlis.registry`` reads or writes them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class HouseholdRow(Base):
    __tablename__ = "reg_households"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    household_no: Mapped[str] = mapped_column(String(16))
    head_resident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_on: Mapped[dt.date] = mapped_column(Date)
    # AUTOINCREMENT on SQLite: an id is never handed out again, and sqlite_sequence lets a planned
    # group of counter actions reserve ids for the households it founds (store.HouseholdIds).
    __table_args__ = (UniqueConstraint("lg_code", "household_no"), {"sqlite_autoincrement": True})


class ResidentRow(Base):
    __tablename__ = "reg_residents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    resident_code: Mapped[str] = mapped_column(String(11))
    my_number: Mapped[str] = mapped_column(String(12))
    household_id: Mapped[int] = mapped_column(ForeignKey("reg_households.id"))
    relationship: Mapped[str] = mapped_column(String(20))
    family_name: Mapped[str] = mapped_column(String(50))
    given_name: Mapped[str] = mapped_column(String(50))
    family_kana: Mapped[str] = mapped_column(String(50))
    given_kana: Mapped[str] = mapped_column(String(50))
    former_surname: Mapped[str | None] = mapped_column(String(50), nullable=True)
    former_surname_kana: Mapped[str | None] = mapped_column(String(50), nullable=True)
    alias: Mapped[str | None] = mapped_column(String(100), nullable=True)
    nationality: Mapped[str] = mapped_column(String(40))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(8))
    town_id: Mapped[str] = mapped_column(String(20))
    banchi: Mapped[str] = mapped_column(String(60))
    address_text: Mapped[str] = mapped_column(String(200))
    honseki: Mapped[str | None] = mapped_column(String(200), nullable=True)
    honseki_lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    resident_since: Mapped[dt.date] = mapped_column(Date)
    address_since: Mapped[dt.date] = mapped_column(Date)
    notified_on: Mapped[dt.date] = mapped_column(Date)
    previous_address: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    last_reason: Mapped[str] = mapped_column(String(24))
    last_change_date: Mapped[dt.date] = mapped_column(Date)
    removed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    move_destination: Mapped[str | None] = mapped_column(String(200), nullable=True)
    move_destination_lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    version: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_reg_residents_lg_code_code", "lg_code", "resident_code"),
        Index("ix_reg_residents_lg_kana", "lg_code", "family_kana", "given_kana"),
        Index("ix_reg_residents_household", "household_id"),
        Index("ix_reg_residents_my_number", "my_number"),
    )


class HistoryRow(Base):
    """One row per change: the record as it stood after it. Never updated, never deleted."""

    __tablename__ = "reg_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("reg_residents.id"))
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(24))
    change_date: Mapped[dt.date] = mapped_column(Date)
    notified_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    staff: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(400))
    snapshot: Mapped[str] = mapped_column(Text)
    __table_args__ = (UniqueConstraint("resident_id", "version"),)


class MoveOutCertificateRow(Base):
    """転出証明書情報 a municipality issued (direction 'out') or received over the network ('in')."""

    __tablename__ = "reg_move_out_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))  # the municipality holding this row
    direction: Mapped[str] = mapped_column(String(3))
    certificate_no: Mapped[str] = mapped_column(String(40))
    from_lg_code: Mapped[str] = mapped_column(String(6))
    to_lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    resident_code: Mapped[str] = mapped_column(String(11))
    planned_date: Mapped[dt.date] = mapped_column(Date)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # issued | received | used
    __table_args__ = (UniqueConstraint("lg_code", "direction", "certificate_no"),)


class RegisterVersionRow(Base):
    """How many times each municipality's register (its residents and households) was written, on
    SQLite only: a group of counter actions planned on a snapshot checks at replay that no one
    else wrote the registers it read meanwhile (jlis.registry.store.GroupPlan)."""

    __tablename__ = "reg_versions"
    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)

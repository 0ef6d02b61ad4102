"""Tables of jlis.bcl (declared on jlis.db.Base).

Backups: a catalogue of the backups taken (the backup files themselves live in the separate
store, see ``backup.py``) and each municipality's schedule. Disasters: the declaration and its area,
the victim register (被災者台帳), the damaged-dwelling register (被災住家台帳) with its surveys, the
罹災証明書 applications, and shelters with their stays.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class BackupRow(Base):
    """One backup of a municipality's register, as catalogued in the live database."""

    __tablename__ = "bcl_backups"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # <lg_code>-<UTC stamp>-<hex>
    lg_code: Mapped[str] = mapped_column(String(6))
    taken_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    location: Mapped[str] = mapped_column(String(400))  # the file, relative to the store
    sha256: Mapped[str] = mapped_column(String(64))  # of the sealed file
    content_sha256: Mapped[str] = mapped_column(String(64))  # of the canonical plaintext
    households: Mapped[int] = mapped_column(Integer)
    residents: Mapped[int] = mapped_column(Integer)
    history: Mapped[int] = mapped_column(Integer)
    certificates: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    pruned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    __table_args__ = (Index("ix_bcl_backups_lg_taken", "lg_code", "taken_at"),)


class BackupScheduleRow(Base):
    __tablename__ = "bcl_backup_schedules"
    lg_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    interval_minutes: Mapped[int] = mapped_column(Integer)
    next_due: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    keep: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean)
    last_backup_id: Mapped[str | None] = mapped_column(String(48), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(400), nullable=True)


class DisasterRow(Base):
    __tablename__ = "bcl_disasters"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # D20261120-01
    name: Mapped[str] = mapped_column(String(100))
    cause: Mapped[str] = mapped_column(String(16))  # models.DisasterCause
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    declared_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    declared_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DisasterAreaRow(Base):
    """A municipality of the area; ``town_id`` None: all of it, else one 町字 of it per row."""

    __tablename__ = "bcl_disaster_areas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("bcl_disasters.id"))
    lg_code: Mapped[str] = mapped_column(String(6))
    town_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    __table_args__ = (Index("ix_bcl_disaster_areas_lg", "lg_code", "disaster_id"),)


class DwellingRow(Base):
    """被災住家台帳: one dwelling (an address of the area where victims lived) per disaster."""

    __tablename__ = "bcl_dwellings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("bcl_disasters.id"))
    lg_code: Mapped[str] = mapped_column(String(6))
    town_id: Mapped[str] = mapped_column(String(20))
    banchi: Mapped[str] = mapped_column(String(60))
    address: Mapped[str] = mapped_column(String(200))
    grade: Mapped[str | None] = mapped_column(String(20), nullable=True)  # the latest survey's
    surveyed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    __table_args__ = (UniqueConstraint("disaster_id", "lg_code", "town_id", "banchi"),)


class SurveyRow(Base):
    """A damage survey (被害認定調査) of a dwelling. Never updated: a re-survey is a new row."""

    __tablename__ = "bcl_surveys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dwelling_id: Mapped[int] = mapped_column(ForeignKey("bcl_dwellings.id"))
    round: Mapped[int] = mapped_column(Integer)  # models.SurveyRound
    damage_ratio: Mapped[float] = mapped_column(Float)  # 損害割合 (%)
    grade: Mapped[str] = mapped_column(String(20))
    surveyed_on: Mapped[dt.date] = mapped_column(Date)
    surveyor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(400), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_bcl_surveys_dwelling", "dwelling_id"),)


class VictimRow(Base):
    """被災者台帳: a person who lived in the area on the day, as the register described them then."""

    __tablename__ = "bcl_victims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    disaster_id: Mapped[str] = mapped_column(ForeignKey("bcl_disasters.id"))
    lg_code: Mapped[str] = mapped_column(String(6))
    resident_code: Mapped[str] = mapped_column(String(11))
    household_no: Mapped[str] = mapped_column(String(16))
    relationship: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(101))
    name_kana: Mapped[str] = mapped_column(String(101))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))
    dwelling_id: Mapped[int] = mapped_column(ForeignKey("bcl_dwellings.id"))
    register_status: Mapped[str] = mapped_column(String(16))  # the register's status when listed
    listed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (
        UniqueConstraint("disaster_id", "resident_code"),
        Index("ix_bcl_victims_lg", "lg_code", "disaster_id"),
        Index("ix_bcl_victims_household", "disaster_id", "household_no"),
    )


class DamageApplicationRow(Base):
    """A 罹災証明書 application and its decision. One open or approved application per person and
    disaster (a rejected one may be followed by another)."""

    __tablename__ = "bcl_damage_applications"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # 受付番号 D20261120-01-000001
    disaster_id: Mapped[str] = mapped_column(ForeignKey("bcl_disasters.id"))
    lg_code: Mapped[str] = mapped_column(String(6))
    resident_code: Mapped[str] = mapped_column(String(11))
    household_no: Mapped[str] = mapped_column(String(16))
    dwelling_id: Mapped[int] = mapped_column(ForeignKey("bcl_dwellings.id"))
    channel: Mapped[str] = mapped_column(String(8))  # models.Channel
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    applied_by: Mapped[str] = mapped_column(String(80))  # staff username, or resident:<auth serial>
    status: Mapped[str] = mapped_column(String(10))  # models.ApplicationStatus
    grade: Mapped[str | None] = mapped_column(String(20), nullable=True)  # fixed at approval
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(400), nullable=True)  # why rejected
    __table_args__ = (
        Index("ix_bcl_damage_applications_person", "resident_code", "disaster_id"),
        Index("ix_bcl_damage_applications_lg", "lg_code", "status"),
        # At most one application that is not rejected per person and disaster, even under races.
        Index(
            "uq_bcl_damage_applications_open",
            "disaster_id",
            "resident_code",
            unique=True,
            sqlite_where=text("status != 'rejected'"),
            postgresql_where=text("status != 'rejected'"),
        ),
    )


class ShelterRow(Base):
    __tablename__ = "bcl_shelters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int] = mapped_column(Integer)
    disaster_id: Mapped[str | None] = mapped_column(ForeignKey("bcl_disasters.id"), nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ShelterStayRow(Base):
    """A stay at a shelter, from check-in to check-out with the card (利用者証明用電子証明書)."""

    __tablename__ = "bcl_shelter_stays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shelter_id: Mapped[int] = mapped_column(ForeignKey("bcl_shelters.id"))
    resident_code: Mapped[str] = mapped_column(String(11))
    home_lg_code: Mapped[str] = mapped_column(String(6))  # the person's municipality of residence
    certificate_serial: Mapped[str] = mapped_column(String(40))
    checked_in_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    checked_in_by: Mapped[str] = mapped_column(String(64))
    checked_out_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    checked_out_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        Index("ix_bcl_shelter_stays_shelter", "shelter_id", "checked_out_at"),
        # A person is in at most one shelter at a time, even when two shelters scan the card at once.
        Index(
            "uq_bcl_shelter_stays_present",
            "resident_code",
            unique=True,
            sqlite_where=text("checked_out_at IS NULL"),
            postgresql_where=text("checked_out_at IS NULL"),
        ),
    )

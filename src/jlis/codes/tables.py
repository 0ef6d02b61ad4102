"""Issued numbers. Rows are never deleted: a retired number stays here so that it is never
issued again, to anyone."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base

# Both tables are keyed by a number, so on SQLite they are WITHOUT ROWID: one B-tree fewer per
# table, which is most of the cost of seeding a million people. Other backends ignore the option.
_KEYED_BY_NUMBER = {"sqlite_with_rowid": False}


class IssuedMyNumber(Base):
    __tablename__ = "issued_my_numbers"
    __table_args__ = _KEYED_BY_NUMBER
    my_number: Mapped[str] = mapped_column(String(12), primary_key=True)
    resident_code: Mapped[str] = mapped_column(String(11), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    """The derivation attempt that produced the number (0 unless it collided or was re-derived)."""
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IssuedResidentCode(Base):
    __tablename__ = "issued_resident_codes"
    __table_args__ = _KEYED_BY_NUMBER
    resident_code: Mapped[str] = mapped_column(String(11), primary_key=True)
    lg_code: Mapped[str] = mapped_column(String(6))
    """The 団体 the code was issued to."""
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# Core handles for bulk executemany, which bypasses the ORM unit of work.
issued_my_numbers: Table = IssuedMyNumber.__table__  # type: ignore[assignment]
issued_resident_codes: Table = IssuedResidentCode.__table__  # type: ignore[assignment]

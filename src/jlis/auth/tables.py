"""Tables of sign-in: principals, web sessions and API tokens. Session and token values are stored
only as their SHA-256, so a copy of the database signs nobody in."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base


class PrincipalRow(Base):
    __tablename__ = "auth_principals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    agency_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    # The scope rule of jlis.auth.models.Principal, held by the database as well: a staff row
    # without a municipality or an agency row without an agency can never be read back.
    __table_args__ = (
        CheckConstraint(
            "kind IN ('municipal_staff', 'jlis_operator', 'agency', 'resident', 'verifier', "
            "'linkage_member')",
            name="kind_known",
        ),
        CheckConstraint("(kind = 'municipal_staff') = (lg_code IS NOT NULL)", name="staff_has_lg_code"),
        CheckConstraint("(kind = 'agency') = (agency_id IS NOT NULL)", name="agency_has_agency_id"),
    )


class WebSessionRow(Base):
    __tablename__ = "auth_web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("auth_principals.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_auth_web_sessions_expires", "expires_at"),)


class ApiTokenRow(Base):
    __tablename__ = "auth_api_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("auth_principals.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_auth_api_tokens_expires", "expires_at"),)

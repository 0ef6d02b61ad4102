"""Tables of jlis.linkage.middle (declared on jlis.db.Base).

Two sides, kept apart as in a real municipality:

- ``middle_addressees`` is the 団体内統合宛名システム's mapping 住民票コード → 団体内統合宛名番号. It is the
  only table here that holds a 住民票コード, and nothing that answers the network reads it.
- ``middle_codes`` (符号 ↔ 宛名番号) and ``middle_replicas`` (副本, versioned) are the 中間サーバー's: they
  know a person only by the member's own 符号 and its 宛名番号.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class MiddleServerRow(Base):
    """One member's middle server; ``last_local_seq`` numbers its 団体内統合宛名番号."""

    __tablename__ = "middle_servers"
    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_local_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AddresseeRow(Base):
    """団体内統合宛名: a person known to the member, by 住民票コード (municipality side only)."""

    __tablename__ = "middle_addressees"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(15))  # 団体内統合宛名番号
    resident_code: Mapped[str] = mapped_column(String(11))
    # The 既存住基's own number of the person (its resident id), once a sync has seen them: it
    # survives a 住民票コード変更, so the sync can carry the 宛名番号 over to the new code.
    register_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (
        UniqueConstraint("member_id", "local_id", name="uq_middle_addressees_local_id"),
        UniqueConstraint("member_id", "resident_code", name="uq_middle_addressees_resident_code"),
        Index("ix_middle_addressees_register", "member_id", "register_id"),
    )


class CodeLinkRow(Base):
    """符号 ↔ 団体内統合宛名番号 at the member's middle server (facts §5.2 step 5)."""

    __tablename__ = "middle_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(15))
    code: Mapped[str] = mapped_column(String(128))  # the member's own 機関別符号
    stored_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (
        UniqueConstraint("member_id", "local_id", name="uq_middle_codes_local_id"),
        UniqueConstraint("member_id", "code", name="uq_middle_codes_code"),
    )


class ReplicaRow(Base):
    """副本: one version of one category of one person's information. Versions are never changed;
    a new registration with different data is a new version, the highest one is current."""

    __tablename__ = "middle_replicas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32))
    local_id: Mapped[str] = mapped_column(String(15))
    category: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    __table_args__ = (
        UniqueConstraint("member_id", "local_id", "category", "version", name="uq_middle_replicas_version"),
        Index("ix_middle_replicas_member_category", "member_id", "category"),
    )

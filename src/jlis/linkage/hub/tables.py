"""Tables of jlis.linkage.hub (declared on jlis.db.Base).

Three owners share this module, and never read each other's rows:

- the hub's register of members (``linkage_members``), J-LIS operator data;
- J-LIS's code-generation side (``linkage_jlis_persons``): 住民票コード → the value for code
  generation, for the codes of people who changed 住民票コード (everyone else's value is computed
  from their code). The only table of this package that holds a 住民票コード;
- the hub (``linkage_hub_codes``, ``linkage_hub_acquisitions``): per-member codes and the hub's
  internal person link, and the 処理通番 of each acquisition. No personal data: no name, no
  住民票コード, no My Number, not even the generation value (only a keyed hash of it, the link).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime


class MemberRow(Base):
    """A linkage member (情報照会者・情報提供者): a national agency, a municipality or the portal.

    ``request_key`` is the member's request key (32 bytes) sealed with AES-GCM under the
    installation's storage key (:class:`jlis.card.chip.store.Sealer`, associated data
    ``jlis-linkage-member:<id>``)."""

    __tablename__ = "linkage_members"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    principal_id: Mapped[int | None] = mapped_column(
        ForeignKey("auth_principals.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    request_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("kind IN ('agency', 'municipality', 'portal')", name="kind_known"),
        CheckConstraint("(kind = 'municipality') = (lg_code IS NOT NULL)", name="municipality_has_lg_code"),
    )


class JlisPersonRow(Base):
    """J-LIS: the value for code generation of each code of a person who changed 住民票コード (all
    of them carry the value of the person's first code)."""

    __tablename__ = "linkage_jlis_persons"
    # Clustered on the key (SQLite WITHOUT ROWID; PostgreSQL ignores the option): a row is one
    # B-tree entry instead of a rowid row plus an index entry, half the pages a bulk run dirties.
    __table_args__ = ({"sqlite_with_rowid": False},)
    resident_code: Mapped[str] = mapped_column(String(11), primary_key=True)
    value: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class HubCodeRow(Base):
    """The hub: a member's code (機関別符号) for a person, and the hub-internal link of that person.

    One row per (member, person); the code is a keyed function of both, so the primary key on
    (member, code) also makes (member, link) unique."""

    __tablename__ = "linkage_hub_codes"
    member_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(32))
    link: Mapped[str] = mapped_column(String(32))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (PrimaryKeyConstraint("member_id", "code"), {"sqlite_with_rowid": False})


class HubAcquisitionRow(Base):
    """The hub: one 処理通番 (transaction serial) per acquisition request — one person, or one
    batch of a 符号一斉取得. Pending until J-LIS answers with the generation values."""

    __tablename__ = "linkage_hub_acquisitions"
    serial: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    requested: Mapped[int] = mapped_column(Integer)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (CheckConstraint("status IN ('pending', 'completed', 'refused')", name="status_known"),)

"""Tables of the network tiers. Each tier owns its tables and no tier reads another's: in the
one-process demo they share a database, but the relay is the only path between them.

本人確認情報 (identity) copies, one pair (current copy + history) per tier:

- ``juki_cs_identities`` / ``juki_cs_history``: each municipality's CS (``node`` = ``cs:<lg_code>``);
- ``juki_pref_identities`` / ``juki_pref_history``: the prefecture servers (``pref:<pp>``);
- ``juki_national_identities`` / ``juki_national_history``: the 機構保存本人確認情報 at J-LIS, with
  the look-up indexes of the provision server.

附票 (附票連携システム), the same shape one level over:

- ``juki_fuhyo_records`` / ``juki_fuhyo_history`` / ``juki_fuhyo_addresses``: the 戸籍の附票 kept by
  the 本籍地 (``honseki:<lg_code>``): one record per person, every notice, the address list;
- ``juki_fuhyo_pref_records`` / ``_history`` (``fuhyo-pref:<pp>``) and
  ``juki_fuhyo_national_records`` / ``_history`` (``fuhyo-national``): 附票本人確認情報.

``juki_nodes`` keeps a few counters per node (records, messages applied, last applied time) so the
J-LIS status page never counts millions of rows.

A current row is replaced only by a record with a ``recorded_at`` at least as late (see nodes.py);
history rows are only ever inserted.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import (
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from jlis.db import Base, UtcDateTime

UTC = dt.UTC


def utc(value: dt.datetime) -> dt.datetime:
    """The aware UTC form in which the tables hold times (COPY on PostgreSQL bypasses UtcDateTime)."""
    return value.astimezone(UTC)


# ---------------------------------------------------------------------------------------- identity


class IdentityColumns:
    """本人確認情報 as carried by ``IdentityRecord`` (jlis.registry.events)."""

    resident_code: Mapped[str] = mapped_column(String(11))
    my_number: Mapped[str] = mapped_column(String(12))
    lg_code: Mapped[str] = mapped_column(String(6))
    family_name: Mapped[str] = mapped_column(String(50))
    given_name: Mapped[str] = mapped_column(String(50))
    family_kana: Mapped[str] = mapped_column(String(50))
    given_kana: Mapped[str] = mapped_column(String(50))
    alias: Mapped[str | None] = mapped_column(String(100), nullable=True)
    former_surname: Mapped[str | None] = mapped_column(String(50), nullable=True)
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(24))
    change_date: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    previous_resident_code: Mapped[str | None] = mapped_column(String(11), nullable=True)


class CurrentColumns:
    # The new code of a person whose 住民票コード was changed; the row is then history, not current.
    superseded_by: Mapped[str | None] = mapped_column(String(11), nullable=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class HistoryColumns:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    applied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CsIdentity(IdentityColumns, CurrentColumns, Base):
    __tablename__ = "juki_cs_identities"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (PrimaryKeyConstraint("node", "resident_code"),)


class CsHistory(IdentityColumns, HistoryColumns, Base):
    __tablename__ = "juki_cs_history"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (Index("ix_juki_cs_history_node_code", "node", "resident_code"),)


class PrefIdentity(IdentityColumns, CurrentColumns, Base):
    __tablename__ = "juki_pref_identities"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (PrimaryKeyConstraint("node", "resident_code"),)


class PrefHistory(IdentityColumns, HistoryColumns, Base):
    __tablename__ = "juki_pref_history"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (Index("ix_juki_pref_history_node_code", "node", "resident_code"),)


class NationalIdentity(IdentityColumns, CurrentColumns, Base):
    """機構保存本人確認情報. ``name_key`` / ``kana_key``: the name without blanks (NFKC; kana in
    katakana), the keys of a 基本4情報 search together with the birth date."""

    __tablename__ = "juki_national_identities"
    name_key: Mapped[str] = mapped_column(String(100))
    kana_key: Mapped[str] = mapped_column(String(100))
    __table_args__ = (
        PrimaryKeyConstraint("resident_code"),
        Index("ix_juki_national_my_number", "my_number"),
        Index("ix_juki_national_kana_birth", "kana_key", "birth_date"),
        Index("ix_juki_national_name_birth", "name_key", "birth_date"),
        # Disclosure follows a person's old codes: previous code -> its successor.
        Index("ix_juki_national_superseded", "superseded_by"),
    )


class NationalHistory(IdentityColumns, HistoryColumns, Base):
    __tablename__ = "juki_national_history"
    __table_args__ = (Index("ix_juki_national_history_code", "resident_code"),)


# ------------------------------------------------------------------------------------------- 附票


class FuhyoColumns:
    """附票本人確認情報: no 個人番号 and no kana (住基法 §30の41)."""

    resident_code: Mapped[str] = mapped_column(String(11))
    honseki_lg_code: Mapped[str] = mapped_column(String(6))
    family_name: Mapped[str] = mapped_column(String(50))
    given_name: Mapped[str] = mapped_column(String(50))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))  # the latest address, or 国外
    reason: Mapped[str] = mapped_column(String(24))
    change_date: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    previous_resident_code: Mapped[str | None] = mapped_column(String(11), nullable=True)


class FuhyoRecordColumns(FuhyoColumns):
    """What the 本籍地 keeps beyond 附票本人確認情報: the 本籍 and where the address belongs."""

    honseki: Mapped[str] = mapped_column(String(200))
    address_lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    address_since: Mapped[dt.date] = mapped_column(Date)


class FuhyoEntry(FuhyoRecordColumns, CurrentColumns, Base):
    """The 戸籍の附票 of one person as its 本籍地 keeps it (the addresses are in FuhyoAddress)."""

    __tablename__ = "juki_fuhyo_records"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (PrimaryKeyConstraint("node", "resident_code"),)


class FuhyoHistory(FuhyoRecordColumns, HistoryColumns, Base):
    __tablename__ = "juki_fuhyo_history"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (Index("ix_juki_fuhyo_history_node_code", "node", "resident_code"),)


class FuhyoAddress(Base):
    """One row per address of the 戸籍の附票 with its 住定日 (address_since); 国外 included."""

    __tablename__ = "juki_fuhyo_addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String(32))
    resident_code: Mapped[str] = mapped_column(String(11))
    address: Mapped[str] = mapped_column(String(200))
    address_lg_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    address_since: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(24))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_juki_fuhyo_addresses_node_code", "node", "resident_code"),)


class FuhyoPrefRecord(FuhyoColumns, CurrentColumns, Base):
    __tablename__ = "juki_fuhyo_pref_records"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (PrimaryKeyConstraint("node", "resident_code"),)


class FuhyoPrefHistory(FuhyoColumns, HistoryColumns, Base):
    __tablename__ = "juki_fuhyo_pref_history"
    node: Mapped[str] = mapped_column(String(32))
    __table_args__ = (Index("ix_juki_fuhyo_pref_history_node_code", "node", "resident_code"),)


class FuhyoNationalRecord(FuhyoColumns, CurrentColumns, Base):
    __tablename__ = "juki_fuhyo_national_records"
    __table_args__ = (PrimaryKeyConstraint("resident_code"),)


class FuhyoNationalHistory(FuhyoColumns, HistoryColumns, Base):
    __tablename__ = "juki_fuhyo_national_history"
    __table_args__ = (Index("ix_juki_fuhyo_national_history_code", "resident_code"),)


# ------------------------------------------------------------------------------------------ nodes


class NodeState(Base):
    """Counters of one node, moved once per applied batch."""

    __tablename__ = "juki_nodes"
    node: Mapped[str] = mapped_column(String(32), primary_key=True)
    records: Mapped[int] = mapped_column(Integer, default=0)  # rows in the node's current copy
    applied: Mapped[int] = mapped_column(Integer, default=0)  # messages applied (initial load excluded)
    last_applied_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


def _t(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# Core handles: the hot paths use Core executemany, never the ORM unit of work.
cs_identities = _t(CsIdentity)
cs_history = _t(CsHistory)
pref_identities = _t(PrefIdentity)
pref_history = _t(PrefHistory)
national_identities = _t(NationalIdentity)
national_history = _t(NationalHistory)
fuhyo_records = _t(FuhyoEntry)
fuhyo_history = _t(FuhyoHistory)
fuhyo_addresses = _t(FuhyoAddress)
fuhyo_pref_records = _t(FuhyoPrefRecord)
fuhyo_pref_history = _t(FuhyoPrefHistory)
fuhyo_national_records = _t(FuhyoNationalRecord)
fuhyo_national_history = _t(FuhyoNationalHistory)
nodes = _t(NodeState)

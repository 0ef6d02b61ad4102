"""Tables of jlis.linkage.exchange: the 情報提供等記録 of every keeper (one hash chain each), the chain
heads, and the ledger of request ids (replay protection).

Records are append-only: triggers refuse UPDATE and DELETE, except a retention purge that opens the
gate for its own transaction (as in :mod:`jlis.audit.tables`). The hash chain is what detects an
edit made behind the triggers' back.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DDL, BigInteger, Boolean, Date, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from jlis.audit.chain import GENESIS
from jlis.audit.tables import append_only_ddl
from jlis.db import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class ExchangeRecordRow(Base):
    __tablename__ = "linkage_exchange_records"

    keeper: Mapped[str] = mapped_column(String(64), primary_key=True)  # member id or "hub"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16))
    exchange_no: Mapped[int] = mapped_column(BigId)  # the hub's seq of the exchange
    request_id: Mapped[str] = mapped_column(String(64))
    person: Mapped[str | None] = mapped_column(String(128), nullable=True)  # keeper's code / hub link
    requester_id: Mapped[str] = mapped_column(String(64))
    requester_name: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str] = mapped_column(String(64))
    provider_name: Mapped[str] = mapped_column(String(200))
    affair: Mapped[str] = mapped_column(String(64))
    affair_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    items: Mapped[str] = mapped_column(Text)  # canonical JSON list
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    provided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    non_disclosure: Mapped[bool] = mapped_column(Boolean)
    disclosure: Mapped[str] = mapped_column(String(16))
    disclose_after: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # The portal's やりとり履歴 reads the hub's records of one person (keeper, person), in seq order.
    __table_args__ = (Index("ix_linkage_exchange_records_person", "keeper", "person", "seq"),)


class RecordHeadRow(Base):
    """Where each keeper's chain ends (last record) and begins (anchor: the last record purged)."""

    __tablename__ = "linkage_record_heads"

    keeper: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    anchor_seq: Mapped[int] = mapped_column(BigId, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class QueryRequestRow(Base):
    """Request ids already seen, per requester: a second use is a replay. Rows older than the
    freshness window may be pruned (a request that old is refused as stale anyway)."""

    __tablename__ = "linkage_query_requests"

    requester_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


# UPDATE and DELETE refused but for a purge of records past their retention (records.purge).
APPEND_ONLY_DDL, APPEND_ONLY_DROP_DDL = append_only_ddl(
    "linkage_exchange_records",
    "linkage_records",
    purge_setting="jlis.linkage_purge",
    permit="linkage_purge_permit",
    key="keeper",
)

for _dialect, _statements in APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(
            ExchangeRecordRow.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect)
        )

"""The 情報提供等記録: append-only, hash-chained per keeper (each member, and the hub), in the caller's
transaction; verification; retention.

Each exchange — a provision, a no-match or a refusal — is appended as one record in the hub's chain
(its seq is the exchange number), one in the requester's and, when the provider was asked, one in
the provider's. A batch of exchanges is appended under one lock of each keeper's head, taken in
keeper order (no deadlock between two batches), with one INSERT and one head update per keeper: the
cost per exchange stays flat however many exchanges a transaction carries.

Record ``n`` of a keeper stores ``hash_n = sha256(hash_(n-1) || canonical JSON of its fields)``
(:func:`jlis.audit.chain.entry_hash`, :func:`jlis.linkage.exchange.models.record_fields`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jlis.audit.chain import GENESIS, ChainVerifier, Link, VerifyResult, entry_hash
from jlis.bulk import bulk_insert
from jlis.clock import JST
from jlis.db import read_only
from jlis.errors import InvalidInput, RuleViolation
from jlis.linkage.exchange.models import (
    HUB_KEEPER,
    DisclosurePolicy,
    ExchangeRecord,
    Outcome,
    RefusalReason,
    Role,
    record_fields,
)
from jlis.linkage.exchange.tables import ExchangeRecordRow, RecordHeadRow

UTC = dt.UTC
RETENTION_YEARS = 7  # 番号法 §23 and its 政令: 情報提供等記録 are kept 7 years (facts §5.4)
VERIFY_CHUNK = 5000

_R = cast(Table, ExchangeRecordRow.__table__)
_H = cast(Table, RecordHeadRow.__table__)
_LOCK_HEADS = (
    select(_H.c.keeper, _H.c.last_seq, _H.c.last_hash)
    .where(_H.c.keeper.in_(bindparam("keepers", expanding=True)))
    .order_by(_H.c.keeper)
)
_LOCK_HEADS_PG = _LOCK_HEADS.with_for_update()
_MOVE_HEAD = (
    update(_H)
    .where(_H.c.keeper == bindparam("k"))
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)
_COLUMNS = tuple(_R.c)


@dataclass(frozen=True)
class ExchangeDraft:
    """One exchange to record, before the hub numbers it. ``requester_person`` is the code the
    requester sent, ``hub_person`` the hub's link (None if the code named nobody), and
    ``provider_person`` the provider's code, or None when the provider was not asked (no record)."""

    request_id: str
    requester_id: str
    requester_name: str
    provider_id: str
    provider_name: str
    affair: str
    affair_name: str
    category: str
    items: tuple[str, ...]
    outcome: Outcome
    reason: RefusalReason | None
    requested_at: dt.datetime
    provided_at: dt.datetime | None
    disclosure: DisclosurePolicy
    disclose_after: dt.date | None
    requester_person: str | None
    hub_person: str | None
    provider_person: str | None
    provider_asked: bool


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _from_db(at: dt.datetime) -> dt.datetime:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at).astimezone(UTC)


def _lock_heads(session: Session, keepers: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Lock the heads of ``keepers`` (sorted: two batches never wait for each other in a cycle),
    creating the missing ones first.

    PostgreSQL: a missing head is created and committed on a connection of its own *before* any head
    is locked. Created inside the batch's transaction instead, an uncommitted head would be a lock
    outside the sorted order (another batch inserting the same keeper waits for it while holding heads
    this batch wants): a deadlock, seen under four concurrent writers. An empty head (seq 0) that
    outlives a rolled-back batch is harmless. SQLite: the transaction already holds the write lock
    (BEGIN IMMEDIATE, jlis.db), so plain reads and inserts are enough."""
    dialect = _dialect(session)
    params = {"keepers": list(keepers)}
    if dialect == "postgresql":
        present = set(session.execute(select(_H.c.keeper).where(_H.c.keeper.in_(list(keepers)))).scalars())
        missing = sorted(k for k in keepers if k not in present)
        if missing:
            with session.get_bind().engine.connect() as own:
                own.execute(postgresql.insert(_H).values(_empty_heads(missing)).on_conflict_do_nothing())
                own.commit()
        return {
            r.keeper: (int(r.last_seq), str(r.last_hash)) for r in session.execute(_LOCK_HEADS_PG, params)
        }
    heads = {r.keeper: (int(r.last_seq), str(r.last_hash)) for r in session.execute(_LOCK_HEADS, params)}
    missing = [k for k in keepers if k not in heads]
    if missing:
        if dialect == "sqlite":
            session.execute(sqlite.insert(_H).values(_empty_heads(missing)).on_conflict_do_nothing())
        else:
            session.execute(_H.insert(), _empty_heads(missing))
        heads = {r.keeper: (int(r.last_seq), str(r.last_hash)) for r in session.execute(_LOCK_HEADS, params)}
    return heads


def _empty_heads(keepers: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"keeper": k, "last_seq": 0, "last_hash": GENESIS, "anchor_seq": 0, "anchor_hash": GENESIS}
        for k in keepers
    ]


def append_exchanges(session: Session, drafts: Sequence[ExchangeDraft], now: dt.datetime) -> list[int]:
    """Record each exchange at the hub, the requester and (if asked) the provider, in the caller's
    transaction (never commits). Returns the exchange numbers, in the order of ``drafts``."""
    if not drafts:
        return []
    if now.tzinfo is None:
        raise InvalidInput("now", "must be a timezone-aware datetime")
    recorded_at = now.astimezone(UTC)
    keepers = {HUB_KEEPER}
    for d in drafts:
        keepers.add(d.requester_id)
        if d.provider_asked:
            keepers.add(d.provider_id)
    heads = _lock_heads(session, sorted(keepers))
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for d in drafts:
        items_text = json.dumps(list(d.items), ensure_ascii=False, separators=(",", ":"))
        common: dict[str, Any] = {
            "request_id": d.request_id,
            "requester_id": d.requester_id,
            "requester_name": d.requester_name,
            "provider_id": d.provider_id,
            "provider_name": d.provider_name,
            "affair": d.affair,
            "affair_name": d.affair_name,
            "category": d.category,
            "outcome": d.outcome.value,
            "reason": None if d.reason is None else d.reason.value,
            "requested_at": d.requested_at.astimezone(UTC),
            "provided_at": None if d.provided_at is None else d.provided_at.astimezone(UTC),
            "non_disclosure": d.disclosure is not DisclosurePolicy.IMMEDIATE,
            "disclosure": d.disclosure.value,
            "disclose_after": d.disclose_after,
            "recorded_at": recorded_at,
        }
        parties: list[tuple[str, Role, str | None]] = [(HUB_KEEPER, Role.HUB, d.hub_person)]
        parties.append((d.requester_id, Role.REQUESTER, d.requester_person))
        if d.provider_asked:
            parties.append((d.provider_id, Role.PROVIDER, d.provider_person))
        exchange_no = heads[HUB_KEEPER][0] + 1
        numbers.append(exchange_no)
        for keeper, role, person in parties:
            last_seq, prev = heads[keeper]
            seq = last_seq + 1
            values: dict[str, Any] = {
                **common,
                "keeper": keeper,
                "seq": seq,
                "role": role.value,
                "exchange_no": exchange_no,
                "person": person,
            }
            digest = entry_hash(prev, record_fields(**{**values, "items": d.items}))
            rows.append({**values, "items": items_text, "prev_hash": prev, "hash": digest})
            heads[keeper] = (seq, digest)
    bulk_insert(session, _R, rows)  # COPY on PostgreSQL: one round trip for the whole batch
    session.execute(
        _MOVE_HEAD,
        [{"k": k, "new_seq": seq, "new_hash": h} for k, (seq, h) in sorted(heads.items())],
    )
    return numbers


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _decode_items(value: str) -> tuple[str, ...] | Any:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value  # hashes differently from any list, so verification reports it
    return tuple(decoded) if isinstance(decoded, list) else decoded


def _record(row: Any) -> ExchangeRecord:
    items = _decode_items(row.items)
    return ExchangeRecord(
        keeper=row.keeper,
        seq=int(row.seq),
        role=Role(row.role),
        exchange_no=int(row.exchange_no),
        request_id=row.request_id,
        person=row.person,
        requester_id=row.requester_id,
        requester_name=row.requester_name,
        provider_id=row.provider_id,
        provider_name=row.provider_name,
        affair=row.affair,
        affair_name=row.affair_name,
        category=row.category,
        items=items if isinstance(items, tuple) else (),
        outcome=Outcome(row.outcome),
        reason=None if row.reason is None else RefusalReason(row.reason),
        requested_at=_from_db(row.requested_at).astimezone(JST),
        provided_at=None if row.provided_at is None else _from_db(row.provided_at).astimezone(JST),
        non_disclosure=bool(row.non_disclosure),
        disclosure=DisclosurePolicy(row.disclosure),
        disclose_after=row.disclose_after,
        recorded_at=_from_db(row.recorded_at).astimezone(JST),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _link(row: Any) -> Link:
    items = _decode_items(row.items)
    fields = record_fields(
        keeper=row.keeper,
        seq=int(row.seq),
        role=row.role,
        exchange_no=int(row.exchange_no),
        request_id=row.request_id,
        person=row.person,
        requester_id=row.requester_id,
        requester_name=row.requester_name,
        provider_id=row.provider_id,
        provider_name=row.provider_name,
        affair=row.affair,
        affair_name=row.affair_name,
        category=row.category,
        items=list(items) if isinstance(items, tuple) else items,
        outcome=row.outcome,
        reason=row.reason,
        requested_at=_from_db(row.requested_at),
        provided_at=None if row.provided_at is None else _from_db(row.provided_at),
        non_disclosure=bool(row.non_disclosure),
        disclosure=row.disclosure,
        disclose_after=row.disclose_after,
        recorded_at=_from_db(row.recorded_at),
    )
    return Link(int(row.seq), row.prev_hash, row.hash, fields)


def keepers(session: Session) -> list[str]:
    """Every keeper with a head or a record (a record without a head is itself a finding)."""
    names = set(session.execute(select(_H.c.keeper)).scalars())
    names.update(session.execute(select(_R.c.keeper).distinct()).scalars())
    return sorted(names)


def records(
    session: Session,
    keeper: str,
    *,
    person: str | None = None,
    exchange_no: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[ExchangeRecord]:
    """A keeper's records in seq order, optionally about one person (its own name for them) or of
    one exchange. Authorisation is the caller's business (service and API)."""
    stmt = select(*_COLUMNS).where(_R.c.keeper == keeper)
    if person is not None:
        stmt = stmt.where(_R.c.person == person)
    if exchange_no is not None:
        stmt = stmt.where(_R.c.exchange_no == exchange_no)
    stmt = stmt.order_by(_R.c.seq.desc() if newest_first else _R.c.seq)
    if limit is not None:
        if limit < 1:
            raise InvalidInput("limit", "must be at least 1")
        stmt = stmt.limit(limit)
    return [_record(row) for row in session.execute(stmt)]


def _head(session: Session, keeper: str) -> Any:
    cols = (_H.c.last_seq, _H.c.last_hash, _H.c.anchor_seq, _H.c.anchor_hash)
    return session.execute(select(*cols).where(_H.c.keeper == keeper)).first()


def _rows(session: Session, keeper: str, after: int, up_to: int) -> Iterator[Any]:
    last = after
    while True:
        rows = session.execute(
            select(*_COLUMNS)
            .where(_R.c.keeper == keeper, _R.c.seq > last, _R.c.seq <= up_to)
            .order_by(_R.c.seq)
            .limit(VERIFY_CHUNK)
        ).all()
        yield from rows
        if len(rows) < VERIFY_CHUNK:
            return
        last = rows[-1].seq


def verify(session: Session, keeper: str) -> VerifyResult:
    """Walk a keeper's chain from its anchor to its head and recompute every hash. Finds a changed,
    removed, inserted or reordered record, and a removed tail (the head)."""
    if not session.in_transaction():
        read_only(session)
    head = _head(session, keeper)
    if head is None:
        stray = session.execute(select(func.min(_R.c.seq)).where(_R.c.keeper == keeper)).scalar()
        if stray is None:
            return VerifyResult(True, 0)
        return VerifyResult(False, 0, stray, "records exist but the chain head is missing")
    stale = session.execute(
        select(func.min(_R.c.seq)).where(_R.c.keeper == keeper, _R.c.seq <= head.anchor_seq)
    ).scalar()
    if stale is not None:
        return VerifyResult(False, 0, stale, "record at or before the retention anchor (should be purged)")
    verifier = ChainVerifier(head.anchor_hash, head.anchor_seq)
    for row in _rows(session, keeper, head.anchor_seq, head.last_seq):
        if not verifier.feed(_link(row)):
            break
    result = verifier.finish((head.last_seq, head.last_hash))
    if not result.ok:
        return result
    top = session.execute(select(func.max(_R.c.seq)).where(_R.c.keeper == keeper)).scalar()
    if top is not None and top > head.last_seq:
        return VerifyResult(False, result.checked, head.last_seq + 1, "record beyond the chain head")
    return result


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


def retention_cutoff(now: dt.datetime, years: int = RETENTION_YEARS) -> dt.datetime:
    """The instant before which records may go: ``years`` before ``now`` in Japan's calendar
    (29 February → 28 February: a record is kept a day longer, never shorter)."""
    local = now.astimezone(JST)
    try:
        return local.replace(year=local.year - years)
    except ValueError:
        return local.replace(year=local.year - years, day=28)


def purge(session: Session, keeper: str, *, before: dt.datetime, now: dt.datetime) -> int:
    """Delete a keeper's records recorded before ``before`` and move its anchor to the last one.

    Refuses (RuleViolation, nothing deleted) when ``before`` is later than the retention cutoff
    (records younger than 7 years must be kept) or when the records to delete do not verify (a
    purge never destroys the evidence of tampering). Only a prefix of the chain goes, so a record
    that follows a younger one waits for it. Returns the number deleted."""
    for name, value in (("before", before), ("now", now)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise InvalidInput(name, "must be a timezone-aware datetime")
    cutoff = retention_cutoff(now)
    if before > cutoff:
        raise RuleViolation(
            "before",
            f"records are kept {RETENTION_YEARS} years",
            f"records recorded after {cutoff.date().isoformat()} must be kept "
            f"({RETENTION_YEARS} years, 番号法 §23)",
        )
    head = _head(session, keeper)
    if head is None:
        return 0
    limit = before.astimezone(UTC)
    verifier = ChainVerifier(head.anchor_hash, head.anchor_seq)
    boundary: Link | None = None
    for row in _rows(session, keeper, head.anchor_seq, head.last_seq):
        if _from_db(row.recorded_at) >= limit:
            break
        link = _link(row)
        if not verifier.feed(link):
            raise RuleViolation(
                "chain",
                "purge refuses to delete records that do not verify",
                f"keeper {keeper}, record seq {verifier.first_bad_seq}: {verifier.reason}",
            )
        boundary = link
    if boundary is None:
        return 0
    dialect = _dialect(session)
    if dialect == "postgresql":
        session.execute(text("SELECT set_config('jlis.linkage_purge', 'on', true)"))
    elif dialect == "sqlite":
        session.execute(
            text("INSERT INTO linkage_purge_permit (keeper, up_to_seq) VALUES (:k, :seq)"),
            {"k": keeper, "seq": boundary.seq},
        )
    deleted = cast(
        CursorResult[Any],
        session.execute(delete(_R).where(_R.c.keeper == keeper, _R.c.seq <= boundary.seq)),
    ).rowcount
    if dialect == "postgresql":
        session.execute(text("SELECT set_config('jlis.linkage_purge', 'off', true)"))
    elif dialect == "sqlite":
        session.execute(text("DELETE FROM linkage_purge_permit WHERE keeper = :k"), {"k": keeper})
    moved = cast(
        CursorResult[Any],
        session.execute(
            update(_H)
            .where(_H.c.keeper == keeper, _H.c.anchor_seq == head.anchor_seq)
            .values(anchor_seq=boundary.seq, anchor_hash=boundary.hash)
        ),
    ).rowcount
    if moved != 1:
        raise RuleViolation("chain", "one purge at a time", f"keeper {keeper} was purged concurrently")
    return int(deleted)


def summary(session: Session, keeper: str) -> Mapping[str, int]:
    """Counts per outcome of a keeper's records (for the CLI)."""
    rows = session.execute(
        select(_R.c.outcome, func.count()).where(_R.c.keeper == keeper).group_by(_R.c.outcome)
    )
    return {str(o): int(n) for o, n in rows}

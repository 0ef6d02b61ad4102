"""Appending to, reading, verifying and purging one audit chain, inside the caller's transaction.

Nothing here commits: an audit record belongs to the transaction of the act it records, so the
two are stored together or not at all (house rule 2).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jlis.audit.chain import GENESIS, ChainVerifier, Link, VerifyResult, canonical_json, entry_hash
from jlis.audit.tables import AuditChainHead, AuditEntryRow
from jlis.bulk import Bound, Prepared
from jlis.clock import JST
from jlis.db import read_only
from jlis.errors import InvalidInput, RuleViolation

UTC = dt.UTC
RETENTION_YEARS = 7  # 住基ネット provision logs and 情報提供等記録 (facts §4.6, §5.4); some prefectures say 5
VERIFY_CHUNK = 5000

_E = cast(Table, AuditEntryRow.__table__)
_H = cast(Table, AuditChainHead.__table__)
_ENTRY_COLUMNS = (
    _E.c.chain,
    _E.c.seq,
    _E.c.at,
    _E.c.actor,
    _E.c.action,
    _E.c.subject,
    _E.c.details,
    _E.c.prev_hash,
    _E.c.hash,
)

# Built once: append is on the hot path of every provision, so it only binds parameters.
# Run straight on the driver (jlis.bulk.Prepared): an audited read at a counter appends one entry,
# and SQLAlchemy's execution path cost more than these three short statements.
_HEAD_FOR_UPDATE = Prepared(
    select(_H.c.last_seq, _H.c.last_hash).where(_H.c.chain == bindparam("chain")).with_for_update()
)
# SQLite: FOR UPDATE does not exist, and pysqlite runs a SELECT before the first write outside any
# transaction, so two writers could read the same head. A no-op UPDATE opens the transaction and takes
# SQLite's write lock (waiting on busy_timeout) and RETURNING reads the head under it, in one statement.
_HEAD_TOUCH = Prepared(
    update(_H)
    .where(_H.c.chain == bindparam("chain_name"))
    .values(last_seq=_H.c.last_seq)
    .returning(_H.c.last_seq, _H.c.last_hash)
)
_INSERT_ENTRY = Prepared(insert(_E), keys=[c.name for c in _ENTRY_COLUMNS])
_MOVE_HEAD = Prepared(
    update(_H)
    .where(_H.c.chain == bindparam("chain_name"))
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)
_ENTRY_KEYS = frozenset({"at", "actor", "action", "subject", "details"})
# A checked entry: at (UTC), actor, action, subject, details as stored (JSON) and as hashed.
_Draft = tuple[dt.datetime, str, str, str | None, str, dict[str, Any]]
_HELD = "jlis.audit.held"  # Session.info key: appends held for the end of a group (hold_appends)


def hold_appends(session: Session) -> None:
    """From now on :meth:`AuditLog.append_later` keeps the entries of ``session`` in memory, per
    chain and in order, until :func:`write_held_appends`. A group commit of counter actions holds
    them (jlis.registry.desk): the chain's head, which every writer of the chain locks until its
    commit, is then locked once at the group's end instead of from its first audited read, so the
    groups of two processes do not wait for each other's whole group."""
    session.info[_HELD] = {}


def write_held_appends(session: Session) -> None:
    """Append what was held since :func:`hold_appends`: one lock of each chain's head, one insert."""
    write_appends(session, take_held_appends(session))


HeldAppends = dict[str, tuple["AuditLog", list["_Draft"]]]


def take_held_appends(session: Session) -> HeldAppends:
    """What was held since :func:`hold_appends`, taken out of ``session`` unwritten (a planned group
    of counter actions writes it in its replay's transaction: see jlis.registry.store)."""
    held: HeldAppends = session.info.pop(_HELD, {})
    return held


def write_appends(session: Session, held: HeldAppends) -> None:
    """Append ``held`` (from :func:`take_held_appends`) in ``session``'s transaction."""
    for log, drafts in held.values():
        log._write(session, drafts)


def held_appends_mark(session: Session) -> dict[str, int]:
    """How many entries each chain holds in ``session`` (see :func:`rewind_held_appends`)."""
    held: HeldAppends = session.info.get(_HELD, {})
    return {chain: len(drafts) for chain, (_, drafts) in held.items()}


def rewind_held_appends(session: Session, mark: dict[str, int]) -> None:
    """Drop the entries held since :func:`held_appends_mark` (a planned action that is given up)."""
    held: HeldAppends = session.info.get(_HELD, {})
    for chain in list(held):
        kept = mark.get(chain, 0)
        if kept:
            del held[chain][1][kept:]
        else:
            del held[chain]


@dataclass(frozen=True)
class AuditEntry:
    """One entry as read back. ``at`` is aware (JST); ``details`` is the decoded JSON, read-only by intent."""

    chain: str
    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


def _check_text(field: str, value: object, max_len: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "must be a non-empty string")
    if len(value) > max_len:
        raise InvalidInput(field, f"must be at most {max_len} characters")


def _to_utc(field: str, at: object) -> dt.datetime:
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(field, "must be a timezone-aware datetime")
    return at.astimezone(UTC)


def _from_db(at: dt.datetime) -> dt.datetime:
    # SQLite hands back the naive UTC value we stored; PostgreSQL an aware one.
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at).astimezone(UTC)


def _iso(at_utc: dt.datetime) -> str:
    return at_utc.isoformat(timespec="microseconds")


def hashed_fields(
    chain: str, seq: int, at_utc: dt.datetime, actor: str, action: str, subject: str | None, details: Any
) -> dict[str, Any]:
    """The record the hash covers. ``at`` in UTC so that the hash does not depend on how it is displayed."""
    return {
        "chain": chain,
        "seq": seq,
        "at": _iso(at_utc),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
    }


def _decode(details_text: str) -> Any:
    try:
        return json.loads(details_text)
    except ValueError:
        return details_text  # hashes differently from any decoded object, so verify reports it


def _entry(row: Any) -> AuditEntry:
    decoded = _decode(row.details)
    details = decoded if isinstance(decoded, dict) else {"_undecodable": row.details}
    return AuditEntry(
        chain=row.chain,
        seq=row.seq,
        at=_from_db(row.at).astimezone(JST),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _link(row: Any) -> tuple[Link, dt.datetime]:
    at_utc = _from_db(row.at)
    fields = hashed_fields(
        row.chain, row.seq, at_utc, row.actor, row.action, row.subject, _decode(row.details)
    )
    return Link(row.seq, row.prev_hash, row.hash, fields), at_utc


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _years_before(now: dt.datetime, years: int) -> dt.datetime:
    local = now.astimezone(JST)  # the legal calendar is Japan's
    try:
        return local.replace(year=local.year - years)
    except ValueError:  # 29 February: take the 28th, which keeps an entry a day longer, never shorter
        return local.replace(year=local.year - years, day=28)


def list_chains(session: Session) -> list[str]:
    """Every chain that has a head or an entry (an entry without a head is itself a finding)."""
    names = set(session.execute(select(_H.c.chain)).scalars())
    names.update(session.execute(select(_E.c.chain).distinct()).scalars())
    return sorted(names)


class AuditLog:
    """One named chain ("juki.provision", "access", ...). Cheap to create; holds no state but the name."""

    def __init__(self, chain: str) -> None:
        _check_text("chain", chain, 64)
        self.chain = chain

    def __repr__(self) -> str:
        return f"AuditLog({self.chain!r})"

    # -- writing -----------------------------------------------------------------------------------

    def append(
        self,
        session: Session,
        *,
        at: dt.datetime,
        actor: str,
        action: str,
        subject: str | None,
        details: Mapping[str, Any],
    ) -> AuditEntry:
        """Append one entry in the caller's transaction (never commits)."""
        entry = {"at": at, "actor": actor, "action": action, "subject": subject, "details": details}
        return self._append(session, [entry], batch=False)[0]

    def append_many(self, session: Session, entries: Sequence[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append a batch in order, under one lock of the head. Each item: at, actor, action, details
        and optionally subject."""
        return self._append(session, entries, batch=True) if entries else []

    def append_later(
        self,
        session: Session,
        *,
        at: dt.datetime,
        actor: str,
        action: str,
        subject: str | None,
        details: Mapping[str, Any],
    ) -> None:
        """:meth:`append`, or, in a session that holds appends (:func:`hold_appends`), at the end
        of its group of actions (:func:`write_held_appends`): the chain's head is then locked from
        there to the commit, not from the first action's read on. The entry is checked now."""
        entry = {"at": at, "actor": actor, "action": action, "subject": subject, "details": details}
        draft = self._draft("", entry)
        held: dict[str, tuple[AuditLog, list[_Draft]]] | None = session.info.get(_HELD)
        if held is None:
            self._write(session, [draft])
        else:
            held.setdefault(self.chain, (self, []))[1].append(draft)

    def _append(
        self, session: Session, items: Sequence[Mapping[str, Any]], *, batch: bool
    ) -> list[AuditEntry]:
        # Validate everything before touching the database: bad input changes nothing.
        drafts = [self._draft(f"entries[{i}]." if batch else "", item) for i, item in enumerate(items)]
        return self._write(session, drafts)

    def _write(self, session: Session, drafts: Sequence[_Draft]) -> list[AuditEntry]:
        seq, prev = self._lock_head(session)
        out: list[AuditEntry] = []
        rows: list[dict[str, Any]] = []
        for at_utc, actor, action, subject, details_text, decoded in drafts:
            seq += 1
            digest = entry_hash(prev, hashed_fields(self.chain, seq, at_utc, actor, action, subject, decoded))
            rows.append(
                {
                    "chain": self.chain,
                    "seq": seq,
                    "at": at_utc,
                    "actor": actor,
                    "action": action,
                    "subject": subject,
                    "details": details_text,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            out.append(
                AuditEntry(
                    self.chain, seq, at_utc.astimezone(JST), actor, action, subject, decoded, prev, digest
                )
            )
            prev = digest
        bound = Bound.current(session)
        if len(rows) == 1:
            _INSERT_ENTRY.run(bound, rows[0])
        else:
            _INSERT_ENTRY.run_many(bound, rows)
        _MOVE_HEAD.run(bound, {"chain_name": self.chain, "new_seq": seq, "new_hash": prev})
        return out

    def _draft(self, where: str, item: Mapping[str, Any]) -> _Draft:
        """Validate one entry; ``where`` prefixes the field names (``entries[3].`` in a batch)."""
        unknown = set(item) - _ENTRY_KEYS
        if unknown:
            raise InvalidInput(f"{where}{sorted(unknown)[0]}", "is not a field of an audit entry")
        for key in ("at", "actor", "action", "details"):
            if key not in item:
                raise InvalidInput(f"{where}{key}", "is required")
        at_utc = _to_utc(f"{where}at", item["at"])
        actor, action, subject = item["actor"], item["action"], item.get("subject")
        _check_text(f"{where}actor", actor, 128)
        _check_text(f"{where}action", action, 64)
        _check_text(f"{where}subject", subject, 64, optional=True)
        details = item["details"]
        if not isinstance(details, Mapping):
            raise InvalidInput(f"{where}details", "must be a mapping")
        try:
            details_text = canonical_json(dict(details))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}details", f"must be JSON-serialisable ({exc})") from exc
        # Hash what a reader will decode, so append and verify hash the very same object.
        return at_utc, actor, action, subject, details_text, json.loads(details_text)

    def _lock_head(self, session: Session) -> tuple[int, str]:
        lock: Prepared
        if _dialect(session) == "sqlite":
            lock, params = _HEAD_TOUCH, {"chain_name": self.chain}
        else:
            lock, params = _HEAD_FOR_UPDATE, {"chain": self.chain}
        row = lock.first(session, params)
        if row is None:
            # First use. ON CONFLICT DO NOTHING: a concurrent first append waits for ours, then both
            # lock the one committed head row.
            values = {
                "chain": self.chain,
                "last_seq": 0,
                "last_hash": GENESIS,
                "anchor_seq": 0,
                "anchor_hash": GENESIS,
            }
            dialect = _dialect(session)
            if dialect == "postgresql":
                session.execute(postgresql.insert(_H).values(values).on_conflict_do_nothing())
            elif dialect == "sqlite":
                session.execute(sqlite.insert(_H).values(values).on_conflict_do_nothing())
            else:
                session.execute(insert(_H).values(values))
            row = lock.first(session, params)
            assert row is not None  # the head exists now: ours or the concurrent first's
        return int(row[0]), str(row[1])

    # -- reading -----------------------------------------------------------------------------------

    def entries(
        self,
        session: Session,
        *,
        subject: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Entries in seq order, optionally of one subject (disclosure) and within [since, until)."""
        stmt = select(*_ENTRY_COLUMNS).where(_E.c.chain == self.chain)
        if subject is not None:
            stmt = stmt.where(_E.c.subject == subject)
        if since is not None:
            stmt = stmt.where(_E.c.at >= _to_utc("since", since))
        if until is not None:
            stmt = stmt.where(_E.c.at < _to_utc("until", until))
        stmt = stmt.order_by(_E.c.seq.desc() if newest_first else _E.c.seq)
        if limit is not None:
            if limit < 1:
                raise InvalidInput("limit", "must be at least 1")
            stmt = stmt.limit(limit)
        return [_entry(row) for row in session.execute(stmt)]

    def _head(self, session: Session) -> Any:
        cols = (_H.c.last_seq, _H.c.last_hash, _H.c.anchor_seq, _H.c.anchor_hash)
        return session.execute(select(*cols).where(_H.c.chain == self.chain)).first()

    def _links(self, session: Session, after: int, up_to: int) -> Iterator[tuple[Link, dt.datetime]]:
        # Keyset pages on the primary key: constant memory and no long-lived cursor, at any size.
        last = after
        while True:
            rows = session.execute(
                select(*_ENTRY_COLUMNS)
                .where(_E.c.chain == self.chain, _E.c.seq > last, _E.c.seq <= up_to)
                .order_by(_E.c.seq)
                .limit(VERIFY_CHUNK)
            ).all()
            for row in rows:
                yield _link(row)
            if len(rows) < VERIFY_CHUNK:
                return
            last = rows[-1].seq

    def verify(self, session: Session) -> VerifyResult:
        """Walk the chain from its anchor to its head and recompute every hash."""
        if not session.in_transaction():
            read_only(session)  # a long walk must not hold the write lock (SQLite)
        for _attempt in range(3):
            head = self._head(session)
            result = self._verify_from(session, head)
            if result.ok or head is None:
                return result
            # Reads are separate statements (one snapshot each outside a serializable transaction):
            # a purge committed meanwhile looks like missing entries. Only then, walk again.
            again = self._head(session)
            if again is None or again.anchor_seq == head.anchor_seq:
                return result
        return result

    def _verify_from(self, session: Session, head: Any) -> VerifyResult:
        if head is None:
            stray = session.execute(select(func.min(_E.c.seq)).where(_E.c.chain == self.chain)).scalar()
            if stray is None:
                return VerifyResult(True, 0)
            return VerifyResult(False, 0, stray, "entries exist but the chain head is missing")
        stale = session.execute(
            select(func.min(_E.c.seq)).where(_E.c.chain == self.chain, _E.c.seq <= head.anchor_seq)
        ).scalar()
        if stale is not None:
            return VerifyResult(False, 0, stale, "entry at or before the retention anchor (should be purged)")
        verifier = ChainVerifier(head.anchor_hash, head.anchor_seq)
        for link, _at in self._links(session, head.anchor_seq, head.last_seq):
            if not verifier.feed(link):
                break
        result = verifier.finish((head.last_seq, head.last_hash))
        if not result.ok:
            return result
        # Entries past the head we read: legitimate only if a concurrent append has since moved the
        # head over them. Read the max first: a committed entry implies a head at least that far.
        top = session.execute(select(func.max(_E.c.seq)).where(_E.c.chain == self.chain)).scalar()
        if top is not None and top > head.last_seq:
            now_head = self._head(session)
            if top > now_head.last_seq:
                return VerifyResult(
                    False, result.checked, now_head.last_seq + 1, "entry beyond the chain head"
                )
        return result

    # -- retention ---------------------------------------------------------------------------------

    def purge_expired(
        self, session: Session, *, now: dt.datetime, retention_years: int = RETENTION_YEARS
    ) -> int:
        """Delete the entries older than ``retention_years`` and move the anchor to the last one deleted.

        Only a prefix of the chain is removed (the chain must stay contiguous), so an expired entry that
        follows a younger one (a skewed clock) waits for it: entries are kept at least the retention
        period, never less. The prefix is verified before it is deleted; a purge never destroys the
        evidence of tampering. Returns the number of entries deleted.
        """
        if not isinstance(retention_years, int) or retention_years < 1:
            raise InvalidInput("retention_years", "must be a positive number of years")
        cutoff = _years_before(_to_utc("now", now), retention_years).astimezone(UTC)
        head = self._head(session)
        if head is None:
            return 0
        verifier = ChainVerifier(head.anchor_hash, head.anchor_seq)
        boundary: Link | None = None
        for link, at_utc in self._links(session, head.anchor_seq, head.last_seq):
            if at_utc >= cutoff:
                break
            if not verifier.feed(link):
                raise RuleViolation(
                    "chain",
                    "purge refuses to delete entries that do not verify",
                    f"chain {self.chain}, entry seq {verifier.first_bad_seq}: {verifier.reason}",
                )
            boundary = link
        if boundary is None:
            return 0

        dialect = _dialect(session)
        if dialect == "postgresql":
            # Transaction-local (third argument true); closed again right after the delete.
            session.execute(text("SELECT set_config('jlis.audit_purge', 'on', true)"))
        elif dialect == "sqlite":
            session.execute(
                text("INSERT INTO audit_purge_permit (chain, up_to_seq) VALUES (:chain, :seq)"),
                {"chain": self.chain, "seq": boundary.seq},
            )
        deleted = cast(
            CursorResult[Any],
            session.execute(delete(_E).where(_E.c.chain == self.chain, _E.c.seq <= boundary.seq)),
        ).rowcount
        if dialect == "postgresql":
            session.execute(text("SELECT set_config('jlis.audit_purge', 'off', true)"))
        elif dialect == "sqlite":
            session.execute(
                text("DELETE FROM audit_purge_permit WHERE chain = :chain"), {"chain": self.chain}
            )

        # Conditional on the anchor we started from: a concurrent purge makes this one fail, rather
        # than move the anchor backwards.
        moved = cast(
            CursorResult[Any],
            session.execute(
                update(_H)
                .where(_H.c.chain == self.chain, _H.c.anchor_seq == head.anchor_seq)
                .values(anchor_seq=boundary.seq, anchor_hash=boundary.hash)
            ),
        ).rowcount
        if moved != 1:
            raise RuleViolation("chain", "one purge at a time", f"chain {self.chain} was purged concurrently")
        return int(deleted)

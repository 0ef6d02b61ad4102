"""One member's middle server (自治体中間サーバー, facts §5.1): the 団体内統合宛名番号, the 符号 ↔ 宛名番号
mapping, versioned replicas (副本) checked against their schema, and automatic answers to lawful
queries.

Everything runs in the caller's session; nothing here commits. Who may call is decided by the
adapters (staff of the 団体 on the API, the hub for ``answer``); ``actor`` names the caller in the
rows and audit entries written here.

Reads of personal data are audited in the member's own chain ``linkage.middle.<member id>``: a
replica shown to staff (``read``) and an answer to the hub (``answer``). The audit entries name the
person by the 団体内統合宛名番号, never by 住民票コード or 符号. The exchange hub, whose own provider
record of the exchange is written in the same transaction, may pass ``audit_answers=False`` to
skip the second record of the same act.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jlis.audit import AuditLog
from jlis.clock import Clock
from jlis.codes import ResidentCode
from jlis.errors import InvalidInput, NotFound, RuleViolation
from jlis.linkage.middle.errors import NoReplica, UnregisteredCode
from jlis.linkage.middle.models import (
    LOCAL_ID_FIELD,
    Replica,
    check_local_id,
    check_member_id,
    is_municipality,
    local_id,
    member_lg_code,
)
from jlis.linkage.middle.schemas import ReplicaSchema, load_replica_schemas, replica_schema
from jlis.linkage.middle.tables import AddresseeRow, CodeLinkRow, MiddleServerRow, ReplicaRow

_S = cast(Table, MiddleServerRow.__table__)
_A = cast(Table, AddresseeRow.__table__)
_C = cast(Table, CodeLinkRow.__table__)
_R = cast(Table, ReplicaRow.__table__)
CHUNK = 2000  # values per IN list, below SQLite's and psycopg's parameter limits
MAX_CODE_LENGTH = 128
CODE_FIELD = "符号"


_R2 = _R.alias("latest")
# One statement on the hot path of an answer: the code's 宛名番号 and its newest replica of the
# category (outer join: a registered code without a replica still tells the two refusals apart).
# The newest version is a correlated ``ORDER BY version DESC LIMIT 1`` that the unique index
# (member_id, local_id, category, version) answers with one index probe whatever the planner's
# statistics say (a join on the grouped maximum can turn into a scan of the whole category).
_LATEST_ID = (
    select(_R2.c.id)
    .where(
        _R2.c.member_id == _C.c.member_id,
        _R2.c.local_id == _C.c.local_id,
        _R2.c.category == bindparam("category"),
    )
    .order_by(_R2.c.version.desc())
    .limit(1)
    .correlate(_C)
    .scalar_subquery()
)
_ANSWER = (
    select(_C.c.local_id, _R.c.version, _R.c.data)
    .select_from(_C.outerjoin(_R, _R.c.id == _LATEST_ID))
    .where(_C.c.member_id == bindparam("member_id"), _C.c.code == bindparam("code"))
)


def middle_log(member_id: str) -> AuditLog:
    return AuditLog(f"linkage.middle.{member_id}")


def _insert_ignore(session: Session, table: Table) -> Any:
    """INSERT that skips rows whose unique key exists (a concurrent writer got there first)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def check_code(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_CODE_LENGTH:
        raise InvalidInput(CODE_FIELD, f"must be a non-empty string of at most {MAX_CODE_LENGTH} characters")
    if not value.isascii() or not value.isprintable():
        raise InvalidInput(CODE_FIELD, "must be printable ascii")
    return value


class MiddleServer:
    """The middle server of one member (a municipality ``lg-XXXXXX``, or an agency)."""

    def __init__(
        self,
        session: Session,
        clock: Clock,
        member_id: str,
        *,
        actor: str,
        schemas: Mapping[str, ReplicaSchema] | None = None,
        audit_answers: bool = True,
    ) -> None:
        self.s = session
        self.clock = clock
        self.member_id = check_member_id(member_id)
        self.actor = actor
        self.schemas = dict(schemas) if schemas is not None else load_replica_schemas()
        self.audit_answers = audit_answers
        self.log = middle_log(self.member_id)

    @property
    def is_municipality(self) -> bool:
        return is_municipality(self.member_id)

    @property
    def lg_code(self) -> str | None:
        return member_lg_code(self.member_id)

    def schema(self, category: str) -> ReplicaSchema:
        """The schema of a category this member keeps; refuses an unknown or not-kept one."""
        schema = replica_schema(category, self.schemas)
        if not schema.kept_by(self.member_id, municipality=self.is_municipality):
            raise RuleViolation(
                "category",
                f"{self.member_id} keeps no replicas of {category!r}",
                f"{schema.label} は {self.member_id} の副本にありません",
            )
        return schema

    def categories(self) -> list[ReplicaSchema]:
        """The categories this member keeps, in the schema file's order."""
        return [
            s for s in self.schemas.values() if s.kept_by(self.member_id, municipality=self.is_municipality)
        ]

    # ------------------------------------------------------------------ 団体内統合宛名番号

    def local_id_for(self, resident_code: str) -> str:
        """The 団体内統合宛名番号 of a person, numbered on first use (idempotent)."""
        code = str(ResidentCode.parse(resident_code))
        return self.local_ids_for([code])[code]

    def find_local_id(self, resident_code: str) -> str | None:
        """The 宛名番号 of a person already known here, without numbering a new one."""
        code = str(ResidentCode.parse(resident_code))
        return self._addressees([code]).get(code)

    def find_local_ids(self, resident_codes: Sequence[str]) -> dict[str, str]:
        """住民票コード → 宛名番号 of those already known here, without numbering anyone."""
        return self._addressees(list(dict.fromkeys(str(ResidentCode.parse(c)) for c in resident_codes)))

    def local_ids_for(self, resident_codes: Iterable[str]) -> dict[str, str]:
        """住民票コード → 団体内統合宛名番号 for many people at once; new ones are numbered in one
        range. Idempotent, and safe against a concurrent caller numbering the same person (its number
        wins, ours is skipped)."""
        codes = list(dict.fromkeys(str(ResidentCode.parse(c)) for c in resident_codes))
        found = self._addressees(codes)
        missing = [c for c in codes if c not in found]
        if missing:
            first = self._allocate(len(missing))
            now = self.clock.now()
            rows = [
                {
                    "member_id": self.member_id,
                    "local_id": local_id(self.member_id, first + i),
                    "resident_code": code,
                    "created_at": now,
                }
                for i, code in enumerate(missing)
            ]
            for i in range(0, len(rows), CHUNK):
                self.s.execute(_insert_ignore(self.s, _A), rows[i : i + CHUNK])
            found.update(self._addressees(missing))
        return {c: found[c] for c in codes}

    def _addressees(self, codes: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(codes), CHUNK):
            rows = self.s.execute(
                select(_A.c.resident_code, _A.c.local_id).where(
                    _A.c.member_id == self.member_id, _A.c.resident_code.in_(codes[i : i + CHUNK])
                )
            )
            out.update({code: lid for code, lid in rows})
        return out

    def _allocate(self, count: int) -> int:
        """The first of ``count`` new serials (a row lock on the server's counter until commit)."""
        self.s.execute(
            _insert_ignore(self.s, _S),
            [{"member_id": self.member_id, "last_local_seq": 0, "created_at": self.clock.now()}],
        )
        last = self.s.execute(
            update(_S)
            .where(_S.c.member_id == self.member_id)
            .values(last_local_seq=_S.c.last_local_seq + count)
            .returning(_S.c.last_local_seq)
        ).scalar_one()
        return int(last) - count + 1

    def resident_code_of(self, local_id: str) -> str:
        """The 住民票コード behind a 宛名番号 (the 統合宛名 side only: for code acquisition)."""
        lid = check_local_id(local_id)
        code = self.s.execute(
            select(_A.c.resident_code).where(_A.c.member_id == self.member_id, _A.c.local_id == lid)
        ).scalar()
        if code is None:
            raise NotFound(LOCAL_ID_FIELD, lid)
        return str(code)

    def record_code_change(self, old: str, new: str) -> str | None:
        """A 住民票コード変更: the person keeps their 宛名番号 (and so their 符号 and replicas). Returns
        the 宛名番号, or None when the old code is not known here. Idempotent."""
        old_code, new_code = str(ResidentCode.parse(old)), str(ResidentCode.parse(new, "新住民票コード"))
        known = self._addressees([old_code, new_code])
        if new_code in known:
            if old_code in known and known[old_code] != known[new_code]:
                raise RuleViolation("新住民票コード", "already belongs to another 宛名番号")
            return known[new_code]
        if old_code not in known:
            return None
        self.s.execute(
            update(_A)
            .where(_A.c.member_id == self.member_id, _A.c.resident_code == old_code)
            .values(resident_code=new_code)
        )
        return known[old_code]

    def follow_register(self, register_ids: Mapping[str, int]) -> list[tuple[str, str]]:
        """Tie addressees to the register's own ids (住民票コード → resident id, as a sync reads
        them) and carry each 宛名番号 over a 住民票コード変更: a register id already known under
        another 住民票コード moves to the new one (:meth:`record_code_change`). Returns the
        (old, new) code pairs it followed."""
        ids = {str(ResidentCode.parse(code)): int(rid) for code, rid in register_ids.items()}
        if not ids:
            return []
        known: dict[int, str] = {}
        values = sorted(set(ids.values()))
        for i in range(0, len(values), CHUNK):
            rows = self.s.execute(
                select(_A.c.register_id, _A.c.resident_code).where(
                    _A.c.member_id == self.member_id, _A.c.register_id.in_(values[i : i + CHUNK])
                )
            )
            known.update({int(rid): str(code) for rid, code in rows})
        followed = []
        for code, rid in ids.items():
            old = known.get(rid)
            if old is not None and old != code:
                self.record_code_change(old, code)
                followed.append((old, code))
        untied = [{"b_code": c, "b_rid": rid} for c, rid in ids.items() if rid not in known]
        if untied:
            self.s.execute(
                update(_A)
                .where(
                    _A.c.member_id == self.member_id,
                    _A.c.resident_code == bindparam("b_code"),
                    _A.c.register_id.is_(None),
                )
                .values(register_id=bindparam("b_rid")),
                untied,
            )
        return followed

    def _require_local_id(self, lid: str) -> str:
        lid = check_local_id(lid)
        exists = self.s.execute(
            select(_A.c.id).where(_A.c.member_id == self.member_id, _A.c.local_id == lid)
        ).first()
        if exists is None:
            raise NotFound(LOCAL_ID_FIELD, lid)
        return lid

    # ------------------------------------------------------------------ 符号

    def store_code(self, local_id: str, code: str) -> None:
        """符号 ↔ 宛名番号 (facts §5.2 step 5). Storing the same pair again is a no-op; another code for
        the person, or the code for another person, is refused."""
        lid = self._require_local_id(local_id)
        code = check_code(code)
        current = self.code_for(lid)
        if current == code:
            return
        if current is not None:
            raise RuleViolation(CODE_FIELD, "the person already has another 符号 at this middle server")
        other = self.s.execute(
            select(_C.c.local_id).where(_C.c.member_id == self.member_id, _C.c.code == code)
        ).scalar()
        if other is not None:
            raise RuleViolation(CODE_FIELD, "already stored for another 宛名番号")
        self.s.execute(
            insert(_C).values(member_id=self.member_id, local_id=lid, code=code, stored_at=self.clock.now())
        )

    def code_for(self, local_id: str) -> str | None:
        lid = check_local_id(local_id)
        code = self.s.execute(
            select(_C.c.code).where(_C.c.member_id == self.member_id, _C.c.local_id == lid)
        ).scalar()
        return None if code is None else str(code)

    def link(self, local_id: str, *, secret: bytes) -> str:
        """The member's 符号 for the person: stored already, or acquired through J-LIS and the hub
        (:func:`jlis.linkage.hub.codes.acquire_code`) and stored. Idempotent."""
        lid = self._require_local_id(local_id)
        existing = self.code_for(lid)
        if existing is not None:
            return existing
        from jlis.linkage.hub.codes import acquire_code
        from jlis.linkage.hub.members import get_member

        member = get_member(self.s, self.member_id)
        member.require_active()
        code = acquire_code(self.s, self.clock, secret, member, self.resident_code_of(lid))
        self.store_code(lid, code)
        return code

    def store_codes(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Bulk step 5 of a 符号一斉取得: (住民票コード, 符号) pairs, each person numbered if new.
        A person who already has a 符号 keeps it (codes are stable per member and person, so a repeat
        carries the same one). Returns the number of pairs newly stored."""
        if not pairs:
            return 0
        checked = [(str(ResidentCode.parse(rc)), check_code(code)) for rc, code in pairs]
        local_ids = self.local_ids_for(rc for rc, _ in checked)
        now = self.clock.now()
        rows = [
            {"member_id": self.member_id, "local_id": local_ids[rc], "code": code, "stored_at": now}
            for rc, code in checked
        ]
        before = self._code_count()
        for i in range(0, len(rows), CHUNK):
            self.s.execute(_insert_ignore(self.s, _C), rows[i : i + CHUNK])
        return self._code_count() - before

    def _code_count(self) -> int:
        return int(
            self.s.execute(
                select(func.count()).select_from(_C).where(_C.c.member_id == self.member_id)
            ).scalar_one()
        )

    def unlinked(self, limit: int | None = None) -> list[tuple[str, str]]:
        """(宛名番号, 住民票コード) of the addressees with no 符号 yet (for a 符号一斉取得)."""
        stmt = (
            select(_A.c.local_id, _A.c.resident_code)
            .outerjoin(_C, and_(_C.c.member_id == _A.c.member_id, _C.c.local_id == _A.c.local_id))
            .where(_A.c.member_id == self.member_id, _C.c.id.is_(None))
            .order_by(_A.c.local_id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [(str(lid), str(rc)) for lid, rc in self.s.execute(stmt)]

    # ------------------------------------------------------------------ 副本

    def register_replica(self, local_id: str, category: str, data: Mapping[str, object]) -> int:
        """Register a replica from a business system: validated against the category's schema, stored
        as a new version. Registering data equal to the current version stores nothing and returns
        that version. Returns the current version number."""
        return self.register_replica_changed(local_id, category, data)[0]

    def register_replica_changed(
        self, local_id: str, category: str, data: Mapping[str, object]
    ) -> tuple[int, bool]:
        """:meth:`register_replica`, also saying whether a new version was stored."""
        schema = self.schema(category)
        values = schema.validate(data)
        lid = self._require_local_id(local_id)
        current = self._current(lid, category)
        if current is not None and dict(current.data) == values:
            return int(current.version), False
        version = 1 if current is None else int(current.version) + 1
        row = {
            "member_id": self.member_id,
            "local_id": lid,
            "category": category,
            "version": version,
            "data": values,
            "registered_at": self.clock.now(),
            "registered_by": self.actor,
        }
        # Two registrations racing for the same next version (PostgreSQL; SQLite serialises
        # writers): the loser stores nothing and is told to try again, rather than failing on the
        # unique key with a server error.
        inserted = self.s.execute(_insert_ignore(self.s, _R).values(row).returning(_R.c.id)).first()
        if inserted is None:
            raise RuleViolation("version", "a concurrent registration changed this replica; register again")
        return version, True

    def current_replicas(
        self, local_ids: Sequence[str], category: str
    ) -> dict[str, tuple[int, Mapping[str, Any]]]:
        """宛名番号 → (version, data) of the current replica of ``category``, for those with one. Not
        audited: for a writer that derives the next version (the change stream), never shown."""
        return self._current_many([check_local_id(lid) for lid in local_ids], category)

    def store_replica_versions(self, versions: Sequence[tuple[str, str, int, Mapping[str, object]]]) -> None:
        """Store ``(local_id, category, version, data)`` new versions in one statement: each version
        the next of its replica, ``data`` validated by the caller (:meth:`ReplicaSchema.validate`)
        and each local id this server's. A version a concurrent registration took meanwhile fails the
        whole statement on the unique key (the caller's transaction rolls back and tries again)."""
        if not versions:
            return
        now = self.clock.now()
        self.s.execute(
            insert(_R),
            [
                {
                    "member_id": self.member_id,
                    "local_id": lid,
                    "category": category,
                    "version": version,
                    "data": dict(data),
                    "registered_at": now,
                    "registered_by": self.actor,
                }
                for lid, category, version, data in versions
            ],
        )

    def current_version(self, local_id: str, category: str) -> int:
        """The current version number of a person's replica of ``category`` (0: none). Not a read of
        personal data: the number only."""
        row = self._current(check_local_id(local_id), category)
        return 0 if row is None else int(row.version)

    def _current(self, lid: str, category: str) -> Any:
        return self.s.execute(
            select(_R)
            .where(_R.c.member_id == self.member_id, _R.c.local_id == lid, _R.c.category == category)
            .order_by(_R.c.version.desc())
            .limit(1)
        ).first()

    def replica(self, local_id: str, category: str, *, purpose: str = "閲覧") -> Replica:
        """The current replica of one category (an audited read)."""
        self.schema(category)
        lid = self._require_local_id(local_id)
        row = self._current(lid, category)
        if row is None:
            raise NoReplica(category)
        replica = _replica(row)
        self._audit("read", lid, {"categories": [category], "purpose": purpose})
        return replica

    def replicas(self, local_id: str, *, purpose: str = "閲覧") -> list[Replica]:
        """The current replica of every category the person has here (an audited read)."""
        lid = self._require_local_id(local_id)
        latest = (
            select(_R.c.category, func.max(_R.c.version).label("v"))
            .where(_R.c.member_id == self.member_id, _R.c.local_id == lid)
            .group_by(_R.c.category)
            .subquery()
        )
        rows = self.s.execute(
            select(_R)
            .join(latest, and_(_R.c.category == latest.c.category, _R.c.version == latest.c.v))
            .where(_R.c.member_id == self.member_id, _R.c.local_id == lid)
        ).all()
        order = {name: i for i, name in enumerate(self.schemas)}
        out = sorted((_replica(r) for r in rows), key=lambda r: order.get(r.category, len(order)))
        if out:
            self._audit("read", lid, {"categories": [r.category for r in out], "purpose": purpose})
        return out

    def history(self, local_id: str, category: str) -> list[Replica]:
        """Every version of one category, oldest first (an audited read)."""
        self.schema(category)
        lid = self._require_local_id(local_id)
        rows = self.s.execute(
            select(_R)
            .where(_R.c.member_id == self.member_id, _R.c.local_id == lid, _R.c.category == category)
            .order_by(_R.c.version)
        ).all()
        if rows:
            self._audit("read", lid, {"categories": [category], "purpose": "履歴閲覧"})
        return [_replica(r) for r in rows]

    # ------------------------------------------------------------------ answers to the network

    def answer(self, code: str, category: str, items: Sequence[str]) -> dict[str, object]:
        """Provider side of a lawful query (the hub has checked the table and translated the code):
        the requested items of the person's current replica; an item the replica does not carry is
        ``None``. Refusals name the field and the rule and disclose nothing: an unknown category or
        item (InvalidInput), a category this member does not keep (RuleViolation), a 符号 not
        registered here (UnregisteredCode), no replica of the category (NoReplica)."""
        schema = self.schema(category)
        wanted = schema.check_items(items)
        code = check_code(code)
        row = self.s.execute(
            _ANSWER, {"member_id": self.member_id, "code": code, "category": category}
        ).first()
        if row is None:
            raise UnregisteredCode(self.member_id)
        lid, version, data = row
        if version is None:
            raise NoReplica(category)
        if self.audit_answers:
            self._audit("answer", str(lid), {"category": category, "items": list(wanted), "version": version})
        values = data or {}
        return {name: values.get(name) for name in wanted}

    def answer_many(
        self, codes: Sequence[str], category: str, items: Sequence[str]
    ) -> dict[str, dict[str, object]]:
        """:meth:`answer` for a batch of people and one (category, items): code → the items of the
        person's current replica, for the codes with one. A code not registered here or a person
        without a replica of the category is left out (no match); a category or items this server
        refuses raise as in :meth:`answer`, for the whole batch. A few statements per batch,
        whatever its size."""
        schema = self.schema(category)
        wanted = schema.check_items(items)
        checked = list(dict.fromkeys(check_code(c) for c in codes))
        by_code: dict[str, str] = {}
        for i in range(0, len(checked), CHUNK):
            rows = self.s.execute(
                select(_C.c.code, _C.c.local_id).where(
                    _C.c.member_id == self.member_id, _C.c.code.in_(checked[i : i + CHUNK])
                )
            )
            by_code.update({str(code): str(lid) for code, lid in rows})
        current = self._current_many(sorted(set(by_code.values())), category)
        out: dict[str, dict[str, object]] = {}
        entries: list[dict[str, Any]] = []
        now = self.clock.now()
        for code in checked:
            lid = by_code.get(code)
            found = current.get(lid) if lid is not None else None
            if lid is None or found is None:
                continue
            version, data = found
            out[code] = {name: data.get(name) for name in wanted}
            if self.audit_answers:
                entries.append(
                    {
                        "at": now,
                        "actor": self.actor,
                        "action": "answer",
                        "subject": lid,
                        "details": {
                            "member_id": self.member_id,
                            "category": category,
                            "items": list(wanted),
                            "version": version,
                        },
                    }
                )
        if entries:
            self.log.append_many(self.s, entries)
        return out

    def _current_many(self, lids: Sequence[str], category: str) -> dict[str, tuple[int, Mapping[str, Any]]]:
        """宛名番号 → (version, data) of the current replica of ``category``, for those with one."""
        out: dict[str, tuple[int, Mapping[str, Any]]] = {}
        for i in range(0, len(lids), CHUNK):
            # every version of the chunk's replicas (a few per person), newest kept: an IN list on
            # the unique index, robust to stale planner statistics
            rows = self.s.execute(
                select(_R.c.local_id, _R.c.version, _R.c.data).where(
                    _R.c.member_id == self.member_id,
                    _R.c.local_id.in_(lids[i : i + CHUNK]),
                    _R.c.category == category,
                )
            )
            for lid, version, data in rows:
                seen = out.get(str(lid))
                if seen is None or int(version) > seen[0]:
                    out[str(lid)] = (int(version), data or {})
        return out

    def _audit(self, action: str, lid: str, details: dict[str, Any]) -> None:
        self.log.append(
            self.s,
            at=self.clock.now(),
            actor=self.actor,
            action=action,
            subject=lid,
            details={"member_id": self.member_id, **details},
        )


def _replica(row: Any) -> Replica:
    at = row.registered_at
    if isinstance(at, dt.datetime) and at.tzinfo is None:  # Core select on SQLite: naive UTC
        at = at.replace(tzinfo=dt.UTC)
    return Replica(
        member_id=row.member_id,
        local_id=row.local_id,
        category=row.category,
        version=int(row.version),
        data=dict(row.data or {}),
        registered_at=at,
        registered_by=row.registered_by,
    )

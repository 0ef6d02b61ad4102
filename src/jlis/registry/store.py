"""The register's rows as the service holds them: plain objects read and written with statements
prepared once (jlis.bulk.Prepared), not ORM instances.

A counter action loads a few rows, changes some attributes and writes back what changed. The ORM's
unit of work did that for ~70 µs of bookkeeping per statement, more than the statements cost; here
a :class:`RowSet` remembers each loaded row's values and writes one UPDATE of the changed columns
per changed row. The attribute names are the column names of ``reg_residents`` and
``reg_households`` (tests/registry/test_store.py checks that they stay in step with tables.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Integer, Table, UniqueConstraint, any_, bindparam, exists, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from jlis.audit.service import (
    held_appends_mark,
    hold_appends,
    rewind_held_appends,
    take_held_appends,
    write_appends,
    write_held_appends,
)
from jlis.bulk import Bound, Prepared, bulk_insert
from jlis.errors import Conflict
from jlis.messaging.outbox import OUTBOX_TABLE, held_count, hold, release, rewind_held, write_held
from jlis.planned import Plan, PlanRefused, ReplayMismatch, current, merge_reads
from jlis.registry.models import Status
from jlis.registry.tables import (
    HistoryRow,
    HouseholdRow,
    MoveOutCertificateRow,
    RegisterVersionRow,
    ResidentRow,
)

RESIDENTS = cast(Table, ResidentRow.__table__)
HOUSEHOLDS = cast(Table, HouseholdRow.__table__)
HISTORY = cast(Table, HistoryRow.__table__)
CERTIFICATES = cast(Table, MoveOutCertificateRow.__table__)
VERSIONS = cast(Table, RegisterVersionRow.__table__)


@dataclass(eq=False, slots=True)
class Resident:
    """A ``reg_residents`` row."""

    id: int
    lg_code: str
    resident_code: str
    my_number: str
    household_id: int
    relationship: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    former_surname: str | None
    former_surname_kana: str | None
    alias: str | None
    nationality: str
    birth_date: dt.date
    sex: str
    town_id: str
    banchi: str
    address_text: str
    honseki: str | None
    honseki_lg_code: str | None
    resident_since: dt.date
    address_since: dt.date
    notified_on: dt.date
    previous_address: str | None
    status: str
    last_reason: str
    last_change_date: dt.date
    removed_on: dt.date | None
    move_destination: str | None
    move_destination_lg_code: str | None
    version: int


@dataclass(eq=False, slots=True)
class Household:
    """A ``reg_households`` row."""

    id: int
    lg_code: str
    household_no: str
    head_resident_id: int | None
    created_on: dt.date


RESIDENT_COLUMNS = tuple(c.name for c in RESIDENTS.columns)
HOUSEHOLD_COLUMNS = tuple(c.name for c in HOUSEHOLDS.columns)

R = TypeVar("R", Resident, Household)


class RowSet(Generic[R]):
    """The rows of one table loaded by one counter action, at most one object per id (a row read
    twice is the same object, as in an ORM session), with the values each had when read."""

    def __init__(self, table: Table, make: Callable[..., R], columns: Sequence[str]) -> None:
        self.table = table
        self.make: Callable[..., R] = make
        self.columns = tuple(columns)
        self._values = attrgetter(*self.columns)
        self.rows: dict[int, R] = {}
        self.saved: dict[int, tuple[Any, ...]] = {}
        self.plan: GroupPlan | None = None  # the planned group the current action belongs to

    def adopt(self, values: Sequence[Any]) -> R:
        """The object for a row read from the database (``values`` in column order); a row already
        held keeps its object, with any change not yet written."""
        held = self.rows.get(values[0])
        if held is not None:
            return held
        if self.plan is not None:
            self.plan.read(self.table, values)
        row = self.make(*values)
        self.rows[row.id] = row
        self.saved[row.id] = tuple(values)
        return row

    def write(self, session: Session | Bound) -> list[tuple[R, tuple[Any, ...]]]:
        """One UPDATE per changed row, of the changed columns only (SQLite rewrites an index only
        when its columns are in the SET list). The rows written, each with its values as read."""
        wrote: list[tuple[R, tuple[Any, ...]]] = []
        for rid, row in self.rows.items():
            now = self._values(row)
            before = self.saved[rid]
            if now == before:
                continue
            changed = tuple(
                c for c, a, b in zip(self.columns, now, before, strict=True) if a is not b and a != b
            )
            if changed:
                params = {f"v_{c}": getattr(row, c) for c in changed}
                params["k_id"] = rid
                self._update(changed).defer(session, params)
                wrote.append((row, before))
                if self.plan is not None:
                    self.plan.wrote(self.table, now, before)
            self.saved[rid] = now
        return wrote

    def forget(self) -> None:
        self.rows.clear()
        self.saved.clear()
        self.plan = None

    def _update(self, columns: tuple[str, ...]) -> Prepared:
        return _update_statement(self.table, columns)


@functools.lru_cache(maxsize=512)
def _update_statement(table: Table, columns: tuple[str, ...]) -> Prepared:
    """The UPDATE of these columns by id, prepared once (an action changes one of a few sets)."""
    return Prepared(
        update(table).where(table.c.id == bindparam("k_id")).values({c: bindparam(f"v_{c}") for c in columns})
    )


# Statements of the counter's hot path, prepared once per dialect.
_r, _h = RESIDENTS.c, HOUSEHOLDS.c
_o = RESIDENTS.alias("o")
# The record, its household, and whether another active member lives in it (what a 転居 asks
# next: does the mover leave others behind?), in one round trip.
_WITH_HOUSEHOLD = select(
    *RESIDENTS.columns,
    *HOUSEHOLDS.columns,
    exists()
    .where(
        _o.c.household_id == _r.household_id,
        _o.c.status == bindparam("active", Status.ACTIVE.value),
        _o.c.id != _r.id,
    )
    .label("others_active"),
).join(HOUSEHOLDS, _h.id == _r.household_id)
LOAD_WITH_HOUSEHOLD = Prepared(_WITH_HOUSEHOLD.where(_r.id == bindparam("rid")))
# The same for the records a group of actions will read (see prefetch_residents): PostgreSQL only.
PREFETCH_WITH_HOUSEHOLD = Prepared(
    _WITH_HOUSEHOLD.where(_r.id == any_(bindparam("ids", type_=ARRAY(Integer))))
)
LOAD_RESIDENT = Prepared(select(RESIDENTS).where(_r.id == bindparam("rid")))
LOAD_HOUSEHOLD = Prepared(select(HOUSEHOLDS).where(_h.id == bindparam("hid")))
LATEST_WITH_CODE = Prepared(
    select(RESIDENTS)
    .where(_r.lg_code == bindparam("lg"), _r.resident_code == bindparam("code"))
    .order_by(_r.id.desc())
    .limit(1)
)
LIVING_WITH_CODE = Prepared(
    select(_r.id)
    .where(
        _r.lg_code == bindparam("lg"),
        _r.resident_code == bindparam("code"),
        _r.status != bindparam("removed"),
    )
    .limit(1)
)
ACTIVE_MEMBERS = Prepared(
    select(RESIDENTS)
    .where(_r.household_id == bindparam("hid"), _r.status == bindparam("active"))
    .order_by(_r.id)
)
FIRST_ACTIVE_MEMBER = Prepared(
    select(RESIDENTS)
    .where(_r.household_id == bindparam("hid"), _r.status == bindparam("active"))
    .order_by(_r.id)
    .limit(1)
)
OTHER_ACTIVE_MEMBERS = Prepared(
    select(_r.id).where(
        _r.household_id == bindparam("hid"), _r.status == bindparam("active"), _r.id != bindparam("rid")
    )
)
ANOTHER_ACTIVE_MEMBER = Prepared(
    select(_r.id)
    .where(_r.household_id == bindparam("hid"), _r.status == bindparam("active"), _r.id != bindparam("rid"))
    .limit(1)
)
INSERT_RESIDENT = Prepared(insert(RESIDENTS).returning(_r.id), keys=RESIDENT_COLUMNS[1:])
INSERT_HOUSEHOLD = Prepared(insert(HOUSEHOLDS).returning(_h.id), keys=HOUSEHOLD_COLUMNS[1:])
HISTORY_COLUMNS = tuple(c.name for c in HISTORY.columns if c.name != "id")
INSERT_HISTORY = Prepared(insert(HISTORY).inline(), keys=HISTORY_COLUMNS)

# Session.info keys: history rows the group commit writes at its end, and the municipalities whose
# register versions it bumps there (see hold_changes, register_written).
HISTORY_HELD = "jlis.registry.history_held"
WRITTEN_HELD = "jlis.registry.written_held"


def hold_changes(session: Session) -> None:
    """From now on the counter actions of ``session`` keep their history rows, messages and audited
    reads in memory (:func:`write_held_changes` writes them, in order): a group of actions then writes
    them with one bulk insert each (COPY on PostgreSQL) instead of two statements per action, and
    locks the access log's head only at its end (jlis.audit.hold_appends). Nothing in a counter
    action reads back the history, the outbox or the access log it has just written."""
    session.info[HISTORY_HELD] = []
    session.info[WRITTEN_HELD] = set()
    hold(session)
    hold_appends(session)


def write_held_changes(session: Session) -> None:
    """Write what the actions held since :func:`hold_changes`, in the order they made it."""
    _write_held_rows(session)
    write_held_appends(session)


def _write_held_rows(session: Session) -> None:
    """The held history rows and messages, and the versions of the registers written."""
    rows: list[dict[str, Any]] = session.info.pop(HISTORY_HELD, [])
    bulk_insert(session, HISTORY, rows)
    held = release(session)
    write_held(session, held)
    held_versions: set[str] = session.info.pop(WRITTEN_HELD, set())
    if held_versions:
        bound = Bound.current(session)
        for lg_code in sorted(held_versions):
            register_written(session, bound, lg_code)


# ------------------------------------------------------------------ concurrent writers

# Every change of a record bumps its version and writes a history row of that version, unique per
# resident: of two transactions that changed the same record from the same version, the second
# fails on its history row instead of overwriting the first's change. On PostgreSQL that happens
# when two processes' counters (two `jlis serve` workers) read the record before either wrote it.
# SQLite's writers cannot race so: each takes the write lock before it reads (BEGIN IMMEDIATE),
# and a planned group checks the registers' versions at its replay (GroupPlan).
_VERSION_UNIQUE = next(
    c
    for c in HISTORY.constraints
    if isinstance(c, UniqueConstraint) and {col.name for col in c.columns} == {"resident_id", "version"}
)


# PostgreSQL's own verdicts on transactions that raced: a deadlock (two groups that wrote the same
# records in different orders) and a serialization failure.
_RACED_STATES = frozenset({"40P01", "40001"})


def raced(exc: BaseException) -> Conflict | None:
    """The error a counter action's caller gets when ``exc`` says that another writer changed one
    of the action's records at the same time (None for any other failure): the group commit runs
    such an action again first (jlis.groupcommit, ``conflict``)."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error; COPY does not
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)  # psycopg's
    if constraint == _VERSION_UNIQUE.name or getattr(orig, "sqlstate", None) in _RACED_STATES:
        return Conflict(
            "住民票",
            "changed by another writer at the same time on every try: nothing was written; send it again",
        )
    return None


# ------------------------------------------------------------------ reading ahead (PostgreSQL)

# Session.info: (the transaction, the records read ahead by resident id, and the residents and
# households the group's actions have changed so far).
PREFETCHED = "jlis.registry.prefetched"
_HOUSEHOLD_ID = RESIDENT_COLUMNS.index("household_id")


def prefetch_residents(session: Session, resident_ids: list[Any]) -> None:
    """The counter desk's read-ahead (jlis.groupcommit): the records the group's actions name, each
    with its household and whether another active member lives in it (as LOAD_WITH_HOUSEHOLD
    reads one), in one statement: on PostgreSQL each read is a round trip, which costs the server
    and the client more than the read. SQLite has no round trips, and plans its groups on a
    snapshot: nothing is read ahead there.

    An action takes a record read ahead only when no action before it in the group changed that
    resident or anyone of that household (:func:`touched`): otherwise it reads the record as it
    is now. Every write to residents and households in a counter group goes through
    RegistryService, whose actions report what they change."""
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted({int(i) for i in resident_ids})
    rows = PREFETCH_WITH_HOUSEHOLD.rows(Bound.current(session), {"ids": ids})
    session.info[PREFETCHED] = (session.get_transaction(), {r[0]: r for r in rows}, set(), set())


def prefetched(session: Session, resident_id: int) -> tuple[Any, ...] | None:
    """The record of ``resident_id`` as read ahead for this group, if it still holds (see
    :func:`prefetch_residents`): until an action changes it (an audited read before a change
    changes nothing)."""
    held = session.info.get(PREFETCHED)
    if held is None or held[0] is not session.get_transaction():
        return None
    _txn, rows, residents, households = held
    found: tuple[Any, ...] | None = rows.get(resident_id)
    if found is None or resident_id in residents or found[_HOUSEHOLD_ID] in households:
        return None
    return found


def touched(
    session: Session,
    residents: Sequence[tuple[Resident, tuple[Any, ...]]],
    households: Sequence[tuple[Household, tuple[Any, ...]]],
) -> None:
    """An action of the group wrote these rows (each with its values as read, as RowSet.write
    returns them): records read ahead for those residents, or for anyone of a household written or
    that such a resident left or joined, no longer hold (a resident the action inserted is among
    them: its insert is followed by its first change, version 0 to 1)."""
    held = session.info.get(PREFETCHED)
    if held is None or not held[1]:
        return
    _txn, _rows, resident_ids, household_ids = held
    for row, before in residents:
        resident_ids.add(row.id)
        household_ids.add(row.household_id)
        household_ids.add(before[_HOUSEHOLD_ID])
    household_ids.update(h.id for h, _before in households)


# ------------------------------------------------------------------ planned groups (SQLite)

# What a planned group of counter actions may touch (jlis.planned refuses any other table): the
# registers' residents and households, which its guards cover, and what it only appends to.
PLANNED_TABLES = frozenset({RESIDENTS.name, HOUSEHOLDS.name, HISTORY.name, VERSIONS.name, OUTBOX_TABLE})
PLAN_KEY = "jlis.registry.plan"  # Session.info: the GroupPlan of a planned group

_v = VERSIONS.c
READ_VERSION = Prepared(select(_v.version).where(_v.lg_code == bindparam("lg")))
BUMP_VERSION = Prepared(
    sqlite.insert(VERSIONS)
    .values(lg_code=bindparam("lg"), version=1)
    .on_conflict_do_update(index_elements=[_v.lg_code], set_={"version": _v.version + 1})
)
_HOUSEHOLD_OF = RESIDENT_COLUMNS.index("household_id")


def register_written(session: Session, bound: Bound, lg_code: str) -> None:
    """Count a write of the register of ``lg_code`` (its residents or households), in the writer's
    transaction, for :class:`GroupPlan`'s guard: at once, or once per municipality at the end of a
    group of counter actions (:func:`hold_changes`). On SQLite only, where groups are planned: on
    PostgreSQL the row would be a lock that every counter transaction of the municipality waits for."""
    held: set[str] | None = session.info.get(WRITTEN_HELD)
    if held is not None:
        held.add(lg_code)
    elif bound.dialect.name == "sqlite":
        BUMP_VERSION.run(bound, {"lg": lg_code})


INSERT_HOUSEHOLD_WITH_ID = Prepared(insert(HOUSEHOLDS).inline(), keys=HOUSEHOLD_COLUMNS)


class HouseholdIds:
    """Household ids reserved in blocks, for inserts that cannot take theirs from the database
    (``RETURNING``): a planned group's (SQLite), whose replay must write the id the plan's history
    and messages already carry, and a counter action's on PostgreSQL, whose insert then waits to
    go with the transaction's next statement (jlis.writebehind). An id reserved and not written is
    skipped, as a rolled-back insert's is.

    On SQLite reg_households is AUTOINCREMENT, so a block reserved by moving sqlite_sequence on is
    never handed out by an ordinary insert; on PostgreSQL the block is taken from the table's
    sequence, which every insert draws from."""

    BLOCK = 200

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if not self._ids:
                self._ids = self._reserve()[::-1]
            return self._ids.pop()

    def _reserve(self) -> list[int]:
        """A block of ids, in a transaction of its own (the plan's is a snapshot, and the counter's
        must not hold the sequence's block back from the others)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                return list(
                    conn.exec_driver_sql(
                        "SELECT nextval(pg_get_serial_sequence('reg_households', 'id')) "
                        f"FROM generate_series(1, {self.BLOCK})"
                    ).scalars()
                )
            found = conn.exec_driver_sql(
                "SELECT seq FROM sqlite_sequence WHERE name = 'reg_households'"
            ).scalar()
            if found is None:  # nothing was ever inserted
                start = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM reg_households").scalar_one()
                conn.exec_driver_sql(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('reg_households', ?)",
                    (start + self.BLOCK,),
                )
            else:
                start = found
                conn.exec_driver_sql(
                    "UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'reg_households'", (self.BLOCK,)
                )
        return list(range(start + 1, start + 1 + self.BLOCK))


_HOUSEHOLD_IDS: weakref.WeakKeyDictionary[Engine, HouseholdIds] = weakref.WeakKeyDictionary()
_HOUSEHOLD_IDS_LOCK = threading.Lock()


def forget_household_ids(engine: Engine) -> None:
    """Drop the ids this process reserved for ``engine``'s database: needed only after the table's
    id sequence was set back (``TRUNCATE ... RESTART IDENTITY`` on a rebuilt database), which
    would hand them out again. jlis itself only ever moves it on (bulk.bump_sequence, the BCL's
    restore)."""
    with _HOUSEHOLD_IDS_LOCK:
        _HOUSEHOLD_IDS.pop(engine, None)


def household_ids(engine: Engine) -> HouseholdIds:
    """The process's reserved household ids for the database of ``engine``."""
    with _HOUSEHOLD_IDS_LOCK:
        ids = _HOUSEHOLD_IDS.get(engine)
        if ids is None:
            ids = _HOUSEHOLD_IDS[engine] = HouseholdIds(engine)
        return ids


class GroupPlan:
    """A group of counter actions run on a snapshot with its writes recorded (jlis.planned; see
    jlis.registry.desk.COUNTER_PLANNING). Its reads are those of a serial run if

    - no one else wrote a register it read since the snapshot: the version of each municipality
      it reads (:func:`register_written`) is read once in the snapshot, and a guard checks it at
      replay, under the write lock;
    - no action read a resident or household that an earlier action of the group changed, which
      the snapshot does not show: each row read is checked against what the earlier actions
      wrote. A resident counts with its household (old and new), so that a household's members,
      read by a query on the household, count too. Such an action is refused (PlanRefused): the
      group commit runs it after the plan, the ordinary way.
    """

    __slots__ = ("plan", "written")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.written: set[tuple[str, int]] = set()

    def enter(self, bound: Bound, lg_code: str) -> None:
        """An action of ``lg_code`` begins: note that register's version, once per plan."""
        key = (VERSIONS.name, lg_code)
        if key in self.plan.guards:
            return
        found = READ_VERSION.first(bound, {"lg": lg_code})
        seen = None if found is None else found[0]
        dialect = bound.dialect

        def unchanged(raw: Any) -> None:
            now = READ_VERSION.first(Bound.of(dialect, raw), {"lg": lg_code})
            if (None if now is None else now[0]) != seen:
                raise ReplayMismatch(f"the register of {lg_code} was written since the plan's snapshot")

        self.plan.guards[key] = unchanged

    def _keys(self, table: Table, values: Sequence[Any]) -> tuple[tuple[str, int], ...]:
        if table is RESIDENTS:
            return (("r", values[0]), ("h", values[_HOUSEHOLD_OF]))
        return (("h", values[0]),)

    def read(self, table: Table, values: Sequence[Any]) -> None:
        written = self.written
        if written and any(k in written for k in self._keys(table, values)):
            raise PlanRefused(f"a read of a row of {table.name} an earlier action of the group changed")

    def wrote(self, table: Table, now: Sequence[Any], before: Sequence[Any]) -> None:
        self.written.update(self._keys(table, now))
        self.written.update(self._keys(table, before))


def plan_changes(session: Session) -> None:
    """:func:`hold_changes`, for a group planned on ``session``'s snapshot."""
    hold_changes(session)
    raw = Bound.current(session).dbapi
    plan = current(raw)
    if plan is None:
        raise PlanRefused("the session is not planning")
    # The service's reads of these tables are checked by the GroupPlan instead (jlis.planned).
    for table in (RESIDENTS.name, HOUSEHOLDS.name, VERSIONS.name):
        merge_reads(raw, table)
    session.info[PLAN_KEY] = GroupPlan(plan)


def held_mark(session: Session) -> tuple[int, int, dict[str, int], frozenset[tuple[str, int]]]:
    """What a planned group holds so far (see :func:`rewind_held_changes`)."""
    plan: GroupPlan = session.info[PLAN_KEY]
    return (
        len(session.info[HISTORY_HELD]),
        held_count(session),
        held_appends_mark(session),
        frozenset(plan.written),
    )


def rewind_held_changes(
    session: Session, mark: tuple[int, int, dict[str, int], frozenset[tuple[str, int]]]
) -> None:
    """Drop what the group's actions held since ``mark``: an action given up in a plan."""
    history, messages, appends, written = mark
    del session.info[HISTORY_HELD][history:]
    rewind_held(session, messages)
    rewind_held_appends(session, appends)
    plan: GroupPlan = session.info[PLAN_KEY]
    plan.written = set(written)


def write_planned_changes(session: Session) -> Callable[[Session], None]:
    """:func:`write_held_changes` in a plan: the history rows and messages are written (recorded),
    and the access log's entries are returned as a writer for the replay's transaction, since each
    is chained to the live head of its chain."""
    _write_held_rows(session)
    appends = take_held_appends(session)
    session.info.pop(PLAN_KEY, None)
    return lambda live: write_appends(live, appends)


_c = CERTIFICATES.c
CERTIFICATE_COLUMNS = tuple(c.name for c in CERTIFICATES.columns if c.name != "id")
INSERT_CERTIFICATE = Prepared(insert(CERTIFICATES).inline(), keys=CERTIFICATE_COLUMNS)
FIND_CERTIFICATE = Prepared(
    select(_c.id, _c.status, _c.payload).where(
        _c.lg_code == bindparam("lg"),
        _c.direction == bindparam("direction"),
        _c.certificate_no == bindparam("no"),
    )
)
CERTIFICATE_USED = Prepared(update(CERTIFICATES).where(_c.id == bindparam("k_id")).values(status="used"))
CERTIFICATES_OF_USED = Prepared(
    update(CERTIFICATES)
    .where(_c.lg_code == bindparam("lg"), _c.direction == "out", _c.resident_code == bindparam("code"))
    .values(status="used")
)

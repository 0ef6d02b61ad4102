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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from jlis.audit.service import hold_appends, write_held_appends
from jlis.bulk import Bound, Prepared, bulk_insert
from jlis.messaging.outbox import hold, release, write_held
from jlis.registry.tables import HistoryRow, HouseholdRow, MoveOutCertificateRow, ResidentRow

RESIDENTS = cast(Table, ResidentRow.__table__)
HOUSEHOLDS = cast(Table, HouseholdRow.__table__)
HISTORY = cast(Table, HistoryRow.__table__)
CERTIFICATES = cast(Table, MoveOutCertificateRow.__table__)


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

    def adopt(self, values: Sequence[Any]) -> R:
        """The object for a row read from the database (``values`` in column order); a row already
        held keeps its object, with any change not yet written."""
        held = self.rows.get(values[0])
        if held is not None:
            return held
        row = self.make(*values)
        self.rows[row.id] = row
        self.saved[row.id] = tuple(values)
        return row

    def write(self, session: Session | Bound) -> None:
        """One UPDATE per changed row, of the changed columns only (SQLite rewrites an index only
        when its columns are in the SET list)."""
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
                self._update(changed).run(session, params)
            self.saved[rid] = now

    def forget(self) -> None:
        self.rows.clear()
        self.saved.clear()

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
LOAD_WITH_HOUSEHOLD = Prepared(
    select(*RESIDENTS.columns, *HOUSEHOLDS.columns)
    .join(HOUSEHOLDS, _h.id == _r.household_id)
    .where(_r.id == bindparam("rid"))
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

# Session.info key: history rows the group commit writes at its end (see hold_changes).
HISTORY_HELD = "jlis.registry.history_held"


def hold_changes(session: Session) -> None:
    """From now on the counter actions of ``session`` keep their history rows, messages and audited
    reads in memory (:func:`write_held_changes` writes them, in order): a group of actions then writes
    them with one bulk insert each (COPY on PostgreSQL) instead of two statements per action, and
    locks the access log's head only at its end (jlis.audit.hold_appends). Nothing in a counter
    action reads back the history, the outbox or the access log it has just written."""
    session.info[HISTORY_HELD] = []
    hold(session)
    hold_appends(session)


def write_held_changes(session: Session) -> None:
    """Write what the actions held since :func:`hold_changes`, in the order they made it."""
    rows: list[dict[str, Any]] = session.info.pop(HISTORY_HELD, [])
    bulk_insert(session, HISTORY, rows)
    held = release(session)
    write_held(session, held, [None] * len(held))
    write_held_appends(session)

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

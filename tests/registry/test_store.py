"""The register's plain row objects stay in step with the tables, and write back only what changed."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jlis.registry.store import (
    HOUSEHOLD_COLUMNS,
    HOUSEHOLDS,
    INSERT_HOUSEHOLD,
    LOAD_HOUSEHOLD,
    RESIDENT_COLUMNS,
    Household,
    Resident,
    RowSet,
)


def test_row_objects_have_exactly_the_columns_of_their_tables() -> None:
    assert tuple(f.name for f in dataclasses.fields(Resident)) == RESIDENT_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(Household)) == HOUSEHOLD_COLUMNS


def test_a_row_set_keeps_one_object_per_id_and_writes_only_changes(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        values = {
            "lg_code": "131016",
            "household_no": "",
            "head_resident_id": None,
            "created_on": dt.date(2026, 1, 2),
        }
        (hid,) = INSERT_HOUSEHOLD.rows(s, values)[0]
        rows: RowSet[Household] = RowSet(HOUSEHOLDS, Household, HOUSEHOLD_COLUMNS)
        found = LOAD_HOUSEHOLD.first(s, {"hid": hid})
        assert found is not None
        hh = rows.adopt(found)
        assert hh.created_on == dt.date(2026, 1, 2) and hh.head_resident_id is None
        hh.household_no = "0000000042"
        assert rows.adopt(found) is hh and hh.household_no == "0000000042"  # a second read: the same object
        rows.write(s)
        rows.write(s)  # nothing changed since: no statement
        stored = s.execute(select(HOUSEHOLDS).where(HOUSEHOLDS.c.id == hid)).one()
        assert stored.household_no == "0000000042" and stored.created_on == dt.date(2026, 1, 2)
        rows.forget()
        assert rows.adopt(stored) is not hh

"""The hub's driver-level set look-ups and inserts (skipping existing keys), on both databases."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from jlis.clock import FixedClock
from jlis.db import transaction
from jlis.linkage.hub import sql
from jlis.linkage.hub.tables import HubCodeRow

_C = cast(Table, HubCodeRow.__table__)
COLUMNS = ("member_id", "code", "link", "issued_at")


def test_insert_rows_and_select_in_across_chunks(
    factory: sessionmaker[Session], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "CHUNK", 7)  # several statements per call
    now = clock.now()
    rows = [(m, f"{i:032X}", f"{i:032x}", now) for m in ("a-1", "b-2") for i in range(20)]
    with transaction(factory) as s:
        sql.insert_rows(s, _C, COLUMNS, rows[:25])
        # The second call skips the rows already there (the key decides), in the same transaction.
        sql.insert_rows(s, _C, COLUMNS, rows)
        sql.insert_rows(s, _C, COLUMNS, [])
    with transaction(factory) as s:
        sql.insert_rows(s, _C, COLUMNS, rows[30:] + rows[30:])  # again, and twice in one batch
        assert s.execute(select(func.count()).select_from(_C)).scalar_one() == len(rows)
    wanted = [f"{i:032X}" for i in (0, 3, 19, 25)]
    with factory() as s:
        found = sql.select_in(s, "SELECT member_id, code FROM linkage_hub_codes", "code", wanted)
        only_a = sql.select_in(
            s, "SELECT code, link FROM linkage_hub_codes", "code", wanted, equal=("member_id", "a-1")
        )
        assert sql.select_in(s, "SELECT code FROM linkage_hub_codes", "code", []) == []
        stored = s.execute(select(_C.c.issued_at).where(_C.c.code == wanted[0]).limit(1)).scalar_one()
    assert sorted(found) == sorted((m, c) for m in ("a-1", "b-2") for c in wanted[:3])
    assert sorted(only_a) == [(c, c.lower()) for c in wanted[:3]]
    assert stored == now  # the COPY text carries the instant, in UTC


def test_copy_text_refuses_what_it_cannot_carry() -> None:
    stamps: dict[dt.datetime, str] = {}
    at = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert sql._copy_text(at, stamps) == "2026-11-26T01:00:00+00:00"
    assert sql._copy_text(7, stamps) == "7"
    for bad in ("a\tb", "a\nb", "a\\b"):
        with pytest.raises(ValueError, match="plain COPY value"):
            sql._copy_text(bad, stamps)
    with pytest.raises(ValueError, match="aware"):
        sql._copy_text(dt.datetime(2026, 11, 26), stamps)

from __future__ import annotations

import pytest
from sqlalchemy import select

from jlis.audit import AuditLog
from jlis.bcl import register
from jlis.db import transaction
from jlis.errors import RuleViolation
from jlis.registry.tables import HistoryRow

from .conftest import CHIYODA, SHINJUKU, BclWorld


def test_export_pages_through_every_row_of_the_municipality_only(
    bcl_world: BclWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        bcl_world.person(CHIYODA, banchi=f"{i + 1}番1号")
    bcl_world.person(SHINJUKU)
    with bcl_world.factory() as s:
        whole = list(register.iter_rows(s, CHIYODA))
        monkeypatch.setattr(register, "EXPORT_CHUNK", 2)  # pages of two rows: the keyset paging
        monkeypatch.setattr(register, "HISTORY_CHUNK", 2)
        paged = list(register.iter_rows(s, CHIYODA))
        history = s.scalars(select(HistoryRow.id)).all()
    assert paged == whole
    assert [t for t, _ in whole].count("reg_residents") == 5
    assert all(r["lg_code"] == CHIYODA for t, r in whole if t != "reg_history")
    assert len([t for t, _ in whole if t == "reg_history"]) == len(history) - 1  # not Shinjuku's


def test_export_is_audited_once_and_the_digest_matches(bcl_world: BclWorld) -> None:
    bcl_world.person(CHIYODA)
    with transaction(bcl_world.factory) as s:
        with register.snapshot_reader(s) as reader:
            export = register.export_register(reader, CHIYODA)
        register.audit_export(
            s, export, at=bcl_world.clock.now(), actor="tester", action="export", purpose="backup",
            details={"why": "test"},
        )  # fmt: skip
        digest, counts = register.register_digest(s, CHIYODA)
    assert (digest, counts) == (export.sha256, export.counts)
    with bcl_world.factory() as s:
        [entry] = AuditLog("access").entries(s, since=bcl_world.clock.now())
    assert entry.action == "export" and entry.details["why"] == "test" and entry.details["residents"] == 1


def test_restore_rows_refuses_rows_of_another_municipality(bcl_world: BclWorld) -> None:
    bcl_world.person(SHINJUKU)
    with bcl_world.factory() as s:
        lines = [register.canonical_line(t, r) for t, r in register.iter_rows(s, SHINJUKU)]
    with pytest.raises(RuleViolation) as err, transaction(bcl_world.factory) as s:
        register.restore_rows(s, CHIYODA, lines, replace=True)
    assert err.value.field == "lg_code"


def test_the_table_of_a_line_is_read_without_decoding_even_with_tricky_values() -> None:
    line = register.canonical_line("reg_residents", {"alias": '"t":"reg_history"}', "id": 1})
    assert register.line_table(line) == "reg_residents"
    digest, counts = register.digest_lines([line, register.canonical_line("reg_history", {"id": 2})])
    assert counts == {"reg_residents": 1, "reg_history": 1} and len(digest) == 64

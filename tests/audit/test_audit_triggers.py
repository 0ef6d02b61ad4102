"""The append-only triggers: ordinary UPDATE and DELETE are refused; only the retention purge deletes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.audit import AuditLog
from jlis.audit.tables import APPEND_ONLY_DDL, APPEND_ONLY_DROP_DDL, AuditEntryRow
from jlis.clock import JST
from jlis.db import transaction

T0 = dt.datetime(2019, 4, 1, 9, 0, tzinfo=JST)


def fill(factory: sessionmaker[Session], n: int = 3, chain: str = "access") -> AuditLog:
    log = AuditLog(chain)
    with transaction(factory) as s:
        for i in range(n):
            log.append(s, at=T0, actor="staff:1", action="read", subject="12345678903", details={"i": i})
    return log


def test_update_is_refused(factory: sessionmaker[Session]) -> None:
    log = fill(factory)
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        s.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        s.execute(update(AuditEntryRow).values(details="{}"))
    with factory() as s:
        assert [e.actor for e in log.entries(s)] == ["staff:1"] * 3
    with transaction(factory) as s:
        assert log.verify(s).ok


def test_delete_is_refused(factory: sessionmaker[Session]) -> None:
    log = fill(factory)
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        s.execute(text("DELETE FROM audit_entries WHERE seq = 2"))
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        s.execute(delete(AuditEntryRow))
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        entry = s.get(AuditEntryRow, ("access", 1))
        s.delete(entry)
        s.flush()
    with factory() as s:
        assert len(log.entries(s)) == 3


def test_the_purge_gate_closes_with_its_transaction(factory: sessionmaker[Session]) -> None:
    log = fill(factory, 3)
    fill(factory, 2, chain="other")
    with transaction(factory) as s:
        assert log.purge_expired(s, now=T0.replace(year=2027)) == 3
    # Nothing left open: neither a PostgreSQL setting on the pooled connection nor an SQLite permit.
    for _ in range(3):  # the pool hands back connections the purge used
        with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
            s.execute(text("DELETE FROM audit_entries WHERE chain = 'other'"))
    with factory() as s:
        if s.get_bind().dialect.name == "sqlite":
            assert s.execute(text("SELECT count(*) FROM audit_purge_permit")).scalar() == 0
        assert len(AuditLog("other").entries(s)) == 2


def test_a_rolled_back_purge_leaves_no_gate_open(factory: sessionmaker[Session]) -> None:
    log = fill(factory, 3)
    with factory() as s:
        log.purge_expired(s, now=T0.replace(year=2027))
        s.rollback()
    with transaction(factory) as s:
        assert log.verify(s).checked == 3
    with transaction(factory) as s, pytest.raises(IntegrityError, match="append-only"):
        s.execute(text("DELETE FROM audit_entries"))


def test_sqlite_permit_covers_only_its_chain_and_prefix(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the permit table is SQLite's mechanism")
    factory = sessionmaker(engine)
    fill(factory, 3)
    fill(factory, 3, chain="other")
    with transaction(factory) as s:
        s.execute(text("INSERT INTO audit_purge_permit (chain, up_to_seq) VALUES ('access', 2)"))
        s.execute(text("DELETE FROM audit_entries WHERE chain = 'access' AND seq <= 2"))
        for sql in (
            "DELETE FROM audit_entries WHERE chain = 'access' AND seq = 3",
            "DELETE FROM audit_entries WHERE chain = 'other'",
        ):
            with pytest.raises(IntegrityError, match="append-only"), s.begin_nested():
                s.execute(text(sql))


def test_truncate_still_works_for_the_test_fixture(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    factory = sessionmaker(engine)
    fill(factory)
    with engine.connect() as conn:
        conn.execute(text("TRUNCATE audit_entries, audit_chain_heads"))
        conn.rollback()


def test_ddl_is_exposed_for_the_migration() -> None:
    assert set(APPEND_ONLY_DDL) == set(APPEND_ONLY_DROP_DDL) == {"sqlite", "postgresql"}
    for statements in APPEND_ONLY_DDL.values():
        for statement in statements:
            # Safe for DDL() (% formatting) and text()/op.execute() (":name" bind parameters).
            assert "%" not in statement and ":" not in statement

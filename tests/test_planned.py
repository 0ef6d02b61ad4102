"""Planned SQLite transactions (jlis.planned): writes recorded on a snapshot, replayed under the lock;
whatever cannot be deferred refuses the plan, and a replay that touches other rows than planned fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from jlis.db import make_engine
from jlis.planned import PlanningConnection, PlanRefused, ReplayMismatch, planning, replay


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        c.execute(text("CREATE TABLE u (n INTEGER)"))
        c.execute(text("INSERT INTO t VALUES (1, 'one'), (2, 'two')"))
    yield engine
    engine.dispose()


def _raw(conn: Connection) -> PlanningConnection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, PlanningConnection)
    return raw


def _rows(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text("SELECT k, v FROM t ORDER BY k"))]  # type: ignore[misc]


def test_writes_are_recorded_with_the_rows_they_claim_and_replayed_later(engine: Engine) -> None:
    with engine.connect() as c, planning(_raw(c)) as plan:
        assert c.execute(text("SELECT v FROM t WHERE k = 1")).scalar_one() == "one"  # reads run
        updated = c.execute(
            text("UPDATE t SET v = :v WHERE k = :k"), [{"v": "uno", "k": 1}, {"v": "dos", "k": 2}]
        )
        assert updated.rowcount == 2
        c.execute(text("INSERT INTO u VALUES (7)"))
        c.rollback()
    assert _rows(engine) == [(1, "one"), (2, "two")]  # nothing was written
    assert [w[0].split()[0] for w in plan.writes] == ["UPDATE", "INSERT"]
    with engine.begin() as c:
        replay(_raw(c), plan)
    assert _rows(engine) == [(1, "uno"), (2, "dos")]
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM u")).scalar_one() == 7
        assert c.execute(text("UPDATE t SET v = 'x' WHERE k = 99")).rowcount == 0  # not planning: real counts


def test_a_replay_that_touches_other_rows_fails(engine: Engine) -> None:
    with engine.connect() as c, planning(_raw(c)) as plan:
        c.execute(text("UPDATE t SET v = 'gone' WHERE k = 1"))
        c.rollback()
    with engine.begin() as c:
        c.execute(text("DELETE FROM t WHERE k = 1"))  # someone else's write between plan and replay
    with pytest.raises(ReplayMismatch, match="0 rows instead of 1"), engine.begin() as c:
        replay(_raw(c), plan)


@pytest.mark.parametrize(
    "statements",
    [
        ["INSERT INTO t (k, v) VALUES (3, 'three') RETURNING k"],
        ["UPDATE t SET v = 'x' WHERE k = 1", "SELECT v FROM t WHERE k = 1"],  # a read of a written table
    ],
)
def test_what_cannot_be_deferred_refuses_the_plan(engine: Engine, statements: list[str]) -> None:
    with engine.connect() as c, planning(_raw(c)), pytest.raises(PlanRefused):
        for sql in statements:
            c.execute(text(sql))
    assert _rows(engine) == [(1, "one"), (2, "two")]


def test_a_recorded_insert_has_no_row_id(engine: Engine) -> None:
    with engine.connect() as c, planning(_raw(c)):
        cursor = _raw(c).cursor()
        cursor.execute("INSERT INTO t (v) VALUES ('three')")
        with pytest.raises(PlanRefused, match="lastrowid"):
            _ = cursor.lastrowid


def test_a_plan_ends_with_its_block(engine: Engine) -> None:
    with engine.connect() as c:
        raw = _raw(c)
        with pytest.raises(ValueError), planning(raw):
            raise ValueError
        assert raw.plan is None
        c.execute(text("INSERT INTO u VALUES (1)"))
        c.commit()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM u")).scalar_one() == 1


def test_a_recorded_write_keeps_its_parameters_though_the_caller_reuses_them(engine: Engine) -> None:
    with engine.connect() as c, planning(_raw(c)) as plan:
        cursor = _raw(c).cursor()
        params = ["uno", 1]
        cursor.execute("UPDATE t SET v = ? WHERE k = ?", params)
        params[:] = ["dos", 2]
        cursor.execute("UPDATE t SET v = ? WHERE k = ?", params)
        c.rollback()
    with engine.begin() as c:
        replay(_raw(c), plan)
    assert _rows(engine) == [(1, "uno"), (2, "dos")]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT n FROM u",
        "SELECT v FROM t JOIN u ON u.n = t.k",
        "SELECT v FROM t AS x, u WHERE u.n = x.k",
        "SELECT v FROM t WHERE k IN (SELECT n FROM u)",
        "INSERT INTO u VALUES (5)",
        "DELETE FROM u",
        "UPDATE u SET n = 1",
    ],
)
def test_a_plan_limited_to_some_tables_refuses_a_statement_naming_another(engine: Engine, sql: str) -> None:
    with engine.connect() as c, planning(_raw(c), frozenset({"t"})) as plan:
        c.execute(text("SELECT v FROM t WHERE k = 1"))
        c.execute(text("INSERT INTO t (k, v) VALUES (3, 'three') ON CONFLICT (k) DO UPDATE SET v = 'x'"))
        with pytest.raises(PlanRefused, match="on u"):
            c.execute(text(sql))
    assert len(plan.writes) == 1


def test_guards_run_before_the_writes_and_a_failing_one_writes_nothing(engine: Engine) -> None:
    seen: list[str] = []
    with engine.connect() as c, planning(_raw(c)) as plan:
        c.execute(text("UPDATE t SET v = 'uno' WHERE k = 1"))
        c.rollback()

    def guard(raw: object) -> None:
        seen.append("guard")
        raise ReplayMismatch("what the plan read has changed")

    plan.guards["t"] = guard
    with pytest.raises(ReplayMismatch, match="has changed"), engine.begin() as c:
        replay(_raw(c), plan)
    assert seen == ["guard"]
    assert _rows(engine) == [(1, "one"), (2, "two")]


def test_a_rewound_plan_forgets_the_writes_after_its_mark(engine: Engine) -> None:
    with engine.connect() as c, planning(_raw(c)) as plan:
        c.execute(text("UPDATE t SET v = 'uno' WHERE k = 1"))
        mark = plan.mark()
        c.execute(text("UPDATE t SET v = 'dos' WHERE k = 2"))
        plan.rewind(mark)
        c.rollback()
    with engine.begin() as c:
        replay(_raw(c), plan)
    assert _rows(engine) == [(1, "uno"), (2, "two")]

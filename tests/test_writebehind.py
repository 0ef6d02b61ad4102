"""jlis.writebehind and Prepared.defer: a deferred write is in place for whatever the transaction
runs next, goes with the commit, goes nowhere on a rollback, and an error it raises fails the
transaction that made it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jlis.bulk import Bound, Prepared, bulk_insert_values
from jlis.clock import JST
from jlis.groupcommit import GroupCommit, _Job
from jlis.messaging.tables import OutboxRow
from jlis.writebehind import WriteBehindConnection, to_numbered

OUT = OutboxRow.__table__
COLUMNS = ("message_id", "source", "destination", "topic", "key", "payload", "created_at", "attempts")
AT = dt.datetime(2026, 11, 27, 9, 0, tzinfo=JST)
INSERT = Prepared(insert(OUT).inline(), keys=COLUMNS)
SET_TOPIC = Prepared(update(OUT).where(OUT.c.message_id == bindparam("m")).values(topic=bindparam("t")))
# Prepared statements raise the driver's error, SQLAlchemy's execution its own wrapping of it.
INTEGRITY = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)
TOPIC = Prepared(select(OUT.c.topic).where(OUT.c.message_id == bindparam("m")))
INSERT_ROW = (
    "INSERT INTO outbox (message_id, source, destination, topic, key, payload, created_at, attempts)"
    " VALUES (%s, 'a', 'b', 't', 'k', '{}', now(), 0)"
)


def message(i: int | str) -> dict[str, Any]:
    return {
        "message_id": f"m-{i}",
        "source": "a",
        "destination": "b",
        "topic": "t",
        "key": "k",
        "payload": "{}",
        "created_at": AT,
        "attempts": 0,
    }


def waiting(s: Session) -> int:
    """The writes waiting on the session's connection (0 where nothing waits: SQLite)."""
    return len(getattr(Bound.current(s).dbapi, "deferred", ()))


def count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(OUT)).scalar_one())


def test_a_deferred_write_is_in_place_for_every_kind_of_next_statement(
    factory: sessionmaker[Session],
) -> None:
    postgres = factory.kw["bind"].dialect.name == "postgresql"
    with factory() as s, s.begin():
        s.execute(text("SELECT 1"))  # begun (a write deferred before anything ran runs at once)
        INSERT.defer(s, message(1))
        assert waiting(s) == (1 if postgres else 0)
        assert TOPIC.first(s, {"m": "m-1"}) == ("t",)  # a prepared statement
        assert waiting(s) == 0
        SET_TOPIC.defer(s, {"m": "m-1", "t": "u"})
        SET_TOPIC.defer(s, {"m": "m-1", "t": "v"})  # in order: the last one wins
        assert s.execute(select(OUT.c.topic)).scalar_one() == "v"  # SQLAlchemy's own execution
        INSERT.defer(s, message(2))
        bulk_insert_values(s, OUT, COLUMNS, [tuple(message(3).values())])  # a COPY on PostgreSQL
        assert s.execute(select(func.count()).select_from(OUT)).scalar_one() == 3
    assert count(factory) == 3


def test_deferred_writes_go_with_the_commit_and_nowhere_on_a_rollback(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        s.execute(text("SELECT 1"))  # begun (a write deferred before anything ran runs at once)
        INSERT.defer(s, message(1))  # nothing runs after it but the commit
    assert count(factory) == 1
    with factory() as s, s.begin():
        s.execute(text("SELECT 1"))
        INSERT.defer(s, message(2))
        s.rollback()
    assert count(factory) == 1
    with factory() as s, s.begin():  # the connection the rollback returned holds nothing back
        assert waiting(s) == 0
        assert TOPIC.first(s, {"m": "m-2"}) is None


def test_a_deferred_write_that_fails_fails_its_transaction_whole(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        INSERT.defer(s, message(1))
    with pytest.raises(INTEGRITY), factory() as s, s.begin():
        s.execute(text("SELECT 1"))
        INSERT.defer(s, message(2))
        INSERT.defer(s, message(1))  # message_id is unique
        s.execute(select(func.count()).select_from(OUT)).scalar_one()  # raised here at the latest
    with pytest.raises(INTEGRITY), factory() as s, s.begin():
        s.execute(text("SELECT 1"))
        INSERT.defer(s, message(3))
        INSERT.defer(s, message(1))  # raised by the commit that sends it
    assert count(factory) == 1


def test_in_a_group_the_action_whose_write_fails_gets_the_error_and_the_others_are_written(
    factory: sessionmaker[Session],
) -> None:
    """On PostgreSQL a deferred write fails in the statement of a later action that sends it (here
    the next action's read); the group commit runs the group again in parts until the failing
    action runs alone. On SQLite it fails at once, in its own action."""
    with factory() as s, s.begin():
        INSERT.defer(s, message("taken"))
    desk = GroupCommit(factory, name="test-writebehind")

    def action(i: int) -> Any:
        def work(s: Session) -> Any:
            if i == 2:  # its write waits, and breaks a unique key when the next action sends it
                INSERT.defer(s, message("taken"))
                return None
            INSERT.defer(s, message(i))
            return TOPIC.first(s, {"m": f"m-{i}"})  # sends the writes waiting before it

        return work

    jobs = [_Job(action(i)) for i in range(5)]
    desk._run(jobs)  # one group
    assert isinstance(jobs[2].future.exception(), INTEGRITY)
    assert [jobs[i].future.result() for i in (0, 1, 3, 4)] == [("t",)] * 4
    with factory() as s:
        ids = set(s.execute(select(OUT.c.message_id)).scalars())
    assert ids == {"m-taken", "m-0", "m-1", "m-3", "m-4"}


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # SQLite runs a deferred write at once
def test_postgresql_connections_hold_writes_back_and_a_server_cursor_sends_them(engine: Engine) -> None:
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, WriteBehindConnection)
        _begun(raw).defer(INSERT_ROW, ("m-9",))
        assert len(raw.deferred) == 1
        with raw.cursor(name="jlis_test") as cur:  # a server cursor
            cur.execute("SELECT message_id FROM outbox")
            assert cur.fetchall() == [("m-9",)]
        assert raw.deferred == []
        raw.rollback()
        _begun(raw).defer("DELETE FROM outbox", None)
        assert len(raw.deferred) == 1
        raw.rollback()  # drops it
        assert raw.deferred == []
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        raw = conn.connection.driver_connection
        raw.defer("DELETE FROM outbox WHERE message_id = %s", ("m-9",))  # nothing would send it later
        assert raw.deferred == []


def test_placeholders_become_numbered_parameters() -> None:
    assert to_numbered("SELECT %(a)s, %(b)s, %(a)s WHERE x LIKE 'y%%'") == (
        b"SELECT $1, $2, $1 WHERE x LIKE 'y%'",
        ("a", "b"),
    )
    assert to_numbered("UPDATE t SET a = %s WHERE b = %s") == (b"UPDATE t SET a = $1 WHERE b = $2", 2)
    with pytest.raises(ValueError, match="mixes"):
        to_numbered("SELECT %(a)s, %s")


def _begun(raw: WriteBehindConnection) -> WriteBehindConnection:
    """``raw`` in a transaction (a write deferred before anything ran would run at once)."""
    raw.execute("SELECT 1")
    return raw


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_statement_sent_with_waiting_writes_sees_them_and_returns_its_rows(engine: Engine) -> None:
    with engine.connect() as conn:
        raw = _begun(conn.connection.driver_connection)
        raw.defer(INSERT_ROW, ("m-1",))
        raw.defer(INSERT_ROW, ("m-2",))
        sent = raw.send_deferred("SELECT message_id FROM outbox ORDER BY message_id", None)
        assert sent is not None and sent.rows == [("m-1",), ("m-2",)] and sent.rowcount == 2
        raw.defer("UPDATE outbox SET topic = %(t)s WHERE message_id = %(m)s", {"t": "u", "m": "m-1"})
        sent = raw.send_deferred("DELETE FROM outbox WHERE topic = %(t)s", {"t": "t"})
        assert sent is not None and sent.rows == [] and sent.rowcount == 1
        conn.rollback()


MINE = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_jlis\\_%'"


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_the_statements_prepared_here_outlive_psycopgs_deallocate_all(engine: Engine) -> None:
    """psycopg sends DEALLOCATE ALL when it clears its cache of prepared statements (after a
    rollback, a ROLLBACK TO SAVEPOINT, a DROP ...): this module's statements are prepared again."""
    factory = sessionmaker(engine)
    for round_ in range(3):
        with factory() as s, s.begin():
            for _ in range(7):  # psycopg prepares a statement it ran 5 times
                s.execute(select(func.count()).select_from(OUT)).scalar_one()
            INSERT.defer(s, message(f"{round_}"))
            assert TOPIC.first(s, {"m": f"m-{round_}"}) == ("t",)  # prepared by writebehind
            assert s.execute(text(MINE)).scalar_one() >= 2  # INSERT's and TOPIC's at least
            s.execute(text("SAVEPOINT before"))
            SET_TOPIC.defer(s, {"m": f"m-{round_}", "t": "gone"})
            s.execute(text("ROLLBACK TO SAVEPOINT before"))  # sends it, undoes it; psycopg deallocates all
            assert s.execute(text(MINE)).scalar_one() == 0
            INSERT.defer(s, message(f"{round_}-b"))
            assert TOPIC.first(s, {"m": f"m-{round_}-b"}) == ("t",)
            assert TOPIC.first(s, {"m": f"m-{round_}"}) == ("t",)
            s.rollback()  # and again
    assert count(factory) == 0


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_statement_dropped_behind_its_back_is_prepared_again_after_one_failed_transaction(
    engine: Engine,
) -> None:
    factory = sessionmaker(engine)
    with factory() as s, s.begin():
        s.execute(text("SELECT 1"))  # begun: the writes below wait, and TOPIC sends them
        INSERT.defer(s, message(1))
        assert TOPIC.first(s, {"m": "m-1"}) == ("t",)
    with pytest.raises(psycopg.errors.InvalidSqlStatementName), factory() as s, s.begin():
        s.execute(text("SELECT 1"))
        Bound.current(s).dbapi.pgconn.exec_(b"DEALLOCATE ALL")  # under psycopg: nobody is told
        INSERT.defer(s, message(2))
        TOPIC.first(s, {"m": "m-2"})
    with factory() as s, s.begin():
        s.execute(text("SELECT 1"))
        INSERT.defer(s, message(3))
        assert TOPIC.first(s, {"m": "m-3"}) == ("t",)
    assert count(factory) == 2


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_statement_with_a_bad_parameter_fails_where_it_is_made_and_sends_nothing(engine: Engine) -> None:
    with engine.connect() as conn:
        raw = _begun(conn.connection.driver_connection)
        raw.defer(INSERT_ROW, ("m-1",))
        with pytest.raises(KeyError):
            raw.defer("UPDATE outbox SET topic = %(t)s", {"topic": "u"})  # no "t"
        with pytest.raises(ValueError, match=r"takes 1 parameter\(s\), 2 given"):
            raw.send_deferred(INSERT_ROW, ("m-2", "x"))
        assert len(raw.deferred) == 1  # the first write still waits, and goes with the next statement
        assert conn.execute(text("SELECT message_id, topic FROM outbox")).all() == [("m-1", "t")]
        conn.rollback()


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_postgresql_sessions_run_in_utc(engine: Engine) -> None:
    """psycopg then reads a timestamptz in datetime.UTC, which UtcDateTime takes as it is."""
    with engine.connect() as c:
        assert c.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
        assert c.execute(text("SELECT now()")).scalar_one().tzinfo is dt.UTC

"""jlis.bulk: statements prepared once give what SQLAlchemy's own execution gives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from jlis.bulk import (
    Bound,
    Prepared,
    _binary_types,
    _iso_texts,
    _processed,
    _tuples,
    bulk_insert,
    bulk_insert_values,
    bulk_update,
    bulk_update_values,
)
from jlis.clock import JST
from jlis.db import UtcDateTime, make_engine
from jlis.messaging.tables import OutboxRow

OUT: Table = OutboxRow.__table__  # type: ignore[assignment]
COLUMNS = ("message_id", "source", "destination", "topic", "key", "payload", "created_at", "attempts")
INSERT = Prepared(insert(OUT).returning(OUT.c.seq), keys=COLUMNS)
INSERT_MANY = Prepared(insert(OUT).inline(), keys=COLUMNS)
BY_KEY = Prepared(
    select(OUT.c.message_id, OUT.c.created_at, OUT.c.attempts)
    .where(OUT.c.key == bindparam("k"))
    .order_by(OUT.c.seq)
)
FAILED = Prepared(update(OUT).where(OUT.c.key == bindparam("k")).values(attempts=5, last_error="x"))


def row(i: int, at: dt.datetime) -> dict[str, object]:
    return {
        "message_id": f"m-{i}",
        "source": "a",
        "destination": "b",
        "topic": "t",
        "key": "k1" if i < 3 else "k2",
        "payload": "{}",
        "created_at": at,
        "attempts": 0,
    }


def test_prepared_statements_bind_and_read_like_sqlalchemy(factory: sessionmaker[Session]) -> None:
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    with factory() as s, s.begin():
        (seq,) = INSERT.rows(s, row(0, at))[0]
        assert isinstance(seq, int)
        INSERT_MANY.run_many(s, [row(i, at) for i in (1, 2, 3)])
        found = BY_KEY.rows(s, {"k": "k1"})  # processed column by column (3 rows or more)
        assert [m for m, _, _ in found] == ["m-0", "m-1", "m-2"]
        assert BY_KEY.rows(s, {"k": "k2"}) == [("m-3", at, 0)]  # row by row
        # The UtcDateTime column comes back aware and equal, as through session.execute.
        assert all(a == at and a.tzinfo is not None for _, a, _ in found)
        assert found == [
            tuple(r)
            for r in s.execute(
                select(OUT.c.message_id, OUT.c.created_at, OUT.c.attempts)
                .where(OUT.c.key == "k1")
                .order_by(OUT.c.seq)
            )
        ]
        # Values written into the statement itself are bound too.
        assert FAILED.run(s, {"k": "k1"}) == 3
        assert BY_KEY.first(s, {"k": "k1"}) == ("m-0", at, 5)
        assert BY_KEY.first(s, {"k": "none"}) is None


def test_a_transaction_runs_its_statements_on_one_bound_and_one_cursor(
    factory: sessionmaker[Session],
) -> None:
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    with factory() as s:
        with s.begin():
            first = Bound.current(s)
            INSERT.rows(s, row(0, at))
            assert Bound.current(s) is first
            assert first.cursor is first.cursor
            assert BY_KEY.first(s, {"k": "k1"}) == ("m-0", at, 0)
            assert Bound.current(s).cursor is first.cursor
        # The next transaction has its own (its connection may be another one of the pool).
        with s.begin():
            second = Bound.current(s)
            assert second is not first
            assert BY_KEY.first(second, {"k": "k1"}) == ("m-0", at, 0)
        s.begin()
        third = Bound.current(s)
        s.rollback()
        assert Bound.current(s) is not third  # begins a new transaction
        s.rollback()


def test_a_savepoint_rolled_back_takes_back_what_prepared_statements_wrote_in_it(
    factory: sessionmaker[Session],
) -> None:
    """SQLAlchemy emits a savepoint's SAVEPOINT only when the session next uses its connection,
    and prepared statements do not go through the session: Bound.current takes the savepoint's
    Bound through it. Writes deferred inside the savepoint (PostgreSQL) go with it too."""
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    with factory() as s, s.begin():
        INSERT_MANY.run(s, row(0, at))
        outer = Bound.current(s)
        with pytest.raises(ValueError), s.begin_nested():
            INSERT_MANY.run(s, row(1, at))
            FAILED.defer(s, {"k": "k1"})
            raise ValueError("undo the savepoint")
        assert Bound.current(s) is not outer  # the savepoint's is gone: the transaction's again
        with s.begin_nested():
            INSERT_MANY.run(s, row(2, at))
        assert BY_KEY.rows(s, {"k": "k1"}) == [("m-0", at, 0), ("m-2", at, 0)]
    with factory() as s:
        assert BY_KEY.rows(s, {"k": "k1"}) == [("m-0", at, 0), ("m-2", at, 0)]


def test_updated_times_read_back_as_the_same_instant(factory: sessionmaker[Session]) -> None:
    """bulk_update_values writes times as SQLAlchemy would: on PostgreSQL through the JSON document
    (jlis.jsontext), with microseconds and the offset, whatever the value's own time zone."""
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    later = dt.datetime(2026, 11, 27, 6, 2, 59, 566265, tzinfo=JST)
    whole = dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)  # no microseconds
    with factory() as s, s.begin():
        INSERT_MANY.run_many(s, [row(i, at) for i in (0, 1)])
        cols = ("created_at", "message_id")
        assert bulk_update_values(s, OUT, ("message_id",), cols, [(later, "m-0"), (whole, "m-1")]) == 2
    with factory() as s:
        got = [tuple(r) for r in s.execute(select(OUT.c.message_id, OUT.c.created_at).order_by(OUT.c.seq))]
    assert got == [("m-0", later), ("m-1", whole)]


def test_expanding_parameters_are_refused(factory: sessionmaker[Session]) -> None:
    stmt = Prepared(select(OUT.c.seq).where(OUT.c.seq.in_(bindparam("seqs", expanding=True))))
    with factory() as s, pytest.raises(ValueError, match="expanding"):
        stmt.rows(s, {"seqs": [1]})


def test_rows_given_as_values_are_written_as_the_same_rows_as_dicts(factory: sessionmaker[Session]) -> None:
    at = dt.datetime(2026, 11, 26, 9, 30, 1, 5, tzinfo=JST)
    as_dicts = [row(i, at) for i in range(3)]
    as_values = [tuple(r[c] for c in COLUMNS) for r in (row(i, at) for i in range(3, 6))]
    with factory() as s, s.begin():
        assert bulk_insert(s, OUT, as_dicts) == 3
        assert bulk_insert_values(s, OUT, COLUMNS, as_values) == 3
        assert bulk_update(s, OUT, ("message_id",), [{"message_id": "m-0", "attempts": 2, "topic": "u"}]) == 1
        # The columns to set first, the keys last; values in that order.
        by_id = ("message_id",)
        assert bulk_update_values(s, OUT, by_id, ("attempts", "topic", "message_id"), [(3, "v", "m-4")]) == 1
        with pytest.raises(ValueError, match="must end with the keys"):
            bulk_update_values(s, OUT, by_id, ("message_id", "attempts"), [("m-1", 1)])
        with pytest.raises(LookupError, match="0 of 1 rows"):
            bulk_update_values(s, OUT, by_id, ("attempts", "message_id"), [(1, "m-9")])
    with factory() as s:
        got = s.execute(
            select(OUT.c.message_id, OUT.c.topic, OUT.c.attempts, OUT.c.created_at).order_by(OUT.c.seq)
        )
        assert [tuple(r) for r in got] == [
            ("m-0", "u", 2, at), ("m-1", "t", 0, at), ("m-2", "t", 0, at),
            ("m-3", "t", 0, at), ("m-4", "v", 3, at), ("m-5", "t", 0, at),
        ]  # fmt: skip


def test_bulk_rows_read_back_with_the_dates_and_times_sqlalchemy_writes(
    factory: sessionmaker[Session],
) -> None:
    """COPY on PostgreSQL gets datetimes as text made beforehand (jlis.bulk._iso_times):
    they read back as the same values as rows inserted through SQLAlchemy."""
    columns = ("id", "d", "naive", "aware", "utc")
    t = Table(
        "bulk_times",
        MetaData(),
        Column("id", String(8), primary_key=True),
        Column("d", Date),
        Column("naive", DateTime),
        Column("aware", DateTime(timezone=True)),
        Column("utc", UtcDateTime),
    )
    d, at = dt.date, dt.datetime
    odd = dt.timezone(dt.timedelta(hours=5, minutes=30, seconds=7))  # orjson would drop the seconds
    west = dt.timezone(-dt.timedelta(hours=5))
    values = [
        (d(999, 1, 2), at(2026, 11, 26, 9, 30), at(2026, 11, 26, 9, 30, 1, 5, tzinfo=JST)),
        (d(2026, 11, 26), at(1, 1, 1, 0, 0, 0, 1), at(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        (None, None, at(2026, 1, 2, 3, 4, 5, 6, tzinfo=odd)),
        (d(2026, 11, 26), at(2026, 11, 26, 9, 30), at(2026, 1, 2, tzinfo=west)),
    ]  # fmt: skip
    rows = [
        (f"{p}{i}", day, naive, aware, aware) for p in "ab" for i, (day, naive, aware) in enumerate(values)
    ]
    with factory() as s:
        t.create(s.connection())
        s.commit()
    try:
        with factory() as s, s.begin():
            assert bulk_insert_values(s, t, columns, [r for r in rows if r[0][0] == "a"]) == len(values)
            s.execute(insert(t), [dict(zip(columns, r, strict=True)) for r in rows if r[0][0] == "b"])
        with factory() as s:
            got = {r[0]: tuple(r[1:]) for r in s.execute(select(t))}
        for i, (day, _naive, aware) in enumerate(values):
            assert got[f"a{i}"] == got[f"b{i}"]
            assert got[f"a{i}"][0] == day and got[f"a{i}"][3] == aware
    finally:
        with factory() as s:
            t.drop(s.connection())
            s.commit()


def _kinds_table() -> Table:
    return Table(
        "bulk_kinds",
        MetaData(),
        Column("id", String(8), primary_key=True),
        Column("name", String(20)),
        Column("note", Text, nullable=True),
        Column("n", Integer, nullable=True),
        Column("big", BigInteger),
        Column("flag", Boolean),
        Column("d", Date, nullable=True),
        Column("at", UtcDateTime),
        Column("zoned", DateTime(timezone=True), nullable=True),
        Column("blob", LargeBinary, nullable=True),
    )


WEST = dt.timezone(-dt.timedelta(hours=5))
KINDS = ("id", "name", "note", "n", "big", "flag", "d", "at", "zoned", "blob")


@pytest.fixture
def kinds(factory: sessionmaker[Session]) -> Iterator[Table]:
    t = _kinds_table()
    with factory() as s:
        t.create(s.connection())
        s.commit()
    yield t
    with factory() as s:
        t.drop(s.connection())
        s.commit()


def _written_both_ways(
    factory: sessionmaker[Session], t: Table, values: list[tuple[Any, ...]]
) -> dict[str, Any]:
    """Each row written by bulk_insert_values (ids "a…") and through SQLAlchemy (ids "b…"), read back."""
    with factory() as s, s.begin():
        bulk_insert_values(s, t, KINDS, [(f"a{i}", *v) for i, v in enumerate(values)])
        s.execute(insert(t), [dict(zip(KINDS, (f"b{i}", *v), strict=True)) for i, v in enumerate(values)])
    with factory() as s:
        return {r[0]: tuple(r[1:]) for r in s.execute(select(t))}


def test_rows_of_plain_types_go_in_binary_and_read_back_as_sqlalchemy_writes_them(
    factory: sessionmaker[Session], kinds: Table
) -> None:
    """On PostgreSQL a COPY whose columns all have a plain binary form goes in binary: the rows read
    back as the same values as rows inserted through SQLAlchemy (zones converted, NULLs, kana,
    escapes, the ends of the integer ranges)."""
    at = dt.datetime(2026, 11, 26, 9, 30, 1, 5, tzinfo=JST)
    values = [
        ("山田\u3000太郎", "a\tb\nc\\d", 2**31 - 1, 2**63 - 1, True, dt.date(999, 1, 2), at, at, b"\x00\xff"),
        ("ヤマダ", None, None, -(2**63), False, None, at.astimezone(dt.UTC), None, None),
        ("", "", 0, 0, False, dt.date(2026, 2, 28), at, at.astimezone(WEST), b""),
    ]  # fmt: skip
    with factory() as s:
        dialect = s.get_bind().dialect
    if dialect.name == "postgresql":
        assert _binary_types(dialect, kinds, KINDS) is not None
    got = _written_both_ways(factory, kinds, values)
    for i, v in enumerate(values):
        assert got[f"a{i}"] == got[f"b{i}"]
        assert got[f"a{i}"][:6] == v[:6] and got[f"a{i}"][6] == at


def test_a_naive_time_in_a_zoned_column_goes_in_text_as_before(
    factory: sessionmaker[Session], kinds: Table
) -> None:
    """A naive datetime in a ``timestamptz`` column has no binary form (psycopg refuses it): the
    COPY goes in text, where PostgreSQL reads it in the session's zone, as through SQLAlchemy."""
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    values = [("x", None, 1, 1, True, None, at, dt.datetime(2026, 11, 26, 9, 30), None)]
    got = _written_both_ways(factory, kinds, values)
    assert got["a0"] == got["b0"]


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_value_of_another_type_than_its_column_is_named(
    factory: sessionmaker[Session], kinds: Table
) -> None:
    """Binary COPY takes each value as its column's type: a string in an integer column fails the
    transaction with the table and column named, and nothing is written."""
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    good = ("a0", "x", None, 1, 1, True, None, at, None, None)
    bad = ("a1", "x", None, "2", 1, True, None, at, None, None)
    wrong = r"bulk_kinds\.n: '2' is not a value of the column's type \(int4\)"
    with factory() as s, pytest.raises(TypeError, match=wrong), s.begin():
        bulk_insert_values(s, kinds, KINDS, [good, bad])
    with factory() as s:
        assert s.execute(select(func.count()).select_from(kinds)).scalar_one() == 0


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_an_error_of_the_driver_is_not_taken_for_a_wrong_value(
    factory: sessionmaker[Session], kinds: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a value of another type than its column's is reported as such: any other error of the
    COPY (the connection, the server) comes out as it was raised."""
    import psycopg

    def broken(self: Any, row: Any) -> None:
        raise psycopg.OperationalError("the connection is gone")

    monkeypatch.setattr(psycopg.Copy, "write_row", broken)
    at = dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)
    with factory() as s, pytest.raises(psycopg.OperationalError, match="gone"), s.begin():
        bulk_insert_values(s, kinds, KINDS, [("a0", "x", None, 1, 1, True, None, at, None, None)])


def test_an_update_never_cuts_a_value_to_its_column(factory: sessionmaker[Session]) -> None:
    """PostgreSQL's update casts each column's text to the column's type without a length (an
    explicit cast to VARCHAR(n) cuts silently): a value too long is refused by the column, and a
    key too long matches nothing, where cut it could match another row."""
    key = "m" * 36  # as long as the column
    with factory() as s, s.begin():
        bulk_insert(s, OUT, [row(0, dt.datetime(2026, 11, 26, 9, 30, tzinfo=JST)) | {"message_id": key}])
    too_long = "x" * 65
    postgres = s.get_bind().dialect.name == "postgresql"
    by_id = ("message_id",)
    with factory() as s, s.begin(), pytest.raises(LookupError, match="0 of 1 rows"):
        bulk_update_values(s, OUT, by_id, ("attempts", "message_id"), [(1, key + "x")])
    with factory() as s:
        if postgres:
            with pytest.raises(DataError, match="too long"), s.begin():
                bulk_update_values(s, OUT, by_id, ("topic", "message_id"), [(too_long, key)])
        else:  # SQLite keeps a text whole whatever the declared length
            with s.begin():
                bulk_update_values(s, OUT, by_id, ("topic", "message_id"), [(too_long, key)])
    with factory() as s:
        assert s.execute(select(OUT.c.topic, OUT.c.attempts)).one() == ("t" if postgres else too_long, 0)


def test_iso_texts_leave_what_orjson_would_write_inexactly_to_the_driver() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=JST)
    lmt = dt.datetime(1800, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=9, minutes=18, seconds=59)))
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert _iso_texts([None, dt.date(2026, 1, 2), at, naive, lmt, "x"]) == [
        None, "2026-01-02", "2026-01-02T03:04:05.000006+09:00", "2026-01-02T03:04:05", lmt, "x",
    ]  # fmt: skip
    only = ["x", None]
    assert _iso_texts(only) is only


def test_sqlite_values_are_what_the_bind_processors_make() -> None:
    """bulk's SQLite fast paths (dates by isoformat, a column's distinct values converted once, None
    left as it is) give the processors' text."""
    dialect = make_engine("sqlite://").dialect
    columns = ("d", "at", "j", "s")
    t = Table(
        "t", MetaData(), *(Column(c, k) for c, k in zip(columns, (Date, DateTime, JSON, String), strict=True))
    )
    at = dt.datetime(2026, 11, 26, 9, 30, 1, 5)
    rows = [
        {"d": dt.date(999, 1, 2), "at": at, "j": {"a": [1]}, "s": "x"},
        {"d": dt.datetime(2026, 1, 2, 3, 4), "at": None, "j": {"a": [1]}, "s": None},  # unhashable JSON
        {"d": None, "at": at, "j": None, "s": "y"},
        {"d": dt.date(2026, 11, 26), "at": at, "j": [], "s": "z"},
    ]
    procs = {c: t.c[c].type._cached_bind_processor(dialect) for c in columns}
    expected = [
        tuple(r[c] if r[c] is None or procs[c] is None else procs[c](r[c]) for c in columns) for r in rows
    ]
    assert _processed(dialect, t, columns, _tuples(columns, rows)) == expected
    assert expected[0][0] == "0999-01-02" and expected[1][0] == "2026-01-02"

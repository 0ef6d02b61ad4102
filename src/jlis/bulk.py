"""The fastest correct path per driver: bulk loading for seeding and initial migration (初期移行),
and statements prepared once for the hot paths (:class:`Prepared`).

On PostgreSQL rows go through ``COPY ... FROM STDIN`` (psycopg 3); elsewhere through a Core
``executemany``. Either way they land in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Date, DateTime, Enum, String, Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from jlis import jsontext
from jlis.db import UtcDateTime


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows (dicts with the same keys) in the caller's transaction."""
    if not rows:
        return 0
    columns = list(rows[0].keys())
    return bulk_insert_values(session, table, columns, _tuples(columns, rows))


def bulk_insert_values(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> int:
    """:func:`bulk_insert` of rows given as values in ``columns`` order: for a caller that would
    otherwise build a dict per row only for it to be taken apart here."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, table, tuple(columns), rows)
    else:
        # The DBAPI's executemany with each column's own bind processor applied: the same values
        # SQLAlchemy would send, without its per-row parameter machinery (3x faster).
        conn = session.connection()
        marks = ", ".join("?" for _ in columns)
        quoted = ", ".join(f'"{c}"' for c in columns)
        values = _processed(conn.dialect, table, columns, rows)
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', values)
    return len(rows)


def _copy(session: Session, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """``COPY ... FROM STDIN``: in PostgreSQL's binary format when every column is of a type whose
    binary form psycopg writes from the Python value alone (:func:`_binary_types`), in text
    otherwise. psycopg's binary dumpers cost a third of its text ones (which look for characters
    to escape in every string, and format every date): measured on a history row of the relay,
    ~5 µs → ~2 µs of the client's CPU, the server's the same."""
    conn = session.connection()
    dbapi = conn.connection.driver_connection  # psycopg.Connection
    quoted = ", ".join(f'"{c}"' for c in columns)
    binary = _binary_types(conn.dialect, table, columns)
    with dbapi.cursor() as cur:  # type: ignore[union-attr]
        if binary is not None and _binary_values(binary, rows):
            with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types(binary)
                for row in rows:
                    try:
                        copy.write_row(row)
                    except Exception as exc:
                        wrong = _wrong_type(table, columns, binary, row)
                        if wrong is None:  # not the row's values: the driver's or the server's error
                            raise
                        raise wrong from exc
            return
        times = _iso_times(table, columns, rows)
        with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
            if not times:
                for row in rows:
                    copy.write_row(row)
            else:
                for row in rows:
                    line = list(row)  # freed at once: a batch of new rows held whole wakes the GC
                    for i, texts in times:
                        line[i] = next(texts)
                    copy.write_row(line)


# PostgreSQL types (as SQLAlchemy compiles them, without a length) whose binary COPY form psycopg
# writes from a value of the Python types beside them; a timestamp only with its zone (a naive
# one would be read in the session's zone as text, and psycopg refuses it in binary).
_BINARY = {
    "VARCHAR": ("text", (str,)),
    "TEXT": ("text", (str,)),
    "INTEGER": ("int4", (int,)),
    "BIGINT": ("int8", (int,)),
    "SMALLINT": ("int2", (int,)),
    "BOOLEAN": ("bool", (bool,)),
    "DATE": ("date", (dt.date,)),
    "TIMESTAMP WITH TIME ZONE": ("timestamptz", (dt.datetime,)),
    "BYTEA": ("bytea", (bytes, bytearray, memoryview)),
}


@functools.lru_cache(maxsize=256)
def _binary_types(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, ...] | None:
    """The psycopg type of each of ``columns`` for a binary COPY, or None when one has no plain
    binary form here (JSON, a timestamp without zone, an array...): the COPY is then in text."""
    names = []
    for c in columns:
        compiled = str(table.c[c].type.compile(dialect=dialect)).split("(")[0].strip()
        if compiled not in _BINARY:
            return None
        names.append(_BINARY[compiled][0])
    return tuple(names)


_TZINFO = operator.attrgetter("tzinfo")


def _binary_values(types: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> bool:
    """Whether every time of ``rows`` in a timestamptz column is an aware datetime or None (a
    naive one or a date goes in text, as PostgreSQL reads it there)."""
    for i, name in enumerate(types):
        if name == "timestamptz":
            try:
                if None in map(_TZINFO, [v for row in rows if (v := row[i]) is not None]):
                    return False
            except AttributeError:
                return False
    return True


def _wrong_type(
    table: Table, columns: tuple[str, ...], types: tuple[str, ...], row: Sequence[Any]
) -> TypeError | None:
    """The error naming the first value of ``row`` not of its column's type, if there is one."""
    expected = {name: kinds for name, kinds in _BINARY.values()}
    for column, name, value in zip(columns, types, row, strict=True):
        if value is not None and not isinstance(value, expected[name]):
            return TypeError(f"{table.name}.{column}: {value!r} is not a value of the column's type ({name})")
    return None


@functools.lru_cache(maxsize=256)
def _time_columns(table: Table, columns: tuple[str, ...]) -> tuple[int, ...]:
    """The positions of ``columns`` that hold datetimes (psycopg's C dumper of a date costs about
    what orjson's text and its bookkeeping would)."""
    return tuple(i for i, c in enumerate(columns) if table.c[c].type._type_affinity is DateTime)


def _iso_times(
    table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[tuple[int, Iterator[Any]]]:
    """For COPY, each datetime column of ``rows`` (its position, and its values in order) with its
    datetimes already ISO 8601 text, made by orjson: psycopg's dumper takes ~1 µs a datetime
    (``isoformat`` with the offset), most of the cost of a relay's history row; orjson ~0.1 µs.
    COPY reads the text as it would have read psycopg's: an aware time with its offset, a naive
    one without."""
    return [(i, iter(_iso_texts([row[i] for row in rows]))) for i in _time_columns(table, columns)]


# Time zones whose offset orjson writes exactly: none, or a fixed offset in whole minutes. orjson
# drops an offset's seconds (a zone's local mean time before 1888, +09:18:59 in Tokyo); values in
# such zones, or in zones whose offset changes (zoneinfo), are left to psycopg.
_EXACT_ZONES: dict[Any, bool] = {None: True}


def _exact_zone(tz: Any) -> bool:
    exact = _EXACT_ZONES.get(tz)
    if exact is None:
        offset = tz.utcoffset(None) if isinstance(tz, dt.timezone) else None
        exact = _EXACT_ZONES[tz] = offset is not None and offset % dt.timedelta(minutes=1) == dt.timedelta(0)
    return exact


def _iso_texts(values: Sequence[Any]) -> Sequence[Any]:
    """The dates and datetimes among ``values`` as orjson's ISO 8601 text (those in a zone orjson
    writes exactly), the rest as they are."""
    date, datetime = dt.date, dt.datetime
    mine = [type(v) is date or (type(v) is datetime and _exact_zone(v.tzinfo)) for v in values]
    present = [v for v, m in zip(values, mine, strict=True) if m]
    if not present:
        return values
    texts = iter(orjson.dumps(present)[2:-2].decode().split('","'))
    return [next(texts) if m else v for v, m in zip(values, mine, strict=True)]


def _tuples(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    get = itemgetter(*columns)
    return list(map(get, rows)) if len(columns) > 1 else [(get(row),) for row in rows]


def bulk_update(session: Session, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> int:
    """Set the other columns of each row where its ``keys`` columns match, in the caller's
    transaction. Rows have the same columns; each must match exactly one row (a unique key), or
    ``LookupError`` is raised (the caller's transaction then rolls back). See
    :func:`bulk_update_values` for how."""
    if not rows:
        return 0
    columns = [c for c in rows[0] if c not in keys] + list(keys)
    return bulk_update_values(session, table, keys, columns, _tuples(columns, rows))


def bulk_update_values(
    session: Session,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> int:
    """:func:`bulk_update` of rows given as values in ``columns`` order, the columns to set first
    and the ``keys`` last (in their order).

    PostgreSQL: one statement. Each column travels as one JSON array (``json_array_elements_text``
    in ``ROWS FROM`` zips them back into rows; psycopg's array dumper, in Python, cost more than
    the update, and an array of objects repeats every key in every row). The keys are found by
    index seeks (a LATERAL subquery per key, not flattened), then the rows by their ``ctid``: a
    plain ``UPDATE ... FROM`` gets a hash join over the whole table while its statistics are young.
    A row changed concurrently between the seek and the update would be skipped (its ctid moved):
    the count check turns that into an error. Elsewhere: a raw executemany."""
    if not rows:
        return 0
    sets = list(columns[: len(columns) - len(keys)])
    if list(columns[len(sets) :]) != list(keys) or set(sets) & set(keys):
        raise ValueError(f"{table.name}: the columns must end with the keys {list(keys)}: {list(columns)}")
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        by_column = _processed_columns(conn.dialect, table, columns, rows)
        result = conn.exec_driver_sql(
            _update_by_columns(conn.dialect, table, tuple(keys), tuple(columns)),
            tuple(jsontext.dumps(list(values)) for values in by_column),
        )
    else:
        assign = ", ".join(f'"{c}" = ?' for c in sets)
        match = " AND ".join(f'"{k}" = ?' for k in keys)
        values = _processed(conn.dialect, table, columns, rows)
        result = conn.exec_driver_sql(f'UPDATE "{table.name}" SET {assign} WHERE {match}', values)
    if result.rowcount != len(rows):
        raise LookupError(f"{table.name}: {result.rowcount} of {len(rows)} rows to update were found")
    return len(rows)


@functools.lru_cache(maxsize=256)
def _update_by_columns(
    dialect: Dialect, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> str:
    """PostgreSQL's statement of :func:`bulk_update_values`: one JSON array parameter per column."""

    def typed(side: str, c: str) -> str:  # the arrays give text: each value cast to its column's type
        return f'CAST({side}."{c}" AS {_cast_type(dialect, table.c[c].type)})'

    arrays = ", ".join("json_array_elements_text(CAST(%s AS json))" for _ in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    assign = ", ".join(f'"{c}" = {typed("v", c)}' for c in columns if c not in keys)
    seek = " AND ".join(f'x."{k}" = {typed("k", k)}' for k in keys)
    return (
        f'UPDATE "{table.name}" AS t SET {assign} FROM (SELECT k.*, f.ctid AS tid '
        f"FROM ROWS FROM ({arrays}) AS k({names}) CROSS JOIN LATERAL "
        f'(SELECT x.ctid FROM "{table.name}" AS x WHERE {seek} OFFSET 0) AS f) '
        "AS v WHERE t.ctid = v.tid"
    )


def _cast_type(dialect: Dialect, type_: Any) -> str:
    """The type to cast a text value to for a column of ``type_``: a string without its length, as
    an explicit cast to ``VARCHAR(n)`` cuts a longer value silently (the column's own length is
    checked on assignment, and a cut key could match another row)."""
    if isinstance(type_, String) and not isinstance(type_, Enum) and type_.length is not None:
        type_ = String()
    return str(type_.compile(dialect=dialect))


def _processed(
    dialect: Dialect, table: Table, columns: Sequence[str], raw: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    """Rows of values in ``columns`` order through the columns' bind processors (see
    :func:`_processed_columns`)."""
    if not raw or not any(_bind_processor(dialect, table.c[c].type) for c in columns):
        return raw
    return list(zip(*_processed_columns(dialect, table, columns, raw), strict=True))


def _bind_processor(dialect: Dialect, type_: Any) -> Any:
    return type_._cached_bind_processor(dialect)


def _processed_columns(
    dialect: Dialect, table: Table, columns: Sequence[str], raw: Sequence[Sequence[Any]]
) -> list[Any]:
    """The values of rows in ``columns`` order, column by column, through the columns' bind
    processors (a processor mapped over a column runs in C's loop, not in a Python loop per row
    and value), each distinct value of a column once."""
    by_column: list[Any] = list(zip(*raw, strict=True))
    for i, c in enumerate(columns):
        type_ = table.c[c].type
        p = _bind_processor(dialect, type_)
        if p is None:
            continue
        p = _value_processor(type_, p)
        column = by_column[i]
        if isinstance(type_, DateTime):
            # Equal datetimes in different zones are one key, but a plain DateTime writes each
            # one's own wall time on SQLite (UtcDateTime, a TypeDecorator, writes the one instant).
            by_column[i] = list(map(p, column))
            continue
        try:
            distinct = dict.fromkeys(column)
        except TypeError:  # unhashable values (JSON): each converted
            by_column[i] = list(map(p, column))
            continue
        if len(distinct) == len(column):
            by_column[i] = list(map(p, column))
        else:  # a batch's time or date: converted once
            by_column[i] = list(map(dict(zip(distinct, map(p, distinct), strict=True)).__getitem__, column))
    return by_column


_SQLITE_DATE_FORMAT = "%(year)04d-%(month)02d-%(day)02d"


def _value_processor(type_: Any, proc: Any) -> Any:
    """A column's bind processor ``proc`` as :func:`_processed` applies it, on SQLite and to
    PostgreSQL's JSON rows: a function that leaves None as it is; for a plain ``Date`` stored in
    SQLite's default format, the same text from ``date.isoformat`` (C, where SQLAlchemy's processor
    formats a dict in Python). SQLAlchemy's Date processor and UtcDateTime's pass None through
    already. (On PostgreSQL only UtcDateTime has a processor: psycopg takes dates and times.)"""
    if type(type_) is Date and getattr(type_, "_storage_format", None) in (None, _SQLITE_DATE_FORMAT):
        date = dt.date

        def iso(value: Any) -> Any:
            return value.isoformat() if type(value) is date else proc(value)

        return iso
    if isinstance(type_, UtcDateTime):
        return proc

    def unless_none(value: Any) -> Any:
        return None if value is None else proc(value)

    return unless_none


def bump_sequence(session: Session, table: Table, column: str = "id") -> None:
    """After rows were written with explicit ids, move PostgreSQL's sequence past them. Never back:
    ids it handed out may be reserved and not yet written (registry.store.HouseholdIds)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    seq = f"pg_get_serial_sequence('{table.name}', '{column}')"
    session.execute(
        text(
            f'SELECT setval({seq}, GREATEST(COALESCE((SELECT MAX({column}) FROM "{table.name}"), 0), '
            f"COALESCE(pg_sequence_last_value({seq}::regclass), 0)) + 1, false)"
        )
    )


class Bound:
    """A session's connection as the driver sees it (its dialect and DBAPI connection), taken once
    for a run of prepared statements: ``Session.connection()`` costs more than a short statement.
    :meth:`current` keeps one per session transaction, so the actions of a group share it."""

    __slots__ = ("_cursor", "dbapi", "dialect")

    def __init__(self, session: Session) -> None:
        conn = session.connection()  # begins the session's transaction if needed, as execute would
        self.dialect: Dialect = conn.dialect
        self.dbapi: Any = conn.connection.driver_connection
        self._cursor: Any = None

    @classmethod
    def of(cls, dialect: Dialect, dbapi: Any) -> Bound:
        """A driver connection already in hand (a planned transaction's replay), without a session."""
        bound = cls.__new__(cls)
        bound.dialect, bound.dbapi, bound._cursor = dialect, dbapi, None
        return bound

    @classmethod
    def current(cls, session: Session) -> Bound:
        """The Bound of ``session``'s transaction (beginning one if needed): made once per
        transaction, and once per savepoint (``begin_nested``). A session holds one connection
        for the whole of a transaction; a savepoint's Bound is taken through the session, which
        emits its SAVEPOINT: SQLAlchemy emits it only when the session next uses its connection,
        and a prepared statement does not go through the session, so without it a rollback of
        the savepoint would keep what they wrote."""
        transaction = session.get_nested_transaction() or session.get_transaction()
        held: tuple[Any, Bound] | None = session.info.get(_BOUND_KEY)
        if held is not None and transaction is not None and held[0] is transaction:
            return held[1]
        bound = cls(session)
        session.info[_BOUND_KEY] = (transaction or session.get_transaction(), bound)  # begun by now
        return bound

    @classmethod
    def of_session(cls, on: Session | Bound) -> Bound:
        """``on`` itself, or the Bound of its session's transaction."""
        return on if isinstance(on, Bound) else cls.current(on)

    def send_with_deferred(self, sql: str, params: Any) -> Any:
        """On a connection with writes waiting (jlis.writebehind), send them and this statement
        in one pipeline and return what it sent back (``rows``, ``rowcount``); otherwise None,
        and the caller runs the statement on :attr:`cursor`."""
        dbapi = self.dbapi
        if getattr(dbapi, "deferred", None):
            return dbapi.send_deferred(sql, params)
        return None

    @property
    def cursor(self) -> Any:
        """One driver cursor for every statement run through this Bound: psycopg's cursor costs
        more to make than a short statement's parameters. Each statement's rows are fetched whole
        before the next runs."""
        cur = self._cursor
        if cur is None:
            cur = self._cursor = self.dbapi.cursor()
        return cur


_BOUND_KEY = "jlis.bulk.bound"  # Session.info: (the transaction, its Bound)


class Prepared:
    """A Core statement compiled once per dialect and run straight on the driver's cursor, with the
    same bind and result processing SQLAlchemy would apply (so values and types are exactly what
    ``session.execute`` would send and return). For the hot paths of the counter and the relay,
    where SQLAlchemy's per-execution machinery (~50 µs) costs more than the statement itself.
    PostgreSQL (psycopg) prepares a statement on the server once it has run a few times.

    Runs inside the caller's transaction, on a ``Session`` or on a :class:`Bound` taken from it.
    No expanding (``IN``) parameters: keys go through jlis.keyset instead."""

    def __init__(self, statement: Any, *, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._keys = list(keys) if keys is not None else None  # column keys of an INSERT
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _Plan(self.statement, dialect, self._keys)
        return plan

    def rows(self, on: Session | Bound, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute and return every result row (result processors applied)."""
        b = Bound.of_session(on)
        plan = self._plan(b.dialect)
        bound = plan.bind(params or {})
        sent = b.send_with_deferred(plan.sql, bound)
        if sent is not None:
            fetched = sent.rows
        else:
            cur = b.cursor
            cur.execute(plan.sql, bound)
            fetched = cur.fetchall()
        procs = plan.result
        if not procs:
            return [tuple(r) for r in fetched]
        if len(fetched) < 3:
            return [tuple(r[i] if p is None else p(r[i]) for i, p in enumerate(procs)) for r in fetched]
        # Many rows (a relay round's keyset reads): column by column, each processor mapped in C.
        columns: list[Any] = list(zip(*fetched, strict=True))
        for i, p in enumerate(procs):
            if p is not None:
                columns[i] = map(p, columns[i])
        return list(zip(*columns, strict=True))

    def first(self, on: Session | Bound, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        found = self.rows(on, params)
        return found[0] if found else None

    def run(self, on: Session | Bound, params: dict[str, Any]) -> int:
        """Execute a statement without result rows; return the row count."""
        b = Bound.of_session(on)
        plan = self._plan(b.dialect)
        bound = plan.bind(params)
        sent = b.send_with_deferred(plan.sql, bound)
        if sent is not None:
            return sent.rowcount
        cur = b.cursor
        cur.execute(plan.sql, bound)
        return int(cur.rowcount)

    def defer(self, on: Session | Bound, params: dict[str, Any]) -> None:
        """Execute a write whose row count and errors the caller does not need at once: on
        PostgreSQL it goes to the server with the transaction's next statement or its commit, in
        one pipeline (jlis.writebehind); elsewhere it runs now."""
        b = Bound.of_session(on)
        defer = getattr(b.dbapi, "defer", None)
        if defer is None:
            self.run(b, params)
        else:
            plan = self._plan(b.dialect)
            defer(plan.sql, plan.bind(params))

    def run_many(self, on: Session | Bound, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        b = Bound.of_session(on)
        plan = self._plan(b.dialect)
        b.cursor.executemany(plan.sql, [plan.bind(p) for p in rows])


class _Plan:
    """One statement for one dialect: its SQL text, how to bind a parameter dict, how to read a row."""

    def __init__(self, statement: Any, dialect: Dialect, keys: list[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a prepared statement takes no expanding or literal parameters")
        self.sql: str = compiled.string
        # The parameters as rendered in the SQL text, by name.
        binds = {name: b for b, name in compiled.bind_names.items()}
        self.names: list[str] | None = list(compiled.positiontup) if compiled.positional else None
        self.procs: dict[str, Any] = {
            name: p for name, b in binds.items() if (p := b.type._cached_bind_processor(dialect)) is not None
        }
        self.order: list[tuple[str, Any]] | None = (
            None if self.names is None else [(n, self.procs.get(n)) for n in self.names]
        )
        # Values written into the statement (``status == "active"``, ``.values(status="used")``).
        self.fixed: dict[str, Any] = {
            name: b.effective_value
            for name, b in binds.items()
            if not b.required and name not in (keys or ())
        }
        if getattr(statement, "is_select", False):
            columns = list(statement.selected_columns)
        else:
            columns = list(getattr(statement, "_returning", ()))
        self.result: list[Any] = [c.type._cached_result_processor(dialect, None) for c in columns]
        if all(p is None for p in self.result):
            self.result = []

    def bind(self, params: dict[str, Any]) -> Any:
        """The driver's parameters: a list in placeholder order (SQLite) or a dict (psycopg)."""
        if self.fixed:
            params = self.fixed | params
        if self.order is not None:
            out = []
            for name, proc in self.order:
                value = params[name]
                out.append(value if proc is None or value is None else proc(value))
            return out
        procs = self.procs
        if procs:
            return {k: (procs[k](v) if v is not None and k in procs else v) for k, v in params.items()}
        return params

"""Bulk loading for seeding and initial migration (初期移行): the fastest correct path per driver.

On PostgreSQL rows go through ``COPY ... FROM STDIN`` (psycopg 3); elsewhere through a Core
``executemany``. Either way they land in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        columns = list(rows[0].keys())
        conn = session.connection().connection.driver_connection  # psycopg.Connection
        quoted = ", ".join(f'"{c}"' for c in columns)
        with conn.cursor() as cur, cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([row[c] for c in columns])
    else:
        # The DBAPI's executemany with each column's own bind processor applied: the same values
        # SQLAlchemy would send, without its per-row parameter machinery (3x faster).
        conn = session.connection()
        columns = list(rows[0].keys())
        marks = ", ".join("?" for _ in columns)
        quoted = ", ".join(f'"{c}"' for c in columns)
        values = _sqlite_values(conn.dialect, table, columns, rows)
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', values)
    return len(rows)


def bulk_update(session: Session, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> int:
    """Set the other columns of each row where its ``keys`` columns match, in the caller's
    transaction. Rows have the same columns; each must match exactly one row (a unique key), or
    ``LookupError`` is raised (the caller's transaction then rolls back).

    PostgreSQL: one statement. The keys are found by index seeks (a LATERAL subquery per key, not
    flattened), then the rows by their ``ctid``: a plain ``UPDATE ... FROM unnest(...)`` gets a
    hash join over the whole table while its statistics are young. A row changed concurrently
    between the seek and the update would be skipped (its ctid moved): the count check turns that
    into an error. Elsewhere: a raw executemany."""
    if not rows:
        return 0
    columns = list(rows[0].keys())
    sets = [c for c in columns if c not in keys]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(%s AS {table.c[c].type.compile(dialect=conn.dialect)}[])" for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        assign = ", ".join(f'"{c}" = v."{c}"' for c in sets)
        seek = " AND ".join(f'x."{k}" = k."{k}"' for k in keys)
        result = conn.exec_driver_sql(
            f'UPDATE "{table.name}" AS t SET {assign} FROM (SELECT k.*, f.ctid AS tid '
            f"FROM unnest({arrays}) AS k({names}) CROSS JOIN LATERAL "
            f'(SELECT x.ctid FROM "{table.name}" AS x WHERE {seek} OFFSET 0) AS f) '
            "AS v WHERE t.ctid = v.tid",
            tuple([row[c] for row in rows] for c in columns),
        )
    else:
        order = sets + list(keys)
        assign = ", ".join(f'"{c}" = ?' for c in sets)
        match = " AND ".join(f'"{k}" = ?' for k in keys)
        values = _sqlite_values(conn.dialect, table, order, rows)
        result = conn.exec_driver_sql(f'UPDATE "{table.name}" SET {assign} WHERE {match}', values)
    if result.rowcount != len(rows):
        raise LookupError(f"{table.name}: {result.rowcount} of {len(rows)} rows to update were found")
    return len(rows)


def _sqlite_values(
    dialect: Dialect, table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row's values for ``columns``, through the columns' bind processors. A processor's
    result is remembered per value within the call: the same time or date (a batch's ``now``)
    is converted once, not once per row."""
    get = itemgetter(*columns)
    raw = [get(row) for row in rows] if len(columns) > 1 else [(get(row),) for row in rows]
    procs: list[tuple[int, Any, dict[Any, Any]]] = [
        (i, p, {})
        for i, c in enumerate(columns)
        if (p := table.c[c].type._cached_bind_processor(dialect)) is not None
    ]
    if not procs:
        return raw
    out: list[tuple[Any, ...]] = []
    for values in raw:
        v = list(values)
        for i, p, memo in procs:
            x = v[i]
            if x is not None:
                try:
                    v[i] = memo[x]
                except KeyError:
                    v[i] = memo[x] = p(x)
                except TypeError:  # unhashable: convert every time
                    v[i] = p(x)
        out.append(tuple(v))
    return out


def bump_sequence(session: Session, table: Table, column: str = "id") -> None:
    """After rows were written with explicit ids, move PostgreSQL's sequence past them."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
            f'COALESCE((SELECT MAX({column}) FROM "{table.name}"), 0) + 1, false)'
        )
    )

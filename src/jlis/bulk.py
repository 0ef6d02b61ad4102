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
    """Set the other columns of each row where its ``keys`` columns match (rows with the same
    columns, keys unique), in the caller's transaction: one ``UPDATE ... FROM unnest(...)`` on
    PostgreSQL, a raw executemany elsewhere. Returns the number of rows given."""
    if not rows:
        return 0
    columns = list(rows[0].keys())
    sets = [c for c in columns if c not in keys]
    if session.get_bind().dialect.name == "postgresql":
        conn = session.connection()
        arrays = ", ".join(f"CAST(%s AS {table.c[c].type.compile(dialect=conn.dialect)}[])" for c in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        assign = ", ".join(f'"{c}" = v."{c}"' for c in sets)
        match = " AND ".join(f't."{k}" = v."{k}"' for k in keys)
        conn.exec_driver_sql(
            f'UPDATE "{table.name}" AS t SET {assign} FROM unnest({arrays}) AS v({names}) WHERE {match}',
            tuple([row[c] for row in rows] for c in columns),
        )
    else:
        conn = session.connection()
        order = sets + list(keys)
        assign = ", ".join(f'"{c}" = ?' for c in sets)
        match = " AND ".join(f'"{k}" = ?' for k in keys)
        values = _sqlite_values(conn.dialect, table, order, rows)
        conn.exec_driver_sql(f'UPDATE "{table.name}" SET {assign} WHERE {match}', values)
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

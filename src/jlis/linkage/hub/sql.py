"""Set look-ups on the hot path of a 符号一斉取得: ``column IN (thousands of values)``.

SQLAlchemy's expanding IN renders one bind parameter per value on every call, which cost more than
the look-up itself at 5,000 values. These statements go straight to the driver: ``= ANY(%s)`` with
one array parameter on PostgreSQL, ``IN (?, ?, ...)`` on SQLite. Table and column names are
constants of this package, never input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

CHUNK = 5000  # values per statement: below SQLite's variable limit (32,766)


def select_in(
    session: Session,
    select_from: str,
    column: str,
    values: Sequence[str],
    *,
    equal: tuple[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows of ``SELECT ... FROM ... WHERE [other = value AND] column IN values``: ``select_from``
    is the ``SELECT <columns> FROM <table>`` part, ``equal`` an optional (column, value) condition."""
    if not values:
        return []
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    # The session's own DBAPI connection (same transaction), without SQLAlchemy's row objects.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    mark = "%s" if postgres else "?"
    params: tuple[Any, ...] = () if equal is None else (equal[1],)
    prefix = f"{select_from} WHERE {f'{equal[0]} = {mark} AND ' if equal else ''}"
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(values), CHUNK):
        chunk = list(values[i : i + CHUNK])
        if postgres:
            # One text parameter split on the server: psycopg's array dumper inspects every
            # element in Python, which cost more than the look-up (the values are digits, hex or
            # member ids: never a comma).
            sql = f"{prefix}{column} = ANY(string_to_array(%s, ','))"
            args: tuple[Any, ...] = (*params, ",".join(chunk))
        else:
            sql = f"{prefix}{column} IN ({','.join('?' * len(chunk))})"
            args = (*params, *chunk)
        cursor.execute(sql, args)
        out.extend(cursor.fetchall())
    cursor.close()
    return out


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert plain rows (tuples in ``columns`` order) in the caller's transaction, skipping any
    whose primary key exists (``ON CONFLICT DO NOTHING``): the uniqueness probe each insert makes
    anyway answers "already issued?", so no look-up goes before.

    PostgreSQL: one ``COPY`` text block into a temporary table (psycopg's per-row ``write_row``
    cost more than the server's work), then ``INSERT ... SELECT ... ORDER BY`` the key. SQLite: an
    ``executemany`` of the raw values, each column's bind processor applied once per distinct
    value. Values must be strings free of tabs, newlines and backslashes, or aware datetimes."""
    if not rows:
        return
    conn = session.connection()
    quoted = ", ".join(f'"{c}"' for c in columns)
    key = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
    if conn.dialect.name == "postgresql":
        stamps: dict[dt.datetime, str] = {}  # a batch's rows share their time: format it once
        text = "".join("\t".join(_copy_text(v, stamps) for v in r) + "\n" for r in rows)
        staging = f"_in_{table.name}"
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(
                f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
                f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
            )
            with cur.copy(f'COPY "{staging}" ({quoted}) FROM STDIN') as copy:
                copy.write(text)
            cur.execute(
                f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" '
                f"ORDER BY {key} ON CONFLICT DO NOTHING"
            )
            cur.execute(f'TRUNCATE "{staging}"')  # the next batch of this transaction starts empty
        return
    processors = [table.c[c].type.bind_processor(conn.dialect) for c in columns]
    cache: list[dict[Any, Any]] = [{} for _ in columns]

    def bound(i: int, value: Any) -> Any:
        proc = processors[i]
        if proc is None or isinstance(value, str):
            return value
        seen = cache[i]
        if value not in seen:
            seen[value] = proc(value)
        return seen[value]

    values = [tuple(bound(i, v) for i, v in enumerate(r)) for r in rows]
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks}) ON CONFLICT DO NOTHING', values
    )


def _copy_text(value: Any, stamps: dict[dt.datetime, str]) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dt.datetime):
        if value not in stamps:
            if value.tzinfo is None:
                raise ValueError("an aware datetime is required")
            stamps[value] = value.astimezone(dt.UTC).isoformat()
        return stamps[value]
    else:
        text = str(value)
    if "\t" in text or "\n" in text or "\\" in text:
        raise ValueError(f"not a plain COPY value: {text!r}")
    return text

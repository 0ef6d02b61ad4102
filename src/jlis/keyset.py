"""Rows matching many composite keys in one statement, with the same SQL text whatever their number.

``WHERE (a, b) IN ((?, ?), ...)`` changes its SQL text with every count (no statement cache) and
PostgreSQL plans it as a long OR. Instead the keys travel as one parameter and are joined to the
table, one index seek per key:

- SQLite: ``json_each(:keys) CROSS JOIN t ON t.a = k.value ->> 0 AND t.b = k.value ->> 1`` (CROSS
  JOIN keeps the key list as the outer loop, so the table is searched by its index);
- PostgreSQL: ``json_array_elements(:keys) AS k CROSS JOIN LATERAL (SELECT ... FROM t WHERE
  t.a = k.value ->> 0 AND t.b = k.value ->> 1 OFFSET 0)``, a nested loop of index seeks whatever
  the statistics (JSON rather than text arrays: psycopg dumps a list element by element in Python).

Keys are strings (codes, node names, message ids). Result columns keep their types (result
processors apply, so a ``UtcDateTime`` comes back aware).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from jlis.bulk import Prepared


@lru_cache(maxsize=256)
def _statement(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Prepared:
    out = ", ".join(f't."{c}"' for c in columns)
    if dialect == "postgresql":
        if len(keys) == 1:
            source, on = (
                "json_array_elements_text(CAST(:keys AS json)) AS k(value)",
                f't."{keys[0]}" = k.value',
            )
        else:
            source = "json_array_elements(CAST(:keys AS json)) AS k"
            on = " AND ".join(f't."{c}" = (k.value ->> {i})' for i, c in enumerate(keys))
        # LATERAL ... OFFSET 0 keeps the subquery from being flattened into a join, so each key
        # is an index seek even when stale statistics make a small table look cheap to hash whole.
        sql = (
            f"SELECT {out} FROM {source} CROSS JOIN LATERAL "
            f'(SELECT {out} FROM "{table.name}" AS t WHERE {on} OFFSET 0) AS t'
        )
    else:
        if len(keys) == 1:
            on = f't."{keys[0]}" = k.value'
        else:
            on = " AND ".join(f't."{c}" = k.value ->> {i}' for i, c in enumerate(keys))
        sql = f'SELECT {out} FROM json_each(:keys) AS k CROSS JOIN "{table.name}" AS t ON {on}'
    clause: TextClause = text(sql)
    # Run on the driver (jlis.bulk.Prepared): the relay makes several of these per round, each
    # returning hundreds of rows, where SQLAlchemy's per-row result machinery was the main cost.
    return Prepared(clause.columns(*(table.c[c] for c in columns)))


def select_by_keys(
    session: Session,
    table: Table,
    keys: Sequence[str],
    values: Sequence[tuple[str, ...]] | Sequence[str],
    columns: Sequence[str],
) -> list[Any]:
    """Rows (tuples of ``columns``) of ``table`` whose ``keys`` columns equal one of ``values``
    (tuples, or plain strings for a single key column). Inside the caller's transaction."""
    if not values:
        return []
    unique = list(dict.fromkeys(values))
    dialect = session.get_bind().dialect.name
    stmt = _statement(dialect, table, tuple(keys), tuple(columns))
    return stmt.rows(session, {"keys": json.dumps(unique, ensure_ascii=False, separators=(",", ":"))})

"""Rows matching many composite keys in one statement, with the same SQL text whatever their number.

``WHERE (a, b) IN ((?, ?), ...)`` changes its SQL text with every count (no statement cache) and
PostgreSQL plans it as a long OR. Instead the keys travel as one parameter and are joined to the
table, one index seek per key:

- SQLite: ``json_each(:keys) CROSS JOIN t ON t.a = k.value ->> 0 AND t.b = k.value ->> 1`` (CROSS
  JOIN keeps the key list as the outer loop, so the table is searched by its index);
- PostgreSQL: ``unnest(:a::text[], :b::text[]) AS k(a, b) CROSS JOIN LATERAL (SELECT ... FROM t
  WHERE t.a = k.a AND t.b = k.b OFFSET 0)``, a nested loop of index seeks whatever the statistics.

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


@lru_cache(maxsize=256)
def _statement(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    out = ", ".join(f't."{c}"' for c in columns)
    if dialect == "postgresql":
        arrays = ", ".join(f"CAST(:k{i} AS text[])" for i in range(len(keys)))
        names = ", ".join(f"k{i}" for i in range(len(keys)))
        on = " AND ".join(f't."{c}" = k.k{i}' for i, c in enumerate(keys))
        # LATERAL ... OFFSET 0 keeps the subquery from being flattened into a join, so each key
        # is an index seek even when stale statistics make a small table look cheap to hash whole.
        sql = (
            f"SELECT {out} FROM unnest({arrays}) AS k({names}) CROSS JOIN LATERAL "
            f'(SELECT {out} FROM "{table.name}" AS t WHERE {on} OFFSET 0) AS t'
        )
    else:
        if len(keys) == 1:
            on = f't."{keys[0]}" = k.value'
        else:
            on = " AND ".join(f't."{c}" = k.value ->> {i}' for i, c in enumerate(keys))
        sql = f'SELECT {out} FROM json_each(:keys) AS k CROSS JOIN "{table.name}" AS t ON {on}'
    clause: TextClause = text(sql)
    return clause.columns(*(table.c[c] for c in columns))


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
    params: dict[str, Any]
    if dialect == "postgresql":
        if len(keys) == 1:
            params = {"k0": unique}
        else:
            params = {f"k{i}": [v[i] for v in unique] for i in range(len(keys))}
    else:
        params = {"keys": json.dumps(unique, ensure_ascii=False, separators=(",", ":"))}
    return list(session.execute(stmt, params))
